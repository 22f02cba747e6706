"""`gapmeter selftest merge`: seeds run separately give one table, computed as one run would."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

from gapmeter.selftest.design import preset
from gapmeter.selftest.run import Row, summarise


def _row(seed: int, model: str, k: int, verdict: str, p: float, inflation: float, truth: float | None) -> Row:
    return Row(seed, model, f"g_scattered_k{k}_r0", "scattered", k, 16, verdict,
               {"min_k": {"p": p, "p_holm": p, "effect": 0.9, "skipped": None}},
               inflation, (inflation - 0.2, inflation + 0.2), truth)


def _write(out: Path, seed: int, rows: list[Row], *, before_issue_18: bool = False) -> None:
    p = preset("cpu", seeds=(seed,))
    out.mkdir(parents=True)
    new_columns = ("inflation_adjusted", "inflation_adjusted_ci", "mean_scores")  # what runs before issue 18 lack
    result = {"preset": {**asdict(p), "seeds": [seed], "levels": list(p.levels), "arms": list(p.arms)},
              "device": "cpu", "seconds": 10.0, "seeds": [{"seed": seed}], "summary": summarise(rows, 0.05),
              "rows": [{k: v for k, v in asdict(r).items() if not (before_issue_18 and k in new_columns)} for r in rows]}
    (out / "selftest.json").write_text(json.dumps(result))


def test_merge_pools_rows_and_refuses_overlaps(tmp_path: Path) -> None:
    a = [_row(1, "contaminated", 4, "contaminated", 0.001, 0.50, 0.40), _row(1, "clean", 0, "clean", 0.5, 0.0, None)]
    b = [_row(2, "contaminated", 4, "clean", 0.20, 0.30, 0.40), _row(2, "clean", 0, "contaminated", 0.01, 0.1, None)]
    _write(tmp_path / "s1", 1, a)
    _write(tmp_path / "s2", 2, b, before_issue_18=True)  # an older run's rows still merge
    cmd = [sys.executable, "-m", "gapmeter.cli", "selftest", "merge", str(tmp_path / "s1"), str(tmp_path / "s2"),
           "--output_path", str(tmp_path / "all")]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    merged = json.loads((tmp_path / "all" / "selftest.json").read_text())
    assert merged["preset"]["seeds"] == [1, 2]
    assert merged["summary"] == json.loads(json.dumps(summarise(a + b, 0.05)))
    power = merged["summary"]["power"][0]
    assert power["k"] == 4 and power["n_tests"] == 2 and power["verdict"] == 0.5 and power["min_k"] == 0.5
    err = merged["summary"]["inflation_error"]["planted groups (k ≥ 1)"]
    assert err["n_groups"] == 2 and abs(err["mean_error"] - 0.0) < 1e-12 and abs(err["mean_abs_error"] - 0.1) < 1e-12
    assert "| planted groups (k ≥ 1) | 2 | -0.0 | [-127.1, +127.1] | 10.0 |" in (tmp_path / "all" / "selftest.md").read_text()

    again = subprocess.run([*cmd[:5], str(tmp_path / "s1"), str(tmp_path / "s1"), "--output_path", str(tmp_path / "x")],
                           capture_output=True, text=True, check=False)
    assert again.returncode == 2 and "more than one run" in again.stderr and "Traceback" not in again.stderr
    assert not (tmp_path / "x").exists()
