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

import numpy as np

from gapmeter.audit.base import AuditContext, Detector
from gapmeter.audit.calibration import oren_calibration
from gapmeter.audit.result import DetectorResult
from gapmeter.audit.stats import TestResult, one_sided_t, pooled_exchangeability_test
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


class OrenExchangeability(Detector):
    name = "oren_exchangeability"
    needs = ("loglikelihood_rolling",)
    requires = "the test set in its canonical (published) order"

    def _score_in_rounds(
        self, ctx: AuditContext, texts: list[str], shard_orders: list[list[list[int]]], seed: str,
    ) -> tuple[list[list[float]], int, bool]:
        """Each shard's pool of log-likelihoods (canonical first), scored in rounds of ``oren_round``,
        then twice, four times... as many orderings per shard; stops early once the interim
        p-value is ≥ ``oren_futility_p``.

        A futility stop only ever replaces "not rejected at the full pool" by "not rejected", so
        P(reject) ≤ alpha still holds; the reported p is then the interim one (≥ the bound).
        """
        cfg = ctx.config
        pools: list[list[float]] = [[] for _ in shard_orders]
        done = 0
        rounds = 0
        width = max(len(o) for o in shard_orders)
        step = cfg.oren_round
        while done < width:
            # the first round adds the canonical order; each later round doubles (few interim looks)
            upto = done + step + (1 if done == 0 else 0)
            step *= 2
            batch = [(i, order) for i, pool in enumerate(shard_orders) for order in pool[done:upto]]
            lls = ctx.runner.run([RollingLoglikelihoodRequest(SEPARATOR.join(texts[j] for j in order)) for _, order in batch])
            for (i, _), ll in zip(batch, lls, strict=True):
                pools[i].append(float(ll))
            done = upto
            rounds += 1
            if done < width and cfg.oren_test == "randomization":
                interim = shard_test(pools, cfg.oren_test, n_resamples=cfg.oren_resamples, seed=seed)
                if interim.p_value >= cfg.oren_futility_p:
                    return pools, rounds, True
        return pools, rounds, False

    def detect(self, ctx: AuditContext) -> DetectorResult:
        cfg = ctx.config
        texts = ctx.candidate.texts()
        shards = shard_indices(len(texts), cfg.oren_shards, cfg.oren_min_items_per_shard)
        if not shards:
            return self.skip(ctx, f"needs at least {2 * cfg.oren_min_items_per_shard} items for 2 shards")
        rng = random.Random(f"oren/{cfg.seed}/{ctx.candidate.name}")
        shard_orders = [orderings(s, cfg.oren_permutations, rng) for s in shards]
        seed = f"oren-test/{cfg.seed}/{ctx.candidate.name}"
        pools, rounds, stopped = self._score_in_rounds(ctx, texts, shard_orders, seed)
        diffs = [p[0] - float(np.mean(p[1:])) for p in pools]
        test = shard_test(pools, cfg.oren_test, n_resamples=cfg.oren_resamples, seed=seed)
        t_test = one_sided_t(diffs)
        sizes = sorted({len(s) for s in shards})
        calibration = oren_calibration(cfg.oren_test, sizes)
        items_per_shard = len(texts) / len(shards)
        return self.result(
            ctx,
            statistic=test.statistic,
            p_value=test.p_value,
            effect=float(np.mean(diffs)) / items_per_shard,
            effect_name="nats per item gained by canonical order",
            n=len(texts),
            details={
                "shards": len(shards),
                "items_per_shard": sizes,
                "orderings_per_shard": sorted({len(p) - 1 for p in pools}),
                "orderings_planned": sorted({len(p) - 1 for p in shard_orders}),
                "rounds": rounds,
                "stopped_for_futility": stopped,
                "futility_p": cfg.oren_futility_p,
                "test": cfg.oren_test,
                "resamples": cfg.oren_resamples if cfg.oren_test == "randomization" else None,
                "p_t_test": t_test.p_value,
                "mean_shard_diff": float(np.mean(diffs)),
                "shard_diffs": [round(d, 4) for d in diffs],
                "calibration": calibration,
            },
        )
