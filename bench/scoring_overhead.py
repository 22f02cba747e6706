"""The CPU proxy for GPU scoring speed: host-side work per request outside the model's forward.

On a GPU the forward passes are fast and what limits throughput is the per-request Python and
host<->device work around them (docs/performance.md). That work costs the same on any machine,
so it can be measured here: the loglikelihood requests of ARC-Challenge 25-shot (real prompts,
``--docs`` docs) are scored by a tiny model whose forward is timed by hooks on the decoder and
the LM head; everything else inside the backend's call — batching, padding, index building,
log-softmax, gather, sums, copies, hand-off to the engine — is the overhead, per request. lm-eval
0.4.13's HFLM is measured the same way on the same requests. Tokenisation is reported apart.

    python bench/scoring_overhead.py --docs 300

Target: <= 50 µs per request for gapmeter's exact path. The end-to-end ratio to lm-eval on the
CPU is ``bench/vs_lm_eval.py`` (default preset).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from support.tiny_models import build_model, default_data_dir  # noqa: E402

from gapmeter.engine.plan import resolve_tasks  # noqa: E402
from gapmeter.models.hf import HFModel  # noqa: E402
from gapmeter.requests import LoglikelihoodRequest  # noqa: E402
from gapmeter.tasks.registry import TaskRegistry  # noqa: E402


class ForwardClock:
    """Seconds spent inside the decoder and the LM head (hooks; the CPU runs them synchronously)."""

    def __init__(self, model: Any) -> None:
        self.seconds = 0.0
        self._t0: list[float] = []
        for module in (model.base_model, model.get_output_embeddings()):
            module.register_forward_pre_hook(self._start)
            module.register_forward_hook(self._stop)

    def _start(self, *_: Any) -> None:
        self._t0.append(time.perf_counter())

    def _stop(self, *_: Any) -> None:
        self.seconds += time.perf_counter() - self._t0.pop()


def arc_requests(n_docs: int) -> list[LoglikelihoodRequest]:
    plan = resolve_tasks(TaskRegistry.load(), ["arc_challenge"], num_fewshot=25, data_dir=default_data_dir())
    leaf = plan.leaves["arc_challenge"]
    docs = leaf.task.plan(num_fewshot=25, limit=n_docs)
    return [r for d in docs for r in d.requests if isinstance(r, LoglikelihoodRequest)]


def time_gapmeter(path: Path, requests: list[LoglikelihoodRequest], prefix_cache: bool, batch_size: int) -> tuple[float, float, float]:
    """(total seconds, forward seconds, seconds waiting for tokenization) of one loglikelihood call."""
    model = HFModel(str(path), dtype="float32", device="cpu", batch_size=batch_size, prefix_cache=prefix_cache)
    clock = ForwardClock(model.model)
    done = [0]

    def on_done(idx: list[int], _res: list[Any], _stats: Any = None) -> None:
        done[0] += len(idx)

    t0 = time.perf_counter()
    model.loglikelihood(requests, on_done)
    total = time.perf_counter() - t0
    assert done[0] == len(requests)
    return total, clock.seconds, model.phase_seconds["tokenize_wait"]


def time_lm_eval(path: Path, requests: list[LoglikelihoodRequest], batch_size: int) -> tuple[float, float, float]:
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=str(path), device="cpu", dtype="float32", batch_size=batch_size)
    clock = ForwardClock(lm.model)
    inner = [0.0]
    original = lm._loglikelihood_tokens

    def timed(*a: Any, **kw: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return original(*a, **kw)
        finally:
            inner[0] += time.perf_counter() - t0

    lm._loglikelihood_tokens = timed  # type: ignore[method-assign]
    instances = [Instance("loglikelihood", {}, (r.context, r.continuation), i) for i, r in enumerate(requests)]
    t0 = time.perf_counter()
    lm.loglikelihood(instances, disable_tqdm=True)
    total = time.perf_counter() - t0
    return total, clock.seconds, total - inner[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=300)
    ap.add_argument("--batch_size", type=int, default=16)
    ap.add_argument("--kind", default="llama", choices=["gpt2", "llama"])
    ap.add_argument("--no_lm_eval", action="store_true")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)  # the forward is not what is measured; keep it quiet and steady
    work = Path(tempfile.mkdtemp(prefix="gapmeter-overhead-"))
    path = build_model(args.kind, work / "model", size="tiny", max_positions=2048)
    requests = arc_requests(args.docs)
    n = len(requests)
    print(f"{n} loglikelihood requests (ARC-Challenge 25-shot, {args.docs} docs), tiny {args.kind}, CPU, "
          f"batch_size {args.batch_size}")
    rows = [("gapmeter exact", time_gapmeter(path, requests, False, args.batch_size)),
            ("gapmeter kv_reuse", time_gapmeter(path, requests, True, args.batch_size))]
    if not args.no_lm_eval:
        rows.append(("lm-eval 0.4.13", time_lm_eval(path, requests, args.batch_size)))
    for name, (total, forward, tokenize) in rows:
        overhead = total - forward - tokenize
        print(f"{name:>18}: total {total:6.2f} s, forward {forward:6.2f} s, tokenize {tokenize:5.2f} s, "
              f"overhead {overhead:5.2f} s = {overhead / n * 1e6:6.1f} µs/request")
    exact = rows[0][1]
    per_request = (exact[0] - exact[1] - exact[2]) / n * 1e6
    print(f"target <= 50 µs/request (exact path): {'met' if per_request <= 50 else 'NOT met'} ({per_request:.1f})")


if __name__ == "__main__":
    main()
