"""Load test of the board: 50 concurrent clients mixing page views and submissions for 60 s
against a board holding 1,000 models x 20 tasks (SQLite by default).

    .venv/bin/python bench/board_load.py [--clients 50 --seconds 60 --models 1000 --tasks 20]
                                         [--db URL] [--submit-share 0.2] [--cache-seconds 2]

The board runs as a real ``gapmeter board`` process on 127.0.0.1 (started and stopped by PID).
Submissions are real runs (``evaluate`` with a deterministic stand-in backend, logged samples)
sent under unique model names, so the board re-scores every one. Checks: no 5xx, every accepted
submission stored exactly once (none lost, none doubled; uploads whose answer was lost are sent
again and must come back as duplicates). Prints latency percentiles per request kind, the
leaderboard page's p95 against the 200 ms target, and against /health measured in the same run.

Honesty checks printed with the figures: the CPU the load generator itself used (it shares the
machine with the board: on 2 cores, client-side CPU starvation shows up as latency), the board
process's CPU, the load average before and after, and the observed staleness: for every
/api/leaderboard answer, how long before the request the oldest submission it did not yet count
had been accepted, against the documented bound of 2 x --cache-seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import hashlib
import json
import os
import random
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, func, select

from gapmeter.board.auth import create_token
from gapmeter.commands.submit import build_payload
from gapmeter.engine.evaluate import evaluate
from gapmeter.spec import RunSpec
from gapmeter.store.board_tables import BoardEntry, BoardSubmission
from gapmeter.store.db import open_store
from gapmeter.store.models import MetricValue, Run, utcnow

TARGET_P95_S = 0.200


class StandInModel:
    """A deterministic backend (seeded by name): real requests, made-up but valid responses."""

    name = "standin"

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def fingerprint(self) -> str:
        return hashlib.sha256(f"standin-{self.seed}".encode()).hexdigest()[:32]

    def describe(self) -> dict[str, Any]:
        return {"backend": "standin", "name": f"standin-{self.seed}"}

    def _rng(self, key: str) -> random.Random:
        return random.Random(f"{self.seed}/{key}")

    def loglikelihood(self, requests, on_done) -> None:  # noqa: ANN001
        out = [(-self._rng(r.context + r.continuation).uniform(0.1, 9.0), False) for r in requests]
        on_done(list(range(len(requests))), out)

    def loglikelihood_rolling(self, requests, on_done) -> None:  # noqa: ANN001
        on_done(list(range(len(requests))), [-50.0 for _ in requests])

    def generate(self, requests, on_done) -> None:  # noqa: ANN001
        on_done(list(range(len(requests))), [f" {self._rng(r.context).randint(0, 18)}" for r in requests])


def seed_board(url: str, n_models: int, n_tasks: int) -> None:
    """1,000 models x 20 tasks of stored runs (metrics with CIs and timings), inserted in bulk."""
    sessions = open_store(url)
    rng = random.Random(0)
    tasks = [f"bench_task_{i:02d}" for i in range(n_tasks)]
    runs, metrics = [], []
    now = utcnow()
    for m in range(n_models):
        rid = f"bench-{m:05d}"
        runs.append({"id": rid, "status": "complete", "model": "hf", "model_args": f"pretrained=/models/bench-model-{m:04d}",
                     "model_fingerprint": rid, "tasks": tasks, "spec": {"tasks": tasks}, "model_info": {},
                     "output_path": None, "created_at": now, "finished_at": now, "wall_seconds": rng.uniform(10, 500)})
        skill = rng.uniform(0.25, 0.9)
        for t in tasks:
            v = min(1.0, max(0.0, rng.gauss(skill, 0.05)))
            se = (v * (1 - v) / 500) ** 0.5
            metrics.append({"run_id": rid, "task": t, "is_group": 0, "metric": "acc", "filter": "none", "value": v,
                            "stderr": se, "clustered_stderr": None, "ci_low": v - 1.96 * se, "ci_high": v + 1.96 * se, "n": 500})
    engine = sessions.kw["bind"]
    with engine.begin() as conn:
        conn.execute(Run.__table__.insert(), runs)
        conn.execute(MetricValue.__table__.insert(), metrics)
    engine.dispose()


def make_run_dirs(root: Path, k: int) -> list[Path]:
    dirs = []
    for seed in range(k):
        out = root / f"run{seed}"
        spec = RunSpec(model="hf", model_args=f"pretrained=standin-{seed}", tasks=("arith_mc", "arith_gen"), limit=20,
                       output_path=out, log_samples=True, db=f"sqlite:///{root / 'runs.sqlite'}", bootstrap_iters=1000)
        evaluate(spec, model=StandInModel(seed))  # type: ignore[arg-type]
        dirs.append(out)
    return dirs


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (Linux /proc; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def own_cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def staleness(accepted_at: list[float], seen: list[tuple[float, int]], base_total: int) -> tuple[float, int]:
    """Largest observed lag, and how many answers lagged at all: an answer to a request sent at t
    that counts k submitted models while m > k submissions had been accepted before t missed at
    least the (m - k) latest of them, the oldest of which was accepted at ``accepted_at[k]``."""
    acc = sorted(accepted_at)
    worst, late = 0.0, 0
    for t, total in seen:
        m = sum(1 for a in acc if a < t)
        k = max(0, total - base_total)
        if m > k:
            late += 1
            worst = max(worst, t - acc[k])
    return worst, late


async def client_loop(i: int, base: str, token: str, payloads: list[dict[str, Any]], deadline: float, share: float,
                      lat: dict[str, list[float]], status: dict[int, int], accepted: dict[str, str], unknown: list[bytes],
                      models: list[str], run_ids: list[str], accepted_at: list[float],
                      seen: list[tuple[float, int]]) -> None:
    rng = random.Random(i)
    n_sub = 0
    async with httpx.AsyncClient(base_url=base, timeout=60) as c:
        while time.monotonic() < deadline:
            roll = rng.random()
            if roll < share:
                kind = "submit"
                name = f"load-{i:02d}-{n_sub:04d}"
                n_sub += 1
                payload = dict(rng.choice(payloads), model_name=name)
                body = gzip.compress(json.dumps(payload).encode(), mtime=0)
                headers = {"Authorization": f"Bearer {token}", "Content-Encoding": "gzip", "Content-Type": "application/json"}
                t0 = time.perf_counter()
                try:
                    r = await c.post("/api/submissions", content=body, headers=headers)
                except httpx.HTTPError:
                    unknown.append(body)  # outcome unknown: sent again after the run
                    continue
                if r.status_code in (200, 201):
                    accepted[name] = r.json()["run_id"]
                    accepted_at.append(time.monotonic())
            else:
                choice = rng.random()
                if choice < 0.45:
                    kind, path = "leaderboard", "/"
                elif choice < 0.6:
                    kind, path = "leaderboard_api", "/api/leaderboard"
                elif choice < 0.75:
                    kind, path = "model", f"/models/{rng.choice(models)}"
                elif choice < 0.85:
                    kind, path = "run", f"/runs/{rng.choice(run_ids)}"
                elif choice < 0.93:
                    kind, path = "pareto", "/pareto"
                else:
                    kind, path = "health", "/health"
                t0 = time.perf_counter()
                sent = time.monotonic()
                try:
                    r = await c.get(path, headers={"Accept": "text/html"})
                except httpx.HTTPError:
                    status[-1] += 1
                    continue
                if kind == "leaderboard_api" and r.status_code == 200:
                    found = re.search(rb'"total":(\d+)', r.content[:16384])
                    if found:
                        seen.append((sent, int(found.group(1))))
            lat[kind].append(time.perf_counter() - t0)
            status[r.status_code] += 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--models", type=int, default=1000)
    ap.add_argument("--tasks", type=int, default=20)
    ap.add_argument("--submit-share", type=float, default=0.2, help="share of client actions that are submissions")
    ap.add_argument("--db", default=None, help="SQLAlchemy URL of an empty database (default: a new SQLite file)")
    ap.add_argument("--cache-seconds", type=float, default=2.0, help="the board's --cache-seconds (its default: 2)")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="board-load-"))
    url = args.db or f"sqlite:///{tmp / 'board.sqlite'}"
    t0 = time.perf_counter()
    seed_board(url, args.models, args.tasks)
    dirs = make_run_dirs(tmp, 4)
    payloads = [build_payload(d) for d in dirs]
    sessions = open_store(url)
    with sessions() as s:
        _, token = create_token(s, "load", "submitter", actor="bench")
        s.commit()
    print(f"setup: {args.models} models x {args.tasks} tasks in {url.split('://')[0]}, {time.perf_counter() - t0:.1f} s")

    port = 18000 + os.getpid() % 1000
    log = open(tmp / "board.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "gapmeter.cli", "board", "--db", url, "--port", str(port),
                             "--cache-seconds", str(args.cache_seconds)], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(base + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise SystemExit(f"board did not start; see {tmp / 'board.log'}")
        httpx.get(base + "/", timeout=60)  # first snapshot build, as after any restart
        idle = []  # reference in the same run: the page alone, one request at a time
        with httpx.Client(base_url=base, timeout=60) as c:
            for _ in range(40):
                t = time.perf_counter()
                c.get("/", headers={"Accept": "text/html"})
                idle.append(time.perf_counter() - t)
        models = [f"bench-model-{m:04d}" for m in range(0, args.models, 7)]
        run_ids = [f"bench-{m:05d}" for m in range(0, args.models, 7)]
        lat: dict[str, list[float]] = defaultdict(list)
        status: dict[int, int] = defaultdict(int)
        accepted: dict[str, str] = {}
        unknown: list[bytes] = []
        accepted_at: list[float] = []
        seen: list[tuple[float, int]] = []

        async def run_all() -> None:
            deadline = time.monotonic() + args.seconds
            await asyncio.gather(*(client_loop(i, base, token, payloads, deadline, args.submit_share, lat, status,
                                               accepted, unknown, models, run_ids, accepted_at, seen)
                                   for i in range(args.clients)))

        load_before = os.getloadavg()
        cpu_client0, cpu_board0 = own_cpu_seconds(), cpu_seconds(proc.pid)
        t1 = time.perf_counter()
        asyncio.run(run_all())
        wall = time.perf_counter() - t1
        cpu_client, cpu_board = own_cpu_seconds() - cpu_client0, cpu_seconds(proc.pid) - cpu_board0
        load_after = os.getloadavg()
        resent_dup = 0
        for body in unknown:  # answers lost in flight: the retry must not double anything
            r = httpx.post(base + "/api/submissions", content=body, timeout=120, headers={
                "Authorization": f"Bearer {token}", "Content-Encoding": "gzip", "Content-Type": "application/json"})
            name = json.loads(gzip.decompress(body))["model_name"]
            accepted[name] = r.json()["run_id"]
            resent_dup += r.status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()

    engine = create_engine(url)
    with engine.connect() as conn:
        stored = dict(conn.execute(select(BoardSubmission.model_name, func.count()).group_by(BoardSubmission.model_name)).all())
        entries = conn.execute(select(func.count()).select_from(BoardEntry).where(BoardEntry.source == "submission")).scalar()
    lost = sorted(set(accepted) - set(stored))
    doubled = sorted(n for n, k in stored.items() if k > 1)
    errors_5xx = sum(k for code, k in status.items() if code >= 500)
    total = sum(status.values())
    print(f"{args.clients} clients x {wall:.1f} s: {total} requests ({total / wall:.0f}/s), "
          f"status counts {dict(sorted(status.items()))}")
    print(f"{'kind':<16}{'n':>7}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}")
    for kind in sorted(lat):
        xs = lat[kind]
        print(f"{kind:<16}{len(xs):>7}{1000 * pct(xs, 50):>10.1f}{1000 * pct(xs, 95):>10.1f}{1000 * pct(xs, 99):>10.1f}")
    lb95 = pct(lat["leaderboard"], 95)
    h95 = pct(lat["health"], 95)
    print(f"submissions: {len(accepted)} accepted, {len(stored)} stored, {entries} board entries, lost {len(lost)}, "
          f"doubled {len(doubled)}, resent after lost answers {len(unknown)} ({resent_dup} came back as duplicates)")
    print(f"leaderboard page p95 = {1000 * lb95:.1f} ms; ratio to the 200 ms target = {lb95 / TARGET_P95_S:.2f}; "
          f"ratio to /health p95 in the same run ({1000 * h95:.1f} ms) = {lb95 / h95:.1f}; "
          f"median {statistics.median(lat['leaderboard']) * 1000:.1f} ms")
    ok = not lost and not doubled and errors_5xx == 0 and entries == len(stored)
    print(f"leaderboard page alone (sequential, same board, before the load): p50 {1000 * pct(idle, 50):.1f} ms, "
          f"p95 {1000 * pct(idle, 95):.1f} ms; ratio to the 200 ms target = {pct(idle, 95) / TARGET_P95_S:.2f}")
    print(f"CPU during the load: load generator {cpu_client:.1f} s ({cpu_client / wall:.2f} cores), board process "
          f"{cpu_board:.1f} s ({cpu_board / wall:.2f} cores), {os.cpu_count()} CPUs; load average (1 min) "
          f"{load_before[0]:.2f} before, {load_after[0]:.2f} after")
    worst, late = staleness(accepted_at, seen, args.models)
    bound = 2 * args.cache_seconds
    print(f"staleness: {late} of {len(seen)} /api/leaderboard answers lagged an accepted submission; worst lag "
          f"{1000 * worst:.0f} ms (documented bound 2 x --cache-seconds = {1000 * bound:.0f} ms)")
    ok = ok and worst <= bound
    print("PASS: no 5xx, no lost or duplicated submission, staleness within its bound" if ok else
          f"FAIL: 5xx={errors_5xx} lost={lost[:5]} doubled={doubled[:5]} worst staleness {worst:.2f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
