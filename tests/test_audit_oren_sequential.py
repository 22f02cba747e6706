"""Oren's test in looks (issue 18): Hoeffding's bound is never below the exact randomization p,
a memorised canonical order stops after the first look, and on exchangeable orderings the
sequential p keeps its level while most tests stop early.

The log-likelihoods come from scripted backends (a function of the text), because what is under
test is the stopping rule and its p-value, whose null and alternative must be known exactly."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from gapmeter.audit.config import AuditConfig
from gapmeter.audit.oren import SEPARATOR, OrenExchangeability, look_ends, orderings, shard_indices
from gapmeter.audit.responses import RequestRunner
from gapmeter.audit.stats import exchangeability_tail_bound, pooled_exchangeability_test
from gapmeter.requests import RollingLoglikelihoodRequest


class Scripted:
    """A backend whose rolling log-likelihood of a text is ``score(text)``."""

    name = "scripted"

    def __init__(self, score: Callable[[str], float]) -> None:
        self.score = score
        self.calls = 0

    def loglikelihood_rolling(self, requests: Sequence[RollingLoglikelihoodRequest], on_done: Any) -> None:
        self.calls += len(requests)
        on_done(list(range(len(requests))), [self.score(r.text) for r in requests])


def _noise(text: str) -> float:
    """Exchangeable: a pseudo-random number per text, the same whichever order made it."""
    return int(hashlib.sha256(text.encode()).hexdigest()[:12], 16) / 16**12 * 20.0


def _run(score: Callable[[str], float], n_items: int, cfg: AuditConfig, tag: str) -> tuple[Any, int]:
    texts = [f"item {tag} {i}" for i in range(n_items)]
    shards = shard_indices(n_items, cfg.oren_shards, cfg.oren_min_items_per_shard)
    rng = random.Random(f"oren/{tag}")
    shard_orders = [orderings(s, cfg.oren_permutations, rng) for s in shards]
    backend = Scripted(score)
    ctx = SimpleNamespace(runner=RequestRunner(backend), config=cfg)  # what the looks read
    seq = OrenExchangeability()._score_in_rounds(ctx, texts, shard_orders, seed=f"oren-test/{tag}")  # type: ignore[arg-type]
    return seq, backend.calls


def test_look_ends_double() -> None:
    assert look_ends(51, 1) == [2, 4, 8, 16, 32, 51]
    assert look_ends(51, 5) == [6, 16, 36, 51]
    assert look_ends(2, 1) == [2]  # 2-item shards: one look, nothing to stop


@pytest.mark.parametrize("seed", range(6))
def test_tail_bound_is_never_below_the_exact_p(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(50):
        pools = [list(rng.standard_t(3, size=int(rng.integers(2, 5)))) for _ in range(int(rng.integers(2, 7)))]
        for p in pools:
            p[0] += float(rng.uniform(0, 2))  # canonical pushed up by a random amount: small and large p
        exact = pooled_exchangeability_test(pools, n_resamples=10**6).p_value  # ≤ 4^6 assignments: enumerated
        assert exchangeability_tail_bound(pools) >= exact - 1e-12


def test_tail_bound_is_one_when_the_canonical_order_is_not_ahead() -> None:
    assert exchangeability_tail_bound([[0.0, 1.0], [0.0, 2.0]]) == 1.0
    assert exchangeability_tail_bound([[1.0, 1.0, 1.0]] * 3) == 1.0


def _memorised(text: str) -> float:
    """A model that saw the set in order: +3 nats per adjacent pair in canonical order."""
    ids = [int(t.rsplit(" ", 1)[1]) for t in text.split(SEPARATOR)]
    return 3.0 * sum(b == a + 1 for a, b in zip(ids, ids[1:], strict=False)) + _noise(text) / 20


def test_memorised_order_stops_for_efficacy_after_the_first_look() -> None:
    cfg = AuditConfig()  # the defaults: 50 shards, 50 orderings, looks at 2, 4, 8, ... 51
    seq, calls = _run(_memorised, 50 * 6, cfg, "mem")
    assert seq.stopped == "efficacy" and seq.looks == 1
    assert calls == 50 * 2  # the canonical and one other ordering per shard, not 51
    assert seq.p_value <= cfg.oren_efficacy_p
    # without the efficacy stop the same data run every look and end rejected too
    full, full_calls = _run(_memorised, 50 * 6, AuditConfig(oren_efficacy_p=0.0), "mem")
    assert full.stopped is None and full_calls == 50 * 51 and full.p_value < cfg.alpha


def test_exchangeable_orderings_keep_the_level_and_mostly_stop_early() -> None:
    cfg = AuditConfig(oren_shards=8, oren_permutations=50, oren_resamples=2000)
    ps, looks = [], []
    for rep in range(300):
        seq, _ = _run(_noise, 8 * 5, cfg, f"null{rep}")
        ps.append(seq.p_value)
        looks.append(seq.looks)
    ps_arr = np.array(ps)
    # 300 null tests: the rate at alpha is ≤ 0.05 + 2.3 SE (0.029) if the sequential p is valid
    assert (ps_arr <= cfg.alpha).mean() <= 0.08
    assert (ps_arr <= 0.01).mean() <= 0.03
    assert np.mean(looks) < 2.5  # of 6 looks planned; under the null most stop at the first or second


def test_a_futility_stop_reports_the_interim_p() -> None:
    cfg = AuditConfig(oren_shards=8, oren_permutations=50, oren_resamples=2000)
    stops = [seq for rep in range(40) if (seq := _run(_noise, 40, cfg, f"fut{rep}")[0]).stopped == "futility"]
    assert stops
    for seq in stops:
        bound = cfg.oren_futility_p if seq.looks < 2 else cfg.alpha  # look 2 holds 4 orderings per shard
        assert seq.p_value >= bound
    assert any(seq.p_value < 1.0 for seq in stops)  # informative, not clipped to 1
