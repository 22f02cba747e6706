"""Oren et al. (2023) sharded exchangeability test: is the canonical order of the test set special?

If a model never saw the test set, every ordering of its items is equally likely under the model
(the items are exchangeable). A model that saw the set *in its published order* assigns the
canonical order a higher likelihood. Split the canonical sequence into r contiguous shards; for
each, a_i = log p(canonical shard) − mean_j log p(shard reordered j), over distinct other
orderings (all of them when a shard has few items). Items are joined with a blank line, as a file
dump would have them. Only verbatim, in-order contamination is visible to this test; shuffled or
scattered copies are not.

The p-value (``oren_test = "randomization"``, the default) comes from the stratified
randomization test in ``stats.pooled_exchangeability_test``: under the null the canonical
ordering is equally likely to be any member of its shard's pool, so re-drawing which member is
canonical gives the exact null distribution of mean(a). Oren et al.'s one-sided t-test over the
a_i (``oren_test = "t"``) over-rejects with few items per shard (docs/audit.md, issue 20); its
p-value is still reported in ``details["p_t_test"]`` for comparison.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gapmeter.audit.base import AuditContext, Detector
from gapmeter.audit.calibration import oren_calibration
from gapmeter.audit.result import DetectorResult
from gapmeter.audit.stats import (
    TestResult,
    exchangeability_tail_bound,
    one_sided_t,
    pooled_exchangeability_test,
)
from gapmeter.requests import RollingLoglikelihoodRequest

SEPARATOR = "\n\n"
TESTS = ("randomization", "t")


def shard_indices(n_items: int, shards: int, min_items_per_shard: int) -> list[list[int]]:
    """Contiguous shards of the canonical order (the audit's rule: ≤ ``shards``, ≥ min items each)."""
    n_shards = min(shards, n_items // min_items_per_shard)
    if n_shards < 2:
        return []
    return [[int(i) for i in s] for s in np.array_split(np.arange(n_items), n_shards)]


def orderings(shard: Sequence[int], others: int, rng: random.Random) -> list[list[int]]:
    """The shard's canonical ordering first, then ``others`` distinct other orderings.

    Every other ordering when there are at most ``others`` of them (2-item shards: just the
    swap), else a uniform sample without replacement. Distinct draws matter: then the pool is a
    uniform random set of orderings that contains the canonical one, and under the null the
    canonical one is equally likely to be any member — what the randomization test relies on.
    """
    canonical = list(shard)
    if math.factorial(len(canonical)) <= others + 1:
        rest = [list(p) for p in itertools.permutations(canonical)]
        rest.remove(canonical)
        return [canonical, *rest]
    seen = {tuple(canonical)}
    pool = [canonical]
    while len(pool) < others + 1:
        perm = list(canonical)
        rng.shuffle(perm)
        if tuple(perm) not in seen:
            seen.add(tuple(perm))
            pool.append(perm)
    return pool


def shard_test(pools: Sequence[Sequence[float]], test: str, *, n_resamples: int, seed: str) -> TestResult:
    """The p-value of the sharded test from each shard's pool of log-likelihoods (canonical first)."""
    if test == "t":
        return one_sided_t([p[0] - float(np.mean(p[1:])) for p in pools])
    if test == "randomization":
        rng = np.random.default_rng(random.Random(seed).getrandbits(64))
        return pooled_exchangeability_test(pools, n_resamples=n_resamples, rng=rng)
    raise ValueError(f"unknown Oren test {test!r}; expected one of {TESTS}")


def look_ends(width: int, first: int) -> list[int]:
    """Orderings per shard (canonical included) scored after each look: 1 + ``first``, then
    ``2·first``, ``4·first``... more, the last look capped at ``width`` (few interim looks)."""
    ends: list[int] = []
    done, step = 0, first
    while done < width:
        done = min(width, done + step + (1 if done == 0 else 0))
        step *= 2
        ends.append(done)
    return ends


@dataclass(frozen=True)
class Sequential:
    """What the looks gave: the pools, how many looks ran, why it stopped, the reported p."""

    pools: list[list[float]]
    looks: int
    stopped: str | None  # "efficacy" | "futility" | None (every look ran)
    p_value: float
    w_interim: float
    w_final: float


class OrenExchangeability(Detector):
    name = "oren_exchangeability"
    needs = ("loglikelihood_rolling",)
    requires = "the test set in its canonical (published) order"

    def _score_in_rounds(
        self, ctx: AuditContext, texts: list[str], shard_orders: list[list[list[int]]], seed: str,
    ) -> Sequential:
        """Each shard's pool of log-likelihoods (canonical first), scored in looks of
        ``oren_round`` other orderings per shard, then twice, four times... as many; after each
        interim look the test may stop (randomization test only; docs/audit.md, "Oren's test on
        a budget"):

        * for efficacy, once the looks' weighted Bonferroni p-value is ≤ ``oren_efficacy_p``: an
          interim look's p is Hoeffding's bound on the exact randomization p over
          ``oren_interim_weight``, the final look's the Monte-Carlo p over the rest of the
          weight, and the reported p is the smallest seen — never below the minimum over all
          looks, which is a valid p-value, so any stopping rule keeps it valid;
        * for futility, once the interim Monte-Carlo p is ≥ ``oren_futility_p`` (≥ the late bound,
          alpha by default, from ``oren_late_look_pool`` orderings per shard on); the reported p
          is that interim p, ≥ the bound: for every a below it a futility stop never reports
          p ≤ a, and the other branches report ≥ the all-looks minimum, so P(p ≤ a) ≤ a.
        """
        cfg = ctx.config
        pools: list[list[float]] = [[] for _ in shard_orders]
        ends = look_ends(max(len(o) for o in shard_orders), cfg.oren_round)
        sequential = cfg.oren_test == "randomization"
        w_interim = cfg.oren_interim_weight if sequential and len(ends) > 1 else 0.0
        w_final = 1.0 - w_interim * (len(ends) - 1)
        late_bound = cfg.oren_late_futility_p if cfg.oren_late_futility_p is not None else cfg.alpha
        best = 1.0  # smallest weighted p over the looks so far
        done = 0
        for look, upto in enumerate(ends, 1):
            batch = [(i, order) for i, pool in enumerate(shard_orders) for order in pool[done:upto]]
            lls = ctx.runner.run([RollingLoglikelihoodRequest(SEPARATOR.join(texts[j] for j in order)) for _, order in batch])
            for (i, _), ll in zip(batch, lls, strict=True):
                pools[i].append(float(ll))
            done = upto
            if look == len(ends) or not sequential:
                continue
            if w_interim > 0:
                best = min(best, exchangeability_tail_bound(pools) / w_interim)
                if best <= cfg.oren_efficacy_p:
                    return Sequential(pools, look, "efficacy", best, w_interim, w_final)
            interim = shard_test(pools, cfg.oren_test, n_resamples=cfg.oren_resamples, seed=seed)
            bound = late_bound if upto >= cfg.oren_late_look_pool else cfg.oren_futility_p
            if interim.p_value >= bound:
                return Sequential(pools, look, "futility", interim.p_value, w_interim, w_final)
        final = shard_test(pools, cfg.oren_test, n_resamples=cfg.oren_resamples, seed=seed).p_value
        p = min(1.0, best, final / w_final) if sequential else final
        return Sequential(pools, len(ends), None, p, w_interim, w_final)

    def detect(self, ctx: AuditContext) -> DetectorResult:
        cfg = ctx.config
        texts = ctx.candidate.texts()
        shards = shard_indices(len(texts), cfg.oren_shards, cfg.oren_min_items_per_shard)
        if not shards:
            return self.skip(ctx, f"needs at least {2 * cfg.oren_min_items_per_shard} items for 2 shards")
        rng = random.Random(f"oren/{cfg.seed}/{ctx.candidate.name}")
        shard_orders = [orderings(s, cfg.oren_permutations, rng) for s in shards]
        seed = f"oren-test/{cfg.seed}/{ctx.candidate.name}"
        seq = self._score_in_rounds(ctx, texts, shard_orders, seed)
        pools = seq.pools
        diffs = [p[0] - float(np.mean(p[1:])) for p in pools]
        t_test = one_sided_t(diffs)
        sizes = sorted({len(s) for s in shards})
        calibration = oren_calibration(cfg.oren_test, sizes)
        items_per_shard = len(texts) / len(shards)
        return self.result(
            ctx,
            # the randomization test's statistic is the mean shard difference; the t-test's is t
            statistic=t_test.statistic if cfg.oren_test == "t" else float(np.mean(diffs)),
            p_value=seq.p_value,
            effect=float(np.mean(diffs)) / items_per_shard,
            effect_name="nats per item gained by canonical order",
            n=len(texts),
            details={
                "shards": len(shards),
                "items_per_shard": sizes,
                "orderings_per_shard": sorted({len(p) - 1 for p in pools}),
                "orderings_planned": sorted({len(p) - 1 for p in shard_orders}),
                "rounds": seq.looks,
                "stopped_for_futility": seq.stopped == "futility",
                "stopped_for_efficacy": seq.stopped == "efficacy",
                "futility_p": cfg.oren_futility_p,
                "late_futility_p": cfg.oren_late_futility_p if cfg.oren_late_futility_p is not None else cfg.alpha,
                "efficacy_p": cfg.oren_efficacy_p,
                "look_weights": {"interim": seq.w_interim, "final": round(seq.w_final, 6)},
                "test": cfg.oren_test,
                "resamples": cfg.oren_resamples if cfg.oren_test == "randomization" else None,
                "p_t_test": t_test.p_value,
                "mean_shard_diff": float(np.mean(diffs)),
                "shard_diffs": [round(d, 4) for d in diffs],
                "calibration": calibration,
            },
        )
