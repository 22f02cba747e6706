"""Throughput of ``--executor ray`` with 1, 2 and 4 replicas against a local run (CPU, tiny model).

The workload is the test fixture task ``sums`` (``tests/fixtures/user_tasks``: 120 multiple-choice
docs with 5 choices and 40 generation docs, 640 requests) on a tiny random GPT-2 built here
(``tests/support/tiny_models.py``; no download). Each configuration runs ``engine.evaluate`` on a
fresh store, so every request is computed; the figure is the backend phase only (the sum of the
run's ``seconds_by_request_type``): replica start-up (loading torch and the model in each actor)
is printed apart, as it is paid once per run.

* throughput = requests / backend seconds;
* overhead per request vs local = (backend seconds with 1 replica − local backend seconds) /
  requests: what sharding, pickling and Ray's round trips add to each request;
* speed-up = throughput with N replicas / throughput with 1.

Ray runs in this process (``ray.init(num_cpus=4)``, one CPU per replica): on a machine with fewer
cores than replicas the replicas share them, and the speed-up says so.

    .venv/bin/python bench/ray_scaling.py [--limit 120] [--shard-size 32] [--replicas 1,2,4]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
FIXTURES = ROOT / "tests" / "fixtures" / "user_tasks"
KINDS = ("loglikelihood", "loglikelihood_rolling", "generate_until")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="docs per task (default: all)")
    parser.add_argument("--shard-size", type=int, default=32)
    parser.add_argument("--replicas", default="1,2,4")
    opts = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # an in-process cluster, this machine only
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

    import ray
    from support.tiny_models import build_model

    from gapmeter.engine.evaluate import evaluate
    from gapmeter.executors.ray_pool import RayOptions, RayReplicas
    from gapmeter.spec import RunSpec

    work = Path(tempfile.mkdtemp(prefix="ray_scaling_"))
    model_dir = build_model("gpt2", work / "model")
    model_args = f"pretrained={model_dir},dtype=float32"

    def spec(name: str) -> RunSpec:
        return RunSpec(model="hf", model_args=model_args, tasks=(str(FIXTURES / "sums.yaml"),), limit=opts.limit,
                       bootstrap_iters=0, device="cpu", include_path=(FIXTURES,), output_path=work / name)

    def backend_seconds(timings: dict[str, float]) -> float:
        return sum(timings.get(k, 0.0) for k in KINDS)

    local = evaluate(spec("local"))
    n = local.computed_requests
    local_s = backend_seconds(local.timings)
    print(f"cores: {os.cpu_count()}, requests: {n}, shard size: {opts.shard_size}")
    print(f"local       : {n / local_s:8.1f} req/s  ({local_s:.2f} s backend)")
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False, configure_logging=False)
    rates: dict[int, float] = {}
    one_replica_s = 0.0
    for count in (int(x) for x in opts.replicas.split(",")):
        t0 = time.perf_counter()
        with RayReplicas("hf", model_args, device="cpu", batch_size="1",
                         options=RayOptions(replicas=count, shard_size=opts.shard_size)) as replicas:
            replicas.fingerprint()
            startup = time.perf_counter() - t0
            outcome = evaluate(spec(f"ray{count}"), model=replicas)
        seconds = backend_seconds(outcome.timings)
        rates[count] = outcome.computed_requests / seconds
        if count == 1:
            one_replica_s = seconds
        speedup = f", x{rates[count] / rates[1]:.2f} vs 1 replica" if 1 in rates else ""
        print(f"ray {count} repl.: {rates[count]:8.1f} req/s  ({seconds:.2f} s backend, {startup:.1f} s start-up"
              f"{speedup}, x{rates[count] / (n / local_s):.2f} vs local)")
    ray.shutdown()
    if one_replica_s:
        print(f"overhead per request, 1 replica vs local: {(one_replica_s - local_s) / n * 1000:.2f} ms")


if __name__ == "__main__":
    main()
