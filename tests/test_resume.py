"""A run killed with SIGKILL at any point finishes, on the same command, with identical results
and without recomputing what it had stored."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gapmeter.store.results_json import samples_path

FIXTURES = Path(__file__).parent / "fixtures" / "user_tasks"


def _cmd(model_dir: Path, out: Path, batch_size: str = "1") -> list[str]:
    return [
        sys.executable, "-m", "gapmeter.cli", "run", "--model", "hf",
        "--model_args", f"pretrained={model_dir},dtype=float32",
        "--tasks", str(FIXTURES / "sums.yaml"), "--include_path", str(FIXTURES),
        "--output_path", str(out), "--log_samples", "--batch_size", batch_size,
        "--device", "cpu", "--verbosity", "ERROR",
    ]


def _stored(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=1) as con:
            return con.execute("select count(*) from responses").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def _metrics(out: Path) -> dict:
    doc = json.loads((out / "results.json").read_text())
    return {t: {k: v for k, v in r.items() if k != "alias"} for t, r in doc["results"].items()}


def _samples(out: Path, task: str) -> list[dict]:
    path = samples_path(out, task)
    assert path is not None
    lines = path.read_text().splitlines()
    return [{k: v for k, v in json.loads(x).items()} for x in lines]


@pytest.mark.parametrize("batch_size", ["1", "8"])
def test_sigkill_then_rerun_gives_identical_results(gpt2_model_dir: Path, tmp_path: Path, batch_size: str) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    ref_out = tmp_path / "ref"
    subprocess.run(_cmd(gpt2_model_dir, ref_out), check=True, env=env)
    total = _stored(ref_out / "gapmeter.sqlite")
    assert total > 400

    out = tmp_path / "killed"
    proc = subprocess.Popen(_cmd(gpt2_model_dir, out, batch_size), env=env)
    deadline = time.time() + 120
    while time.time() < deadline and _stored(out / "gapmeter.sqlite") < total // 3:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    stored_before = _stored(out / "gapmeter.sqlite")
    assert 0 < stored_before < total, "the kill must land mid-run"
    assert not (out / "results.json").exists(), "no half-written results"

    subprocess.run(_cmd(gpt2_model_dir, out, batch_size), check=True, env=env)
    info = json.loads((out / "results.json").read_text())["gapmeter"]
    assert info["cached_requests"] >= stored_before
    assert info["computed_requests"] == total - info["cached_requests"]
    ref, got = _metrics(ref_out), _metrics(out)
    for task, values in ref.items():
        for key, value in values.items():
            if isinstance(value, float):
                assert got[task][key] == pytest.approx(value, abs=1e-9), (task, key)
            else:
                assert got[task][key] == value
    for task in ("sums_mc", "sums_gen"):
        for a, b in zip(_samples(ref_out, task), _samples(out, task), strict=True):
            assert a["filter"] == b["filter"] and a["metrics"] == b["metrics"]
            assert [a[m] for m in a["metrics"]] == [b[m] for m in b["metrics"]]
            assert a["arguments"] == b["arguments"]
            if task == "sums_gen":
                assert a["resps"] == b["resps"]
            else:  # lm-eval's layout: [["<loglikelihood>", "<is_greedy>"]] per request, as strings
                for (ra,), (rb,) in zip(a["resps"], b["resps"], strict=True):
                    assert float(ra[0]) == pytest.approx(float(rb[0]), abs=1e-5)
                    assert ra[1] == rb[1]


def test_rerun_of_a_finished_run_computes_nothing(gpt2_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    subprocess.run(_cmd(gpt2_model_dir, out), check=True)
    subprocess.run(_cmd(gpt2_model_dir, out), check=True)
    info = json.loads((out / "results.json").read_text())["gapmeter"]
    assert info["computed_requests"] == 0
