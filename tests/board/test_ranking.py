"""One display rank (Arena's CI-overlap rule, ``compare.ranking``): its O(n log n) form, which the
board uses on stored intervals, equals ``rank_with_ties(method="ci_overlap")``; and the board's
weighted re-ranking behaves as documented."""

from __future__ import annotations

import random

import pytest

from gapmeter.board.weighting import Weights, weighted_scores
from gapmeter.compare.power import critical_z
from gapmeter.compare.ranking import Interval, Score, ci_overlap_ranks, rank_with_ties


@pytest.mark.parametrize("seed", range(5))
def test_ranks_equal_compare_ci_overlap_rule(seed: int) -> None:
    rng = random.Random(seed)
    z = critical_z(0.05)
    scores = [Score(f"m{i}", rng.uniform(0.3, 0.9), rng.uniform(0.001, 0.05)) for i in range(300)]
    # Ties in value too: the rule must not care about input order.
    scores += [Score("dup", scores[0].value, scores[0].stderr)]
    theirs = [r.rank for r in rank_with_ties(scores, method="ci_overlap")]
    ours = ci_overlap_ranks([Interval(s.value, s.value - z * s.stderr, s.value + z * s.stderr) for s in scores])
    assert ours == theirs


def test_models_without_a_score_are_unranked_and_do_not_push_others() -> None:
    ranks = ci_overlap_ranks([Interval(0.9, 0.85, 0.95), None, Interval(0.5, 0.45, 0.55), Interval(0.52, 0.4, 0.6)])
    assert ranks == [1, None, 2, 2]


def test_weighted_scores_minmax_and_missing_is_worst() -> None:
    q = [0.9, 0.5, 0.7]
    cost = [10.0, 1.0, None]
    speed = [0.2, 0.1, 0.4]
    assert weighted_scores(q, cost, speed, Weights(1, 0, 0)) == pytest.approx([1.0, 0.0, 0.5])
    assert weighted_scores(q, cost, speed, Weights(0, 1, 0)) == [0.0, 1.0, 0.0]
    both = weighted_scores(q, cost, speed, Weights(1, 1, 0))
    assert both == pytest.approx([0.5, 0.5, 0.25])
    assert weighted_scores(q, cost, speed, Weights(0, 0, 0)) == weighted_scores(q, cost, speed, Weights(1, 0, 0))


def test_display_rule_on_scores_lower_is_better_and_no_error_bar() -> None:
    # lower is better: 0.10 ± 1.96·0.01 lies clearly below 0.30 ± 1.96·0.01, so it ranks first
    losses = [Score("a", 0.30, 0.01, higher_is_better=False), Score("b", 0.10, 0.01, higher_is_better=False),
              Score("c", 0.12, 0.01, higher_is_better=False), Score("d", 0.50, None, higher_is_better=False)]
    ranked = rank_with_ties(losses, method="ci_overlap")
    assert [r.rank for r in ranked] == [3, 1, 1, 1]
    assert ranked[0].better == ("b", "c") and ranked[3].better == ()  # no error bar: never declared worse
