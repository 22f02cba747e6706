"""``gapmeter run --executor ray`` on a real local Ray cluster (a head and a worker node started
with ``ray start``): the same run id and numbers as a local run; a replica actor killed mid-run
and a driver killed with SIGKILL change nothing in the results; without Ray, one line on how to
install it."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("ray")

from support.ray_cluster import AUTH_ENV, Cluster, local_cluster  # noqa: E402

from gapmeter.store.results_json import samples_path  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures" / "user_tasks"
LIMIT = 20  # docs per task: sums_mc (5 choices) + sums_gen = 100 requests
pytestmark = pytest.mark.ray


def _cmd(model_dir: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "gapmeter.cli", "run", "--model", "hf",
        "--model_args", f"pretrained={model_dir},dtype=float32",
        "--tasks", str(FIXTURES / "sums.yaml"), "--include_path", str(FIXTURES), "--limit", str(LIMIT),
        "--output_path", str(out), "--log_samples", "--device", "cpu", "--verbosity", "ERROR",
        "--bootstrap_iters", "100", *extra,
    ]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", **AUTH_ENV}


def _stored(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=1) as con:
            return int(con.execute("select count(*) from responses").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def _results(out: Path) -> dict[str, Any]:
    return json.loads((out / "results.json").read_text())


def _samples(out: Path, task: str) -> list[dict[str, Any]]:
    path = samples_path(out, task)  # lm-eval's samples_<task>_<date>.jsonl
    assert path is not None, f"no samples file for {task} in {out}"
    return [json.loads(x) for x in path.read_text().splitlines()]


def assert_same_numbers(ref: Path, got: Path) -> None:
    """Same run id, metrics, docs and requests; loglikelihoods within 1e-4."""
    a, b = _results(ref), _results(got)
    assert a["gapmeter"]["run_id"] == b["gapmeter"]["run_id"]
    assert a["results"] == b["results"]
    assert a["config"]["model_info"]["num_parameters"] == b["config"]["model_info"]["num_parameters"]
    for task in ("sums_mc", "sums_gen"):
        sa, sb = _samples(ref, task), _samples(got, task)
        assert [s["doc_hash"] for s in sa] == [s["doc_hash"] for s in sb]
        assert [s["arguments"] for s in sa] == [s["arguments"] for s in sb]
        assert [s["metrics"] for s in sa] == [s["metrics"] for s in sb]
        assert [[s[m] for m in s["metrics"]] for s in sa] == [[s[m] for m in s["metrics"]] for s in sb]
        for x, y in zip(sa, sb, strict=True):
            for rx, ry in zip(x["resps"], y["resps"], strict=True):
                if task == "sums_mc":  # [loglikelihood, is_greedy], as strings in lm-eval's layout
                    assert float(ry[0][0]) == pytest.approx(float(rx[0][0]), abs=1e-4) and ry[0][1] == rx[0][1]
                else:
                    assert ry == rx


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    saved = {k: os.environ.get(k) for k in AUTH_ENV}
    os.environ.update(AUTH_ENV)  # the in-process driver of the replica-kill test joins it too
    try:
        with local_cluster() as nodes:
            yield nodes
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def local_run(gpt2_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("local")
    subprocess.run(_cmd(gpt2_model_dir, out), check=True, env=_env(), timeout=300)
    return out


def test_without_ray_one_line_says_how_to_install(tmp_path: Path) -> None:
    script = ("import sys; sys.modules['ray'] = None; from gapmeter.cli import main; "
              "sys.argv = ['gapmeter', *sys.argv[1:]]; main()")
    args = _cmd(tmp_path / "no-model", tmp_path / "out", "--executor", "ray")[3:]
    proc = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, env=_env(),
                          timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "pip install 'gapmeter[ray]'" in lines[0] and "pip install -e '.[ray]'" in lines[0]
    assert not (tmp_path / "out").exists()


def test_unknown_executor_is_one_line(tmp_path: Path) -> None:
    proc = subprocess.run(_cmd(tmp_path / "no-model", tmp_path / "out", "--executor", "slurm"),
                          capture_output=True, text=True, env=_env(), timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["error: --executor 'slurm': use local or ray"]


def test_chat_template_on_ray_is_refused_before_any_work(gpt2_model_dir: Path, tmp_path: Path) -> None:
    proc = subprocess.run(_cmd(gpt2_model_dir, tmp_path / "out", "--executor", "ray", "--apply_chat_template"),
                          capture_output=True, text=True, env=_env(), timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: --apply_chat_template with --executor ray is not supported yet; run it with --executor local"]
    assert not (tmp_path / "out").exists()


def test_ray_run_equals_local_run(cluster: Cluster, local_run: Path, gpt2_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "ray"
    subprocess.run(_cmd(gpt2_model_dir, out, "--executor", "ray", "--ray_address", cluster.address, "--ray_replicas", "2",
                        "--ray_shard_size", "8"), check=True, env=_env(), timeout=300)
    assert_same_numbers(local_run, out)
    info = _results(out)
    assert info["gapmeter"]["computed_requests"] == 100 and info["gapmeter"]["cached_requests"] == 0
    assert info["config"]["model_info"]["ray_replica_nodes"] == 2  # one replica on each node
    assert _stored(out / "gapmeter.sqlite") == 100


def _run_with_a_fault(cluster: Cluster, model_dir: Path, out: Path, fault: Any) -> Any:
    """An in-process run on the cluster (2 replicas, shards of 2) with ``fault(replicas)`` done
    once, when the first responses come back; returns the replicas (their fault counters)."""
    from gapmeter.engine.evaluate import evaluate
    from gapmeter.executors.ray_pool import RayOptions, RayReplicas
    from gapmeter.spec import RunSpec

    spec = RunSpec(model="hf", model_args=f"pretrained={model_dir},dtype=float32",
                   tasks=(str(FIXTURES / "sums.yaml"),), limit=LIMIT, bootstrap_iters=100, device="cpu",
                   output_path=out, log_samples=True, include_path=(FIXTURES,))
    replicas = RayReplicas(spec.model, spec.model_args, device="cpu", batch_size="1",
                           options=RayOptions(address=cluster.address, replicas=2, shard_size=2))
    done: list[bool] = []

    class FaultOnFirstShard:
        """The replicas, with ``fault`` injected when the first responses come back."""

        name = "hf"

        def fingerprint(self) -> str:
            return replicas.fingerprint()

        def describe(self) -> dict[str, Any]:
            return replicas.describe()

        def _wrap(self, on_done: Any) -> Any:
            def wrapped(*args: Any) -> None:
                if not done:
                    fault(replicas)
                    done.append(True)
                on_done(*args)
            return wrapped

        def loglikelihood(self, requests: Any, on_done: Any) -> None:
            replicas.loglikelihood(requests, self._wrap(on_done))

        def loglikelihood_rolling(self, requests: Any, on_done: Any) -> None:
            replicas.loglikelihood_rolling(requests, self._wrap(on_done))

        def generate(self, requests: Any, on_done: Any) -> None:
            replicas.generate(requests, self._wrap(on_done))

    with replicas:
        outcome = evaluate(spec, model=FaultOnFirstShard())
    assert done and outcome.computed_requests == 100
    assert _stored(out / "gapmeter.sqlite") == 100
    with sqlite3.connect(out / "gapmeter.sqlite") as con:  # each request measured once
        assert con.execute("select count(*) from request_timings").fetchone()[0] == 100
    return replicas


def test_replica_killed_mid_run_changes_nothing(cluster: Cluster, local_run: Path, gpt2_model_dir: Path,
                                                tmp_path: Path) -> None:
    """One replica actor is killed (``ray.kill``) as soon as the first shard is stored; its
    shards are answered by its replacement: all 100 requests stored once, same numbers."""
    import ray

    def kill_one(replicas: Any) -> None:
        ray.kill(ray.get_actor(replicas.actor_names()[1], namespace="gapmeter"))

    replicas = _run_with_a_fault(cluster, gpt2_model_dir, tmp_path / "killed", kill_one)
    assert replicas.replacements == 1 and replicas.resubmitted_shards >= 1
    assert_same_numbers(local_run, tmp_path / "killed")


def test_driver_killed_then_same_command_resumes(cluster: Cluster, local_run: Path, gpt2_model_dir: Path,
                                                 tmp_path: Path) -> None:
    out = tmp_path / "driver"
    cmd = _cmd(gpt2_model_dir, out, "--executor", "ray", "--ray_address", cluster.address, "--ray_replicas", "2",
               "--ray_shard_size", "1")
    proc = subprocess.Popen(cmd, env=_env())
    deadline = time.time() + 240
    while time.time() < deadline and _stored(out / "gapmeter.sqlite") < 10 and proc.poll() is None:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    stored = _stored(out / "gapmeter.sqlite")
    assert 0 < stored < 100, "the kill must land mid-run"
    assert not (out / "results.json").exists()

    subprocess.run(cmd, check=True, env=_env(), timeout=300)
    info = _results(out)["gapmeter"]
    assert info["cached_requests"] >= stored
    assert info["computed_requests"] == 100 - info["cached_requests"]
    assert_same_numbers(local_run, out)


def test_sweep_as_ray_tasks_then_resumed_locally(cluster: Cluster, gpt2_model_dir: Path, tiny_model_factory: Any,
                                                 tmp_path: Path) -> None:
    """Each job a Ray task (one CPU each: both nodes work); the same grid run again locally finds
    every response stored: the same run ids, nothing computed."""
    from test_sweep import jobs_of, sweep, write_sweep

    path = write_sweep(tmp_path / "sweep.yaml", {"a": gpt2_model_dir, "b": tiny_model_factory("gpt2", seed=1)},
                       executor="ray", ray_address=cluster.address)
    on_ray = sweep(path, env=_env())
    assert on_ray.returncode == 0, on_ray.stderr
    jobs = jobs_of(on_ray.stdout)
    assert len(jobs) == 4 and all(c == 40 and k == 0 for _, c, k in jobs.values())
    assert on_ray.stdout.count("task: sums_mc") == 2
    again = sweep(path, "--executor", "local", env=_env())
    assert again.returncode == 0, again.stderr
    rerun = jobs_of(again.stdout)
    assert {k: v[0] for k, v in rerun.items()} == {k: v[0] for k, v in jobs.items()}
    assert all(c == 0 and k == 40 for _, c, k in rerun.values())


def test_api_rate_limit_holds_for_the_whole_cluster(cluster: Cluster) -> None:
    """Two replicas of an API backend with rpm=120 (2/s, a burst of 2) share one bucket: a real
    HTTP server on 127.0.0.1 sees the 12 requests spread over >= 4.5 s (per-replica buckets would
    let them through twice as fast, in about 2.5 s)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from gapmeter.executors.ray_pool import RayOptions, RayReplicas
    from gapmeter.requests import GenerateRequest
    from gapmeter.serve.runner import ServerThread

    arrivals: list[tuple[float, str]] = []

    async def completions(request: Request) -> JSONResponse:
        client = request.client
        arrivals.append((time.monotonic(), f"{client.host}:{client.port}" if client else "?"))
        return JSONResponse({"choices": [{"index": 0, "text": " ok", "finish_reason": "stop"}],
                             "usage": {"prompt_tokens": 3, "completion_tokens": 1}})

    app = Starlette(routes=[Route("/v1/completions", completions, methods=["POST"])])
    answers: dict[int, Any] = {}
    with ServerThread(app) as server:
        args = f"base_url={server.url},model=m,stream=false,rpm=120,concurrency=4"
        with RayReplicas("openai", args, device=None, batch_size="1", rate_limits=(120.0, None),
                         options=RayOptions(address=cluster.address, replicas=2, shard_size=2)) as replicas:
            replicas.fingerprint()
            requests = [GenerateRequest(f"q{i}", ("\n",), 2) for i in range(12)]
            replicas.generate(requests, lambda pos, res, _stats=None: answers.update(zip(pos, res, strict=True)))
            nodes = replicas.describe()["ray_replica_nodes"]
    assert sorted(answers) == list(range(12)) and set(answers.values()) == {" ok"}
    assert nodes == 2
    times = sorted(t for t, _ in arrivals)
    assert len(times) == 12
    assert times[-1] - times[0] >= 4.5, times  # (12 - 2 burst) / 2 per s = 5 s
    for i in range(len(times)):  # never more than burst + rate × window in any window
        for j in range(i + 1, len(times)):
            assert j - i + 1 <= 2 + 2 * (times[j] - times[i]) + 1, (i, j, times)


def test_worker_node_killed_mid_run_changes_nothing(cluster: Cluster, local_run: Path, gpt2_model_dir: Path,
                                                   tmp_path: Path) -> None:
    """The worker node (and with it the replica spread onto it) is SIGKILLed mid-run; the head
    takes the replacement. Last in this module: the cluster has one node afterwards."""
    replicas = _run_with_a_fault(cluster, gpt2_model_dir, tmp_path / "node", lambda _: cluster.kill_worker_node())
    assert replicas.replacements >= 1 and replicas.resubmitted_shards >= 1
    assert_same_numbers(local_run, tmp_path / "node")
