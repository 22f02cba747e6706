"""Pairwise comparison of two runs on the same items, each pair judged in both orders.

Position bias is controlled as the judge studies ask (Zheng et al., 2023; Wang et al., 2023): the
judge sees (A, B) and then (B, A); a winner counts only when both orders name the same answer,
an inconsistent pair counts as a tie, and the share of inconsistent pairs is reported. Verbosity:
the mean length difference of the two runs' answers and how often the longer answer won are
reported beside the win rate. A pair with an unreadable verdict in either order (after one retry)
is left out and counted, never scored as a loss.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gapmeter.compare.bootstrap import bootstrap_ci
from gapmeter.judge.asking import Asked, Judge
from gapmeter.judge.items import Item
from gapmeter.judge.prompts import pairwise_prompt, parse_pairwise


def _words(text: str) -> int:
    return len(text.split())


def pair_outcome(first: str | None, second: str | None) -> tuple[str | None, bool]:
    """The pair's result for run A from the verdict on (A, B) and the one on (B, A), and whether
    the two orders agree: ``"a"``, ``"b"``, ``"tie"``, or None when either verdict is missing."""
    if first is None or second is None:
        return None, False
    swapped = {"A": "b", "B": "a", "tie": "tie"}[second]
    unswapped = {"A": "a", "B": "b", "tie": "tie"}[first]
    if unswapped == swapped:
        return unswapped, True
    return "tie", False


@dataclass
class PairRecord:
    a: Item
    b: Item
    ab: Asked
    ba: Asked
    outcome: str | None
    consistent: bool

    def to_json(self) -> dict[str, Any]:
        return {"task": self.a.task, "doc_id": self.a.doc_id, "doc_hash": self.a.doc_hash,
                "answer_a": self.a.answer, "answer_b": self.b.answer, "outcome": self.outcome,
                "consistent": self.consistent, "a_first": self.ab.to_json(), "b_first": self.ba.to_json()}


@dataclass
class PairwiseResult:
    pairs: list[PairRecord]
    summary: dict[str, Any] = field(default_factory=dict)


def summarise(pairs: list[PairRecord]) -> dict[str, Any]:
    scored = [p for p in pairs if p.outcome is not None]
    n = len(scored)
    points = [1.0 if p.outcome == "a" else 0.5 if p.outcome == "tie" else 0.0 for p in scored]
    wins_a = sum(p.outcome == "a" for p in scored)
    wins_b = sum(p.outcome == "b" for p in scored)
    inconsistent = sum(not p.consistent for p in scored)
    out: dict[str, Any] = {
        "n_pairs": len(pairs), "n_scored": n, "unparseable": len(pairs) - n,
        "wins_a": wins_a, "wins_b": wins_b, "ties": n - wins_a - wins_b,
        "inconsistent": inconsistent, "inconsistent_rate": inconsistent / n if n else None,
        "win_rate_a": float(np.mean(points)) if n else None,
    }
    if n >= 2:
        lo, hi, _ = bootstrap_ci(lambda xs: float(np.mean(xs)), points)
        out["win_rate_a_ci95"] = [lo, hi]
    diffs = [_words(p.a.answer) - _words(p.b.answer) for p in scored]
    decisive = [(p, d) for p, d in zip(scored, diffs, strict=True) if p.outcome in ("a", "b") and d != 0]
    longer_won = sum((p.outcome == "a") == (d > 0) for p, d in decisive)
    out["verbosity"] = {
        "mean_words_a": float(np.mean([_words(p.a.answer) for p in scored])) if n else None,
        "mean_words_b": float(np.mean([_words(p.b.answer) for p in scored])) if n else None,
        "mean_word_diff_a_minus_b": float(np.mean(diffs)) if n else None,
        "longer_answer_won": longer_won, "decisive_with_length_difference": len(decisive),
        "longer_answer_win_rate": longer_won / len(decisive) if decisive else None,
    }
    return out


def compare_pairwise(items_a: list[Item], items_b: list[Item], judge: Judge, *, rubric: str) -> PairwiseResult:
    """Items paired by (task, doc_id, doc_hash): the same document in both runs."""
    by_key = {i.key: i for i in items_b}
    pairs = [(a, by_key[a.key]) for a in items_a if a.key in by_key]
    prompts: list[str] = []
    for a, b in pairs:
        prompts.append(pairwise_prompt(a.question, a.reference, a.answer, b.answer, rubric=rubric))
        prompts.append(pairwise_prompt(a.question, a.reference, b.answer, a.answer, rubric=rubric))
    asked = judge.ask(prompts, parse_pairwise, "pairwise")
    records = []
    for k, (a, b) in enumerate(pairs):
        ab, ba = asked[2 * k], asked[2 * k + 1]
        outcome, consistent = pair_outcome(ab.verdict, ba.verdict)
        records.append(PairRecord(a, b, ab, ba, outcome, consistent))
    return PairwiseResult(records, summarise(records))
