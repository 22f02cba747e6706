"""The audit's pre-registered settings.

Every number here was fixed before the self-test's reported split was run (docs/audit.md says
which split they were chosen on). Changing one is a new pre-registration: re-run the tuning split
and the reported split, and update the doc.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AuditConfig:
    alpha: float = 0.05
    # Min-K% / Min-K%++: the share of lowest-scoring tokens averaged (Shi et al.'s k = 20%).
    mink_fraction: float = 0.2
    # Oren et al. sharded test: shards and shuffled copies per shard (the paper's code uses
    # 50 × 250; returns diminish beyond 30-50 permutations, per the authors' rebuttal).
    oren_shards: int = 50
    oren_permutations: int = 50
    oren_min_items_per_shard: int = 2
    # Oren's test on a budget (issue 18): the other orderings are scored in rounds, this many per
    # shard first, then twice as many each round (1, 2, 4, ...); after each round the randomization p-value on the pools so far is computed and
    # the test stops once it is ≥ oren_futility_p (it would need to fall below alpha to matter).
    # Stopping only for futility cannot add a rejection, so the level stays ≤ alpha (docs/audit.md).
    oren_round: int = 1
    oren_futility_p: float = 0.3
    # From the look whose pools hold this many orderings per shard on, the futility bound is
    # oren_late_futility_p (default: alpha): a test not significant at alpha after 3 other
    # orderings per shard is stopped rather than scored up to 50 (issue 18's budget; futility
    # stops never add a rejection, so the level holds; the power traded is in docs/audit.md).
    oren_late_look_pool: int = 4
    oren_late_futility_p: float | None = None
    # Efficacy stop: each interim look spends oren_interim_weight of the level on a
    # conservative p-value (Hoeffding's bound on the exact randomization p, no Monte-Carlo
    # floor); the final look gets the rest (weighted Bonferroni over the looks). The test stops
    # once that weighted p is ≤ oren_efficacy_p — rejected by Holm in any audit of ≤ 500 tests.
    oren_interim_weight: float = 0.01
    oren_efficacy_p: float = 1e-4
    # The p-value: "randomization" re-draws which ordering of each shard is canonical (exact
    # under exchangeability, any shard size); "t" is Oren et al.'s t-test over shards, which
    # over-rejects with 2-item shards (issue 20; measured by `gapmeter selftest oren`).
    oren_test: str = "randomization"
    # Monte-Carlo resamples of the randomization test (exact enumeration when there are fewer
    # assignments); at p = 0.05 the Monte-Carlo standard error is 0.002.
    oren_resamples: int = 10_000
    # Items a detector needs at least (below this it is skipped, not run with no power).
    min_items: int = 10
    # Generation budget of the generative detectors (tokens).
    ts_max_tokens: int = 24
    time_travel_max_tokens: int = 48
    # "completion" prompts suit base models (the masked option / second piece is what follows
    # the prompt); "instruct" uses the papers' instructions for chat models.
    prompt_style: str = "completion"
    seed: int = 1234
    # Verdicts: a detector result counts towards "contaminated" only after Holm's correction
    # over every (task, detector) p-value of the audit; an uncorrected p < alpha is "suspicious".
    holm: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ValueError("alpha must be in (0, 1)")
        if not 0 < self.mink_fraction <= 1:
            raise ValueError("mink_fraction must be in (0, 1]")
        if self.oren_shards < 2:
            raise ValueError("oren_shards must be at least 2")
        if self.oren_permutations < 1 or self.oren_round < 1:
            raise ValueError("oren_permutations and oren_round must be at least 1")
        if not self.alpha < self.oren_futility_p <= 1:
            raise ValueError("oren_futility_p must be in (alpha, 1]")
        if self.oren_late_futility_p is not None and not 0 < self.oren_late_futility_p <= 1:
            raise ValueError("oren_late_futility_p must be in (0, 1]")
        if self.oren_late_look_pool < 2:
            raise ValueError("oren_late_look_pool must be at least 2")
        if not 0 <= self.oren_interim_weight <= 0.1:
            raise ValueError("oren_interim_weight must be in [0, 0.1]")
        if not 0 <= self.oren_efficacy_p < self.alpha:
            raise ValueError("oren_efficacy_p must be in [0, alpha)")
        if self.oren_test not in {"randomization", "t"}:
            raise ValueError("oren_test must be randomization or t")
        if self.prompt_style not in {"completion", "instruct"}:
            raise ValueError("prompt_style must be completion or instruct")
