"""Efficiency and cost are measured for every request and their summaries are consistent:
rates × time = amounts, percentiles ordered, busy time split exactly, tokens as the tokenizer
counts them, cost = tokens × price or time × rate, nothing lost or counted twice on resume."""

from __future__ import annotations

import json
import math
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
from transformers import AutoTokenizer

from gapmeter.cost.estimate import Pricing
from gapmeter.cost.prices import PriceTable
from gapmeter.efficiency.attribution import busy_shares, union_length
from gapmeter.efficiency.frontier import FrontierPoint, pareto_frontier
from gapmeter.efficiency.summary import Distribution
from gapmeter.engine.evaluate import evaluate
from gapmeter.errors import ConfigError
from gapmeter.models.base import RequestStats
from gapmeter.models.registry import load_model
from gapmeter.spec import RunSpec
from gapmeter.store.results_json import samples_path

FIXTURES = Path(__file__).parent / "fixtures" / "user_tasks"
SUMS = str(FIXTURES / "sums.yaml")


def _spec(model_dir: Path, out: Path, **kw: Any) -> RunSpec:
    base: dict[str, Any] = dict(
        model="hf", model_args=f"pretrained={model_dir},dtype=float32", tasks=(SUMS,),
        include_path=(FIXTURES,), limit=12, batch_size="4", device="cpu", output_path=out,
        log_samples=True, bootstrap_iters=0,
    )
    base.update(kw)
    return RunSpec(**base)


def _rows(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as con:
        return con.execute(sql).fetchall()


# ----------------------------------------------------------------------------- pure functions


def test_busy_shares_split_every_instant_among_the_requests_in_flight() -> None:
    rng = random.Random(0)
    starts = [rng.uniform(0, 10) for _ in range(300)]
    ends = [s + rng.choice([0.0, rng.uniform(0, 2)]) for s in starts]
    shares = busy_shares(starts, ends)
    assert shares.sum() == pytest.approx(union_length(starts, ends), rel=1e-12)
    # Brute force on a fine grid: each covered instant contributes dt / (requests covering it).
    grid = np.linspace(0, 12, 240_001)
    mid = (grid[:-1] + grid[1:]) / 2
    cover = np.array([(mid >= s) & (mid < e) for s, e in zip(starts, ends, strict=True)])
    k = cover.sum(axis=0)
    brute = (cover / np.maximum(k, 1)).sum(axis=1) * (grid[1] - grid[0])
    assert np.abs(shares - brute).max() < 1e-3


def test_a_batch_shares_its_duration_equally_and_batches_add_up() -> None:
    # Two batches back to back (4 requests for 2 s, then 2 requests for 1 s).
    starts, ends = [0, 0, 0, 0, 2, 2], [2, 2, 2, 2, 3, 3]
    assert list(busy_shares(starts, ends)) == pytest.approx([0.5] * 4 + [0.5] * 2)
    assert union_length(starts, ends) == 3
    with pytest.raises(ValueError):
        busy_shares([1.0], [0.5])


def test_percentiles_are_numpys_and_ordered() -> None:
    values = [random.Random(1).expovariate(3) for _ in range(1001)]
    d = Distribution.of(values)
    assert (d.p50, d.p90, d.p99) == pytest.approx(tuple(np.percentile(values, [50, 90, 99])))
    assert min(values) <= d.p50 <= d.p90 <= d.p99 <= d.max == max(values)
    assert Distribution.of([]).p50 is None


def test_pareto_frontier_marks_the_undominated_and_names_a_frontier_dominator() -> None:
    pts = [FrontierPoint(1, 0.5), FrontierPoint(2, 0.7), FrontierPoint(3, 0.6), FrontierPoint(2, 0.7),
           FrontierPoint(5, 0.9), FrontierPoint(6, 0.9)]
    verdict = pareto_frontier(pts)
    assert verdict == [None, None, 1, None, None, 4]


# ----------------------------------------------------------------------------- price table


def test_price_lookup_exact_provider_prefix_and_dated_snapshots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GAPMETER_PRICES", raising=False)
    table = PriceTable.load()
    assert table.lookup("gpt-4o").name == "gpt-4o"
    assert table.lookup("openai/GPT-4o-mini").name == "gpt-4o-mini"
    assert table.lookup("gpt-4o-mini-2024-07-18").name == "gpt-4o-mini"
    assert table.lookup("gpt-4o-2024-08-06").name == "gpt-4o"
    assert table.lookup("gpt-4") is None  # "gpt-4o" and "gpt-4-turbo" are other models
    assert table.lookup("gpt-4o", dated=False).name == "gpt-4o"
    assert table.lookup("gpt-4o-finetune", dated=False) is None
    assert table.lookup("my-local-model") is None
    assert table.lookup("gpt-4o").as_of is not None

    user = tmp_path / "prices.yaml"
    user.write_text("as_of: '2030-01-01'\nmodels:\n  gpt-4o: {input: 1, output: 2}\n  tiny: {input: 0.5, output: 0}\n")
    monkeypatch.setenv("GAPMETER_PRICES", str(user))
    table = PriceTable.load()
    assert table.lookup("gpt-4o").price.input == 1 and table.lookup("gpt-4o").as_of == "2030-01-01"
    assert table.lookup("gpt-4o-mini").price.input == 0.15  # built-in entries are kept
    # --prices wins over the environment variable.
    other = tmp_path / "other.yaml"
    other.write_text("models:\n  gpt-4o: {input: 7, output: 8}\n")
    assert PriceTable.load(other).lookup("gpt-4o").price.input == 7


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("models:\n  m: {input: -1, output: 2}\n", r"field models\.m\.input"),
        ("models:\n  m: {input: 1, outptu: 2}\n", r"field models\.m\.(outptu|output)"),
        ("models: [1, 2\n", "not valid YAML"),
        ("- 1\n", "mapping"),
        ("currency: EUR\nmodels: {}\n", "USD"),
    ],
)
def test_bad_price_file_is_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(ConfigError, match=message) as err:
        PriceTable.load(bad)
    assert str(bad) in str(err.value)


def test_cost_is_tokens_times_price_or_time_times_rate(tmp_path: Path) -> None:
    prices = tmp_path / "p.yaml"
    prices.write_text("models:\n  my-api-model: {input: 3, output: 15}\n")
    by_tokens = Pricing.resolve("openai", "model=my-api-model-2031-01-01", prices=prices)
    est = by_tokens.estimate(compute_seconds=10, prompt_tokens=2_000_000, completion_tokens=100_000,
                             n_items=500, complete=True)
    assert est is not None and est.basis == "tokens"
    assert est.usd == pytest.approx(2 * 3 + 0.1 * 15)
    assert est.per_1k_items == pytest.approx(est.usd * 2)
    by_time = Pricing.resolve("hf", "pretrained=/x/my-api-model", gpu_hour_cost=1.8, prices=prices)
    est = by_time.estimate(compute_seconds=100, prompt_tokens=None, completion_tokens=None, n_items=50, complete=True)
    assert est is not None and est.basis == "gpu_time" and est.usd == pytest.approx(0.05)
    # Incomplete measurements give no cost rather than an understated one.
    assert by_time.estimate(compute_seconds=100, prompt_tokens=1, completion_tokens=1, n_items=50, complete=False) is None
    with pytest.raises(ConfigError, match="gpu_hour_cost"):
        Pricing.resolve("hf", "pretrained=x", gpu_hour_cost=-1)


# ----------------------------------------------------------------------------- real runs


def _check_invariants(eff: dict[str, Any], *, wall: float | None = None) -> None:
    run = eff["run"]
    tasks = eff["tasks"].values()
    assert run["n_timed_requests"] == run["n_requests"] > 0
    assert run["compute_seconds"] > 0
    # rates × time = amounts
    assert run["items_per_second"] * run["compute_seconds"] == pytest.approx(run["n_items"], rel=1e-9)
    assert run["requests_per_second"] * run["compute_seconds"] == pytest.approx(run["n_requests"], rel=1e-9)
    assert run["prompt_tokens_per_second"] * run["compute_seconds"] == pytest.approx(run["prompt_tokens"], rel=1e-9)
    gen_tokens = sum(t["completion_tokens"] for t in tasks if t["generation_compute_seconds"])
    assert run["output_tokens_per_second"] * run["generation_compute_seconds"] == pytest.approx(gen_tokens, rel=1e-9)
    # the run is the sum of its tasks (no request is shared between sums_mc and sums_gen)
    for key in ("n_items", "n_requests", "prompt_tokens", "completion_tokens"):
        assert run[key] == sum(t[key] for t in tasks), key
    assert run["compute_seconds"] == pytest.approx(sum(t["compute_seconds"] for t in tasks), rel=1e-9)
    for s in [run, *tasks]:
        lat = s["latency_s"]
        assert 0 <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
        assert lat["max"] <= run["compute_seconds"] + 1e-9
        if s["cost"]:
            assert s["cost"]["usd_per_1k_items"] == pytest.approx(s["cost"]["usd"] / s["n_items"] * 1000)
            if s["score"] and s["cost"]["usd"] > 0:
                assert s["score_per_dollar"] == pytest.approx(s["score"]["value"] / s["cost"]["usd"])
    if wall is not None:
        assert run["compute_seconds"] <= eff["this_invocation"]["backend_call_seconds"] + 1e-6
        assert eff["this_invocation"]["backend_call_seconds"] <= wall
        assert run["items_per_second"] >= run["n_items"] / wall


class WithoutStats:
    """Any backend that reports no RequestStats (the engine then times the callbacks itself and
    counts tokens with the backend's tokenizer): the real HF backend with its stats dropped."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name

    def __getattr__(self, attr: str) -> Any:  # fingerprint, describe, tok_encode
        return getattr(self.inner, attr)

    def _call(self, method: str, requests: Any, on_done: Any) -> None:
        getattr(self.inner, method)(requests, lambda positions, results, stats=None: on_done(positions, results))

    def loglikelihood(self, requests: Any, on_done: Any) -> None:
        self._call("loglikelihood", requests, on_done)

    def loglikelihood_rolling(self, requests: Any, on_done: Any) -> None:
        self._call("loglikelihood_rolling", requests, on_done)

    def generate(self, requests: Any, on_done: Any) -> None:
        self._call("generate", requests, on_done)


@pytest.mark.parametrize("backend_stats", [True, False], ids=["hf", "engine-clock"])
def test_run_records_every_request_and_summaries_are_consistent(
    gpt2_model_dir: Path, tmp_path: Path, backend_stats: bool
) -> None:
    out = tmp_path / "run"
    spec = _spec(gpt2_model_dir, out, gpu_hour_cost=3.6)
    model = load_model(spec.model, spec.model_args, device="cpu", batch_size=spec.batch_size)
    if not backend_stats:
        model = WithoutStats(model)
    outcome = evaluate(spec, model=model)
    doc = json.loads((out / "results.json").read_text())
    # lm-eval's layout is untouched; efficiency sits in gapmeter's own block
    assert isinstance(doc["results"]["sums_mc"]["acc,none"], float)
    eff = doc["gapmeter"]["efficiency"]
    assert eff["definitions"] == "docs/efficiency.md"
    _check_invariants(eff, wall=outcome.wall_seconds)
    run = eff["run"]
    assert run["n_items"] == 24 and run["n_requests"] == 12 * 4 + 12
    if not backend_stats:
        assert run["timing_source"] == "engine" and run["token_source"] == "tokenizer"
    else:  # the HF backend may report its own batch timings and token counts
        assert run["timing_source"] in ("engine", "backend") and run["token_source"] in ("tokenizer", "backend")
    assert run["ttft_s"] is None  # no streaming backend
    assert run["peak_host_memory_bytes"] > 50 * 2**20 and run["peak_gpu_memory_bytes"] is None

    # One stored timing per response; the requests of a callback (one batch) share its interval,
    # so sum(latency / batch) is the busy time.
    db = out / "gapmeter.sqlite"
    timings = _rows(db, "select latency_s, batch_size from request_timings")
    assert len(timings) == _rows(db, "select count(*) from responses")[0][0] == run["n_requests"]
    # (unix timestamps as doubles resolve ~0.24 µs: that is the tolerance per request)
    assert math.fsum(lat / b for lat, b in timings) == pytest.approx(run["compute_seconds"], abs=1e-6 * len(timings))

    # cost = measured time × rate ($3.6/h = $0.001/s), per task too
    assert run["cost"]["basis"] == "gpu_time"
    assert run["cost"]["usd"] == pytest.approx(run["compute_seconds"] * 0.001, rel=1e-12)
    for t in eff["tasks"].values():
        assert t["cost"]["usd"] == pytest.approx(t["compute_seconds"] * 0.001, rel=1e-12)

    # tokens are what the model's tokenizer counts
    tok = AutoTokenizer.from_pretrained(gpt2_model_dir)
    mc, gen = ([json.loads(x) for x in cast(Path, samples_path(out, t)).read_text().splitlines()]
               for t in ("sums_mc", "sums_gen"))
    gen = [s for s in gen if s["filter"] == gen[0]["filter"]]  # lm-eval's layout: a line per doc and filter
    pairs = {(a["arg_0"], a["arg_1"]) for s in mc for a in s["arguments"].values()}
    expect_mc = sum(len(tok(c)["input_ids"]) + len(tok(x, add_special_tokens=False)["input_ids"]) for c, x in pairs)
    assert eff["tasks"]["sums_mc"]["prompt_tokens"] == expect_mc
    assert eff["tasks"]["sums_mc"]["completion_tokens"] == 0
    if run["token_source"] == "tokenizer":  # counted on the returned (stop-cut) text
        expect_out = sum(len(tok(s["resps"][0][0], add_special_tokens=False)["input_ids"]) for s in gen)
        assert eff["tasks"]["sums_gen"]["completion_tokens"] == expect_out
    else:  # the tokens the backend generated: at most max_gen_toks=6 each
        assert 0 < eff["tasks"]["sums_gen"]["completion_tokens"] <= 6 * 12

    # the store has the run, task rows; a fully cached re-run reports the same measurements
    rows = _rows(db, "select scope, task, n_items, compute_seconds, cost_usd from efficiency order by id")
    assert [(r[0], r[1]) for r in rows] == [("run", ""), ("task", "sums_mc"), ("task", "sums_gen")]
    again = evaluate(_spec(gpt2_model_dir, out, gpu_hour_cost=3.6), model=model)
    assert again.computed_requests == 0
    assert again.efficiency is not None
    assert again.efficiency.run.compute_seconds == run["compute_seconds"]
    assert again.efficiency.run.prompt_tokens == run["prompt_tokens"]
    assert again.efficiency.invocation["recorded_requests"] == 0


def test_price_table_entry_prices_a_run_by_tokens(gpt2_model_dir: Path, tmp_path: Path) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text(f"models:\n  {gpt2_model_dir.name}: {{input: 2.5, output: 10}}\n")
    outcome = evaluate(_spec(gpt2_model_dir, tmp_path / "o", prices=prices))
    eff = outcome.efficiency
    assert eff is not None
    for s in eff.summaries():
        assert s.cost is not None and s.cost.basis == "tokens"
        assert s.cost.usd == pytest.approx((s.prompt_tokens * 2.5 + s.completion_tokens * 10) / 1e6, rel=1e-12)
    data = json.loads((tmp_path / "o" / "results.json").read_text())["gapmeter"]["efficiency"]
    assert data["pricing"]["price"]["usd_per_1m_input_tokens"] == 2.5


def test_bad_prices_file_fails_before_any_work(gpt2_model_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("models:\n  x: {input: cheap, output: 1}\n")
    out = tmp_path / "o"
    proc = subprocess.run(
        [sys.executable, "-m", "gapmeter.cli", "run", "--model", "hf", "--model_args",
         f"pretrained={gpt2_model_dir}", "--tasks", SUMS, "--include_path", str(FIXTURES),
         "--output_path", str(out), "--prices", str(bad), "--limit", "2"],
        capture_output=True, text=True,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and str(bad) in proc.stderr and "models.x.input" in proc.stderr
    assert not (out / "gapmeter.sqlite").exists()


def _cmd(model_dir: Path, out: Path) -> list[str]:
    return [
        sys.executable, "-m", "gapmeter.cli", "run", "--model", "hf",
        "--model_args", f"pretrained={model_dir},dtype=float32", "--tasks", SUMS,
        "--include_path", str(FIXTURES), "--output_path", str(out), "--limit", "24",
        "--batch_size", "1", "--device", "cpu", "--verbosity", "ERROR", "--bootstrap_iters", "0",
        "--gpu_hour_cost", "1",
    ]


def _count(db: Path, table: str) -> int:
    if not db.exists():
        return 0
    try:
        return _rows(db, f"select count(*) from {table}")[0][0]
    except sqlite3.OperationalError:
        return 0


def test_kill_and_resume_neither_loses_nor_double_counts(gpt2_model_dir: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    out = tmp_path / "killed"
    db = out / "gapmeter.sqlite"
    total = 24 * 4 + 24
    proc = subprocess.Popen(_cmd(gpt2_model_dir, out), env=env)
    deadline = time.time() + 180
    while time.time() < deadline and _count(db, "responses") < total // 3:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = _count(db, "responses")
    assert 0 < before < total, "the kill must land mid-run"
    first_run = dict(_rows(db, "select request_hash, started_at from request_timings"))
    assert len(first_run) >= before  # every stored response already has its timing

    subprocess.run(_cmd(gpt2_model_dir, out), check=True, env=env)
    eff = json.loads((out / "results.json").read_text())["gapmeter"]["efficiency"]
    _check_invariants(eff)
    # exactly one timing per response, and the responses kept from the killed process keep
    # the timing of their original computation
    assert _count(db, "request_timings") == _count(db, "responses") == total
    assert eff["run"]["n_timed_requests"] == total
    cached = {h for (h,) in _rows(db, "select request_hash from responses")}
    now = dict(_rows(db, "select request_hash, started_at from request_timings"))
    kept = [h for h in first_run if h in cached and now[h] == first_run[h]]
    assert len(kept) == before
    assert eff["this_invocation"]["recorded_requests"] == total - len(kept)

    # an uninterrupted run has the same amounts (tokens, items, requests)
    ref = evaluate(_spec(gpt2_model_dir, tmp_path / "ref", limit=24, batch_size="8"))
    assert ref.efficiency is not None
    for key in ("n_items", "n_requests", "prompt_tokens", "completion_tokens"):
        assert getattr(ref.efficiency.run, key) == eff["run"][key], key


def test_a_timing_without_its_response_is_replaced_when_the_response_is_computed(
    gpt2_model_dir: Path, tmp_path: Path
) -> None:
    # The one window a kill can hit: the timing row is committed, the response is not.
    out = tmp_path / "o"
    evaluate(_spec(gpt2_model_dir, out, limit=4))
    db = out / "gapmeter.sqlite"
    lost = [h for (h,) in _rows(db, "select request_hash from responses limit 5")]
    marks = ",".join(f"'{h}'" for h in lost)
    with sqlite3.connect(db) as con:
        con.execute(f"delete from responses where request_hash in ({marks})")
        con.execute(f"update request_timings set started_at = -1 where request_hash in ({marks})")
    again = evaluate(_spec(gpt2_model_dir, out, limit=4))
    assert again.computed_requests == 5
    assert _rows(db, f"select count(*) from request_timings where request_hash in ({marks}) and started_at > 0")[0][0] == 5
    assert _count(db, "request_timings") == _count(db, "responses")


# ----------------------------------------------------------------------------- backend stats


class ConcurrentSumsServer:
    """A backend that answers sums questions correctly, several at a time, and reports what an
    API backend reports: per-request latency, time to first token and provider token usage."""

    name = "sums-api"

    def __init__(self, concurrency: int = 4, first_token_s: float = 0.02, per_token_s: float = 0.01) -> None:
        self.concurrency = concurrency
        self.first_token_s = first_token_s
        self.per_token_s = per_token_s
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()

    def fingerprint(self) -> str:
        return "sums-api-v1"

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}

    def _answer(self, context: str) -> tuple[str, RequestStats]:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        t0 = time.perf_counter()
        a, b = map(int, re.findall(r"Q: (\d+)\+(\d+)=\?\nA:$", context)[0])
        text = str(a + b)
        time.sleep(self.first_token_s)
        ttft = time.perf_counter() - t0
        time.sleep(self.per_token_s * 2)
        with self._lock:
            self.in_flight -= 1
        done = time.perf_counter()
        stats = RequestStats(latency_s=done - t0, ttft_s=ttft, prompt_tokens=len(context.split()),
                             completion_tokens=3, usage_reported=True, finished_at=done)
        return text, stats

    def generate(self, requests: Any, on_done: Any) -> None:
        # Responses are handed over in batches of 8, after they are complete (as an API backend
        # that batches its store commits does); finished_at places each interval exactly.
        pending: list[tuple[int, str, RequestStats]] = []
        with ThreadPoolExecutor(self.concurrency) as pool:
            futures = {pool.submit(self._answer, r.context): i for i, r in enumerate(requests)}
            for fut in as_completed(futures):
                pending.append((futures[fut], *fut.result()))
                if len(pending) == 8:
                    on_done(*map(list, zip(*pending, strict=True)))
                    pending = []
        if pending:
            on_done(*map(list, zip(*pending, strict=True)))

    def loglikelihood(self, requests: Any, on_done: Any) -> None:
        raise AssertionError("not used")

    def loglikelihood_rolling(self, requests: Any, on_done: Any) -> None:
        raise AssertionError("not used")


def test_backend_stats_give_ttft_itl_provider_tokens_and_overlap_aware_busy_time(tmp_path: Path) -> None:
    backend = ConcurrentSumsServer()
    spec = RunSpec(model="hf", model_args="", tasks=("sums_gen",), include_path=(FIXTURES,), limit=24,
                   output_path=tmp_path / "o", bootstrap_iters=0)
    outcome = evaluate(spec, model=backend)  # type: ignore[arg-type]
    assert outcome.tasks["sums_gen"].metrics[0].value == 1.0
    eff = outcome.efficiency
    assert eff is not None
    run = eff.run
    assert run.timing_source == "backend" and run.token_source == "provider"
    assert run.completion_tokens == 3 * 24
    assert backend.max_in_flight > 1
    db = tmp_path / "o" / "gapmeter.sqlite"
    rows = _rows(db, "select started_at, finished_at, latency_s, ttft_s from request_timings")
    latencies = [r[2] for r in rows]
    # Busy time is the union of the overlapping request intervals: neither the sum of latencies
    # nor (responses being handed over late, in batches) the time between callbacks.
    assert run.compute_seconds == pytest.approx(union_length([r[0] for r in rows], [r[1] for r in rows]), rel=1e-9)
    assert run.compute_seconds < 0.75 * sum(latencies)
    assert run.compute_seconds >= sum(latencies) / backend.concurrency - 1e-9
    # TTFT and inter-token latency from the reported stats
    assert run.ttft.n == 24 and 0.02 <= run.ttft.p50 <= run.latency.p50
    itl = [(lat - ttft) / 2 for _, _, lat, ttft in rows]
    assert run.inter_token_latency.p50 == pytest.approx(float(np.percentile(itl, 50)), rel=1e-9)
    assert run.inter_token_latency.p50 >= 0.01
    assert run.output_tokens_per_second == pytest.approx(72 / run.compute_seconds, rel=1e-9)
