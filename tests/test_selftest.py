"""The reduced planted-contamination self-test (``--preset quick``): real training, real detectors.

One seed, one tiny model trained here with ARC-Easy test items planted 16 times (scattered and as
an ordered block) next to unplanted control groups. The full table is docs/audit.md's; this
checks the machinery end to end and the two properties a reduced run can show reliably: heavy
contamination is flagged, and the never-planted controls are not; and that every row carries the
difficulty-adjusted inflation with the plant-free baseline, as adjusted.py computes it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from gapmeter.audit.adjusted import BaselineScores, adjusted_inflation
from gapmeter.commands.selftest import markdown_tables, merge_selftest_command, run_selftest_command
from gapmeter.selftest.design import assign, preset
from gapmeter.selftest.run import TWIN, UNADJUSTED, UNPLANTED, Row, summarise


def test_design_splits_items_at_random_without_overlap() -> None:
    p = preset("cpu")
    a = assign(2300, p, seed=5)
    used = list(a.reference) + [i for g in a.groups for i in g.items]
    assert len(used) == len(set(used))
    assert len(a.reference) == p.reference_size
    assert {(g.arm, g.k) for g in a.groups} == {(arm, k) for arm in p.arms for k in p.levels}
    assert all(list(g.items) == sorted(g.items) for g in a.groups)  # canonical order kept
    assert assign(2300, p, seed=5) == a and assign(2300, p, seed=6) != a


def test_quick_selftest_flags_planted_items_and_spares_controls(data_dir: Path, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("GAPMETER_DATA_DIR", str(data_dir))
    out = tmp_path / "st"
    result = run_selftest_command(out, preset="quick", console=Console(quiet=True))
    rows = result["rows"]
    assert {r["k"] for r in rows} == {0, 16}
    planted = [r for r in rows if r["k"] == 16]
    controls = [r for r in rows if r["k"] == 0]
    # Min-K% separates 16-fold planted items from never-seen reference items
    assert all(r["detectors"]["min_k"]["p"] < 0.001 for r in planted)
    assert all(r["verdict"] == "contaminated" for r in planted)
    assert all(r["verdict"] != "contaminated" for r in controls)
    for r in rows:
        assert set(r["detectors"]) == {"oren_exchangeability", "min_k", "min_k_plus_plus", "perturbation_gap", "ts_guessing", "guided_vs_general"}
    saved = json.loads((out / "selftest.json").read_text())
    assert saved["summary"]["power"] and (out / "selftest.md").read_text() == markdown_tables(saved)

    # the difficulty adjustment with the plant-free baseline (the quick preset trains no twin)
    info = saved["seeds"][0]
    assert info["train_unplanted"]["tokens_per_epoch"] < info["train_contaminated"]["tokens_per_epoch"]
    p = preset("quick")
    for r in rows:
        assert set(r["inflation_adjusted"]) == {UNPLANTED}
        est = r["inflation_adjusted"][UNPLANTED]
        low, high = r["inflation_adjusted_ci"][UNPLANTED]
        assert all(math.isfinite(x) for x in (est, low, high)) and low <= est <= high
        (pub, ref), (b_pub, b_ref) = r["mean_scores"]["model"], r["mean_scores"][UNPLANTED]
        assert r["inflation"] == pytest.approx(pub - ref)
        assert est == pytest.approx((pub - ref) - (b_pub - b_ref))
        # adjusted.py on 0/1 scores with those means gives the same estimate (it depends on means only)
        def bits(mean: float, n: int) -> list[float]:
            ones = round(mean * n)
            assert ones == pytest.approx(mean * n)
            return [1.0] * ones + [0.0] * (n - ones)
        n, m = p.group_size, p.reference_size
        again = adjusted_inflation(bits(pub, n), bits(ref, m), [BaselineScores(UNPLANTED, bits(b_pub, n), bits(b_ref, m))])
        assert again.estimate == pytest.approx(est)


def _row(seed: int, group: str, k: int, true_gain: float, unadjusted: float, twin: float, unplanted: float) -> Row:
    ci = {TWIN: (twin - 0.1, twin + 0.1), UNPLANTED: (unplanted - 0.02, unplanted + 0.02)}
    return Row(seed, "contaminated", group, "scattered", k, 16, "contaminated", {}, unadjusted,
               (unadjusted - 0.05, unadjusted + 0.05), true_gain, {TWIN: twin, UNPLANTED: unplanted}, ci)


def test_summary_gives_error_and_coverage_with_and_without_a_baseline(tmp_path: Path) -> None:
    rows = [
        _row(1, "g_a", 4, 0.50, 0.60, 0.45, 0.50),
        _row(1, "g_b", 4, 0.30, 0.28, 0.25, 0.40),
        _row(2, "g_a", 4, 0.40, 0.40, 0.35, 0.20),
    ]
    s = summarise(rows, 0.05)
    (cell,) = s["power"]
    by = cell["inflation_by_baseline"]
    assert by[UNADJUSTED]["mean_error"] == pytest.approx((0.10 - 0.02 + 0.0) / 3)
    assert by[UNADJUSTED]["mean_abs_error"] == pytest.approx(0.12 / 3)
    assert by[UNADJUSTED]["ci_covers_truth"] == pytest.approx(2 / 3)  # ±5 points: misses the +10
    assert by[TWIN]["mean_error"] == pytest.approx(-0.05) and by[TWIN]["ci_covers_truth"] == 1
    assert by[UNPLANTED]["mean_abs_error"] == pytest.approx(0.30 / 3)
    assert by[UNPLANTED]["ci_covers_truth"] == pytest.approx(1 / 3)  # ±2 points: only the exact one
    pooled = s["inflation_error_by_baseline"][TWIN]["planted groups (k ≥ 1)"]
    assert pooled["n_groups"] == 3 and pooled["ci"][0] == pytest.approx(pooled["ci"][1])  # errors all −5
    by_seed = s["inflation_error_by_baseline"][UNADJUSTED]["planted groups (k ≥ 1)"]["mean_error_by_seed"]
    assert by_seed == pytest.approx({1: 0.04, 2: 0.0})
    # a merge of runs made separately keeps the adjusted columns (JSON turns their pairs into lists)
    dirs = []
    for seed in (1, 2):
        d = tmp_path / f"s{seed}"
        d.mkdir()
        mine = [r for r in rows if r.seed == seed]
        preset_doc = {"benchmark": "arc_easy", "seeds": [seed], "size": "tiny", "epochs": 10, "group_size": 16, "reference_size": 200}
        (d / "selftest.json").write_text(json.dumps({
            "preset": preset_doc, "device": "cpu", "seconds": 1.0, "seeds": [{"seed": seed}],
            "summary": summarise(mine, 0.05), "rows": [r.__dict__ for r in mine]}))
        dirs.append(d)
    merged = merge_selftest_command(dirs, tmp_path / "all", console=Console(quiet=True))
    assert json.loads(json.dumps(merged["summary"]["inflation_error_by_baseline"])) == json.loads(json.dumps(s["inflation_error_by_baseline"]))
    md = (tmp_path / "all" / "selftest.md").read_text()
    assert f"{TWIN}: mean error" in md and f"| {UNPLANTED} | planted groups (k ≥ 1) | 3 |" in md
    assert "| 1: +4.0, 2: +0.0 |" in md
    assert np.isclose(float(md.split(f"| {TWIN} | planted groups (k ≥ 1) | 3 | ")[1].split(" |")[0]), -5.0)
