"""The Oren calibration check (random orders as canonical = true nulls) at a reduced count on a
tiny random model: the audit's randomization test rejects at its nominal rate."""

from __future__ import annotations

import json
from pathlib import Path

from scipy import stats as st

from gapmeter.audit.config import AuditConfig
from gapmeter.selftest.oren_null import Setting, null_draws, rate_interval, run_check


def test_null_draws_move_a_pool_member_first() -> None:
    import numpy as np

    draws = null_draws([[1.0, 2.0, 3.0], [4.0, 5.0]], 50, np.random.default_rng(0))
    assert all(sorted(d[0]) == [1.0, 2.0, 3.0] and sorted(d[1]) == [4.0, 5.0] for d in draws)
    assert {d[0][0] for d in draws} == {1.0, 2.0, 3.0}


def test_rate_interval_widens_with_clustered_nulls() -> None:
    independent = rate_interval([(5, 100)] * 10)
    clustered = rate_interval([(50, 100)] + [(0, 100)] * 9)
    assert independent["design_effect"] == 1.0 and clustered["design_effect"] > 5
    assert independent["rate"] == clustered["rate"] == 0.05
    lo, hi = clustered["ci95"]
    assert hi - lo > independent["ci95"][1] - independent["ci95"][0]


def test_randomization_test_is_calibrated_on_random_orders(gpt2_model_dir: Path, data_dir: Path, tmp_path: Path) -> None:
    settings = (Setting(20, 50), Setting(12, 4))  # 10 shards of 2 items; 4 shards of 3 (all 6 orderings)
    res = run_check(tmp_path, data_dir, model=gpt2_model_dir, tasks=("arc_easy", "openbookqa"), settings=settings,
                    partitions=3, draws=100, config=AuditConfig(oren_permutations=8, oren_resamples=2000), log=lambda m: None)
    cells = {(c["setting"], c["test"]): c for c in res["cells"]}
    assert len(cells) == 4 and all(c["nulls"] == 600 for c in cells.values())
    for setting in ("20 items, 10 shards of 2", "12 items, 4 shards of 3"):
        e = cells[(setting, "randomization")]["alpha=0.05"]
        # the exact test's rate given each pool is ≤ 5% (discreteness can make it lower): a true
        # 5% gives more than this many rejections with probability < 0.1%
        assert st.binomtest(e["hits"], e["n"], 0.05, alternative="greater").pvalue > 0.001, (setting, e)
    assert json.loads((tmp_path / "oren_null.json").read_text())["cells"]
    assert "| setting | test |" in (tmp_path / "oren_null.md").read_text()
