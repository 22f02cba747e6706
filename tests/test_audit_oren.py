"""Oren's sharded test: the randomization p-value (exact cases, scipy cross-check, validity on a
null that makes the t-test over-reject), the orderings it draws, and the verdict rule for a
detector whose calibration check failed."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from scipy import stats as st

from gapmeter.audit.calibration import oren_calibration
from gapmeter.audit.oren import orderings, shard_indices, shard_test
from gapmeter.audit.result import DetectorResult
from gapmeter.audit.stats import one_sided_t, pooled_exchangeability_test
from gapmeter.audit.verdict import verdict


def test_two_orderings_per_shard_is_the_exact_sign_flip_test() -> None:
    # shard differences 1, 2, −0.5; of the 8 sign patterns of (1, 2, 0.5) two reach a sum ≥ 2.5
    res = pooled_exchangeability_test([[1.0, 0.0], [2.0, 0.0], [-0.5, 0.0]])
    assert res.statistic == pytest.approx(2.5 / 3)
    assert res.p_value == pytest.approx(2 / 8)
    # all positive: only the observed pattern reaches it
    assert pooled_exchangeability_test([[1.0, 0.0]] * 4).p_value == pytest.approx(1 / 16)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sign_flip_matches_scipy_permutation_test(seed: int) -> None:
    rng = np.random.default_rng(seed)
    d = rng.standard_t(2, size=12)
    ours = pooled_exchangeability_test([[x, 0.0] for x in d], n_resamples=10_000)
    ref = st.permutation_test((d,), np.mean, permutation_type="samples", alternative="greater", n_resamples=10_000)
    assert ours.p_value == pytest.approx(ref.pvalue, abs=1e-12)  # 2^12 ≤ 10,000: both exact


def test_larger_pools_enumerate_every_choice_of_canonical() -> None:
    # one shard, orderings with log-likelihoods 3, 1, 2: the canonical (3) is the highest of 3
    assert pooled_exchangeability_test([[3.0, 1.0, 2.0]]).p_value == pytest.approx(1 / 3)
    # two shards of 3: the canonical is the top of both (1 of 9 assignments reaches the sum)
    assert pooled_exchangeability_test([[3.0, 1.0, 2.0], [5.0, 0.0, 1.0]]).p_value == pytest.approx(1 / 9)
    # statistic: mean over shards of L(canonical) − mean L(others)
    assert pooled_exchangeability_test([[3.0, 1.0, 2.0]]).statistic == pytest.approx(1.5)


def test_monte_carlo_p_is_never_zero_and_close_to_exact() -> None:
    pools = [[1.0, 0.0]] * 30  # 2^30 assignments: Monte Carlo
    res = pooled_exchangeability_test(pools, n_resamples=999, rng=np.random.default_rng(0))
    assert res.p_value == pytest.approx(1 / 1000)
    rng = np.random.default_rng(1)
    d = rng.normal(0.3, 1, size=40)
    mc = pooled_exchangeability_test([[x, 0.0] for x in d], n_resamples=20_000, rng=np.random.default_rng(2))
    ref = st.permutation_test((d,), np.mean, permutation_type="samples", alternative="greater", n_resamples=20_000,
                              random_state=3)
    assert mc.p_value == pytest.approx(ref.pvalue, abs=0.01)


def _skewed_null(rng: np.random.Generator, shards: int) -> list[list[float]]:
    """Shards of 3 items (6 orderings): one ordering is far less likely than the other five (a
    hard item opening the shard, say); the canonical one is a uniform draw — a true null."""
    pools = []
    for _ in range(shards):
        pool = [0.0, 0.1, -0.1, 0.05, -0.05, -20.0]
        u = int(rng.integers(6))
        pools.append([pool[u], *pool[:u], *pool[u + 1 :]])
    return pools


def test_randomization_test_holds_alpha_where_the_t_test_over_rejects() -> None:
    rng = np.random.default_rng(0)
    nulls = [_skewed_null(rng, 8) for _ in range(400)]
    t_rate = np.mean([one_sided_t([p[0] - np.mean(p[1:]) for p in n]).p_value < 0.05 for n in nulls])
    r_rate = np.mean([pooled_exchangeability_test(n, n_resamples=2000, rng=rng).p_value < 0.05 for n in nulls])
    # (5/6)^8 = 23% of these nulls never draw the bad ordering: the t-test rejects most of them
    assert t_rate > 0.15
    # binomial band for a true 5% at n = 400: 99.9% of outcomes lie below 9.5%
    assert r_rate < 0.095


def test_heavy_tailed_two_item_shards_keep_alpha() -> None:
    rng = np.random.default_rng(5)
    rej = 0
    n = 600
    for _ in range(n):
        mags = np.abs(rng.standard_cauchy(50))
        signs = rng.choice([-1.0, 1.0], size=50)
        rej += pooled_exchangeability_test([[m * s, 0.0] for m, s in zip(mags, signs, strict=True)],
                                           n_resamples=1000, rng=rng).p_value < 0.05
    assert st.binomtest(rej, n, 0.05).pvalue > 0.001


def test_orderings_are_distinct_and_exhaustive_when_few() -> None:
    rng = random.Random(0)
    assert orderings([4, 7], 50, rng) == [[4, 7], [7, 4]]
    three = orderings([1, 2, 3], 50, rng)
    assert three[0] == [1, 2, 3] and len(three) == 6 and len({tuple(o) for o in three}) == 6
    five = orderings(list(range(5)), 50, rng)
    assert len(five) == 51 and len({tuple(o) for o in five}) == 51 and five[0] == list(range(5))
    assert math.factorial(5) > 51


def test_shards_follow_the_audit_rule() -> None:
    assert [len(s) for s in shard_indices(100, 50, 2)] == [2] * 50
    assert shard_indices(3, 50, 2) == []
    assert sorted({len(s) for s in shard_indices(137, 50, 2)}) == [2, 3]
    assert [len(s) for s in shard_indices(400, 10, 2)] == [40] * 10


def test_shard_test_dispatches() -> None:
    pools = [[1.0, 0.0], [2.0, 0.0], [-0.5, 0.0]]
    assert shard_test(pools, "t", n_resamples=100, seed="x").p_value == pytest.approx(one_sided_t([1, 2, -0.5]).p_value)
    assert shard_test(pools, "randomization", n_resamples=100, seed="x").p_value == pytest.approx(0.25)
    with pytest.raises(ValueError):
        shard_test(pools, "z", n_resamples=100, seed="x")


def _result(name: str, p: float, p_holm: float, calibration: dict | None = None) -> DetectorResult:
    r = DetectorResult(name, "t", [], statistic=1.0, p_value=p, effect=0.1, n=100, p_holm=p_holm)
    if calibration is not None:
        r.details["calibration"] = calibration
    return r


def test_a_detector_that_failed_calibration_cannot_make_contaminated_alone() -> None:
    failed = {"status": "failed", "reason": "t test with 2-item shards rejected 9% of true nulls"}
    v, why = verdict([_result("oren_exchangeability", 0.001, 0.004, failed), _result("min_k", 0.5, 0.5)], 0.05)
    assert v == "suspicious" and "calibration check failed" in why and "9% of true nulls" in why
    # another, calibrated detector surviving Holm still makes it contaminated
    v, _ = verdict([_result("oren_exchangeability", 0.001, 0.004, failed), _result("min_k", 0.001, 0.004)], 0.05)
    assert v == "contaminated"
    passed = {"status": "passed", "reason": "exact"}
    assert verdict([_result("oren_exchangeability", 0.001, 0.004, passed)], 0.05)[0] == "contaminated"


def test_calibration_lookup_states_its_status() -> None:
    cal = oren_calibration("randomization", [2])
    assert cal["status"] in {"passed", "failed"} and cal["reason"]
    assert oren_calibration("t", [2])["status"] in {"passed", "failed", "unchecked"}


def test_calibration_lookup_fails_an_over_rejecting_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from gapmeter.audit import calibration

    monkeypatch.setattr(calibration, "OREN_MEASURED", {("t", 2): (0.09, 0.07, 0.11, 1000), ("t", 10): (0.05, 0.04, 0.06, 1000)})
    bad = oren_calibration("t", [2, 3])
    assert bad["status"] == "failed" and "9.0% of 1000 true nulls" in bad["reason"]
    assert oren_calibration("t", [10])["status"] == "passed"
    assert oren_calibration("randomization", [2])["status"] == "passed"  # exact by construction
