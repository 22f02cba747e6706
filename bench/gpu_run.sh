#!/bin/bash
# The one call that measured docs/performance.md's GPU figures, on a lent machine whose image has
# torch/transformers but no package index: the missing packages travel as wheels in .whl/
# (the list: ../shared/perf/gpu_wheels.txt), the benchmark files in .data/ (arc, hellaswag, mmlu,
# truthfulqa, gsm8k copied from ../shared/data; both folders are git-ignored). Output: $OUT.
set -u
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
R=$(pwd)
OUT=${OUT:-/tmp/gapmeter-gpu-out}; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 3
export PYTHONPATH=/tmp/site:$R/src GAPMETER_DATA_DIR=$R/.data
python3 -c "import lm_eval, lm_eval.models.huggingface, datasets, gapmeter.engine.evaluate; print('imports ok')" || exit 4
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
timeout "${BENCH_TIMEOUT:-520}" python3 bench/vs_lm_eval.py --preset gpu --device cuda "$@" 2>&1 \
  | tee "$OUT/full.log" | grep -v -i -E "warn|overwriting|generating|it/s\]|loading weights|examples/s|^\s*$"
echo "exit: ${PIPESTATUS[0]}"
