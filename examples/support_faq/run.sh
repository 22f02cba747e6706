#!/usr/bin/env bash
# The whole path of docs/scenarios.md on a support FAQ, offline: cases table → task → two local
# models → a judge served with `gapmeter serve` → judged scores stored, compared, on the board.
#   examples/support_faq/run.sh [WORK_DIR]        (JUDGE_DIR=/path/to/an/instruct/model to use one)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
WORK="${1:-$(mktemp -d)}"
PORT="${PORT:-8765}"
mkdir -p "$WORK" && cd "$WORK"

python "$HERE/build_cases.py" .                      # cases.csv (+ train.txt for the tiny models)
gapmeter task init cases.csv --force                 # → cases.yaml: one subtask per category
python "$HERE/tiny_models.py" .                      # models/small, models/large (no downloads)
for m in small large; do
  gapmeter run --model hf --model_args "pretrained=$WORK/models/$m,dtype=float32" --device cpu \
    --include_path cases.yaml --tasks cases --output_path "runs/$m" --db runs/faq.sqlite --log_samples
done

# The judge: any model behind an OpenAI-compatible API. Without JUDGE_DIR, a toy judge trained
# here (tiny_judge.py: a few minutes of CPU, on generated FAQ items, never on faq.md's) that
# applies one rule: an answer passes when it states the reference's key words, no more, no less.
if [ -z "${JUDGE_DIR:-}" ]; then
  python "$HERE/tiny_judge.py" . "$HERE/rubric.txt"  # → models/judge; prints its held-out agreement
fi
JUDGE_DIR="${JUDGE_DIR:-$WORK/models/judge}"
JUDGE_NAME="$(basename "$JUDGE_DIR")"   # served under its own name: self-preference is checked by name
gapmeter serve --model hf --model_args "pretrained=$JUDGE_DIR" --port "$PORT" --served_model_name "$JUDGE_NAME" --threads 1 &
SERVER=$!
trap 'kill $SERVER' EXIT
python - "$PORT" <<'PY'
import sys, time, urllib.request
for _ in range(300):
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/v1/models", timeout=1); break
    except OSError:
        time.sleep(0.5)
PY
JUDGE=(--judge_model openai --judge_model_args "base_url=http://127.0.0.1:$PORT/v1,model=$JUDGE_NAME" --db runs/faq.sqlite
       --rubric "$HERE/rubric.txt")
gapmeter judge runs/small "${JUDGE[@]}" --scale pass_fail --max_tokens 48
gapmeter judge runs/large "${JUDGE[@]}" --scale pass_fail --max_tokens 48
gapmeter judge --pairwise runs/small runs/large "${JUDGE[@]}" --max_tokens 48 --output runs/pairwise.json
gapmeter compare runs/small runs/large --metric exact_match
gapmeter compare runs/small runs/large --metric judge_pass
echo "run.sh: ${SECONDS}s in all"
echo "board: gapmeter board --db $WORK/runs/faq.sqlite  (run page → items: judge prompt and replies)"
