"""Metrics over loglikelihoods: multiple choice (acc, acc_norm, ..., mc2) and rolling
(perplexity items), numerically identical to lm-eval 0.4.13.

Where lm-evaluation-harness has a quirk that changes reported numbers (negative gold indices,
``==`` on a gold list, ...) the quirk is reproduced on purpose and called out in the docstring,
because the point of gapmeter is to report the *same* numbers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from numbers import Integral
from typing import TypedDict

import numpy as np

__all__ = [
    "INVALID_GOLD",
    "MCScores",
    "RollingItems",
    "acc_mutual_info",
    "count_bytes",
    "count_words",
    "mc2",
    "mc_pair",
    "mc_scores",
    "resolve_gold",
    "rolling_items",
]

#: Sentinel lm-eval substitutes for a gold index/string that is not a valid choice.
INVALID_GOLD = -100

Gold = int | str | Sequence[int]
ResolvedGold = int | list[int]


# --------------------------------------------------------------------------- #
# Multiple choice (loglikelihood over each choice)
# --------------------------------------------------------------------------- #


class MCScores(TypedDict, total=False):
    """Per-document multiple-choice scores, with lm-eval's value types (acc floats, em int)."""

    acc: float
    acc_norm: float
    acc_bytes: float
    exact_match: int
    acc_mutual_info: float


def resolve_gold(gold: Gold, choices: Sequence[str]) -> ResolvedGold:
    """Map a gold label onto choice indices the way lm-eval does.

    * ``str`` -> index in ``choices`` or ``-100`` if absent.
    * ``int`` -> itself if ``< len(choices)`` else ``-100``.  Negative indices are
      *not* rejected (lm-eval only checks the upper bound), so ``-1`` can never equal
      a prediction but ``exact_match`` reads ``is_greedy[-1]`` (Python indexing).
    * list -> element-wise int rule; a list means "multiple targets".
    """
    n_choices = len(choices)
    if isinstance(gold, str):
        return list(choices).index(gold) if gold in choices else INVALID_GOLD
    if isinstance(gold, int | Integral):  # int for the type checker; numpy ints are Integral
        return int(gold) if gold < n_choices else INVALID_GOLD
    return [int(g) if g < n_choices else INVALID_GOLD for g in gold]


def _argmax(values: np.ndarray | Sequence[float]) -> int:
    """np.argmax: lowest index wins ties and the first NaN wins over everything."""
    return int(np.argmax(values))


def _hit(pred: int, gold: ResolvedGold) -> float:
    """1.0 if the prediction is (one of) the gold index(es)."""
    if isinstance(gold, list):
        return 1.0 if pred in gold else 0.0
    return 1.0 if pred == gold else 0.0


def _greedy_hit(is_greedy: Sequence[bool], gold: ResolvedGold) -> int:
    """lm-eval's multiple-choice exact_match: was the gold continuation the greedy one?"""
    greedy = list(is_greedy)
    if isinstance(gold, list):
        return int(any(greedy[g] if g != INVALID_GOLD else 0 for g in gold))
    return int(greedy[gold]) if gold != INVALID_GOLD else 0


def _length_normalised(lls: np.ndarray, lengths: Sequence[int]) -> np.ndarray:
    """lls / lengths; an empty choice gives -inf (or NaN for ll == 0) exactly like NumPy."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return lls / np.array([float(n) for n in lengths])


def mc_scores(
    lls: Sequence[float],
    is_greedy: Sequence[bool],
    choices: Sequence[str],
    gold: Gold,
    *,
    unconditional_lls: Sequence[float] | None = None,
) -> MCScores:
    """Score one multiple-choice document from its per-choice loglikelihoods.

    ``acc_norm`` divides by the *character* length (``len(choice)``), ``acc_bytes`` by
    the UTF-8 byte length, ties go to the lowest index (np.argmax).  A list ``gold``
    means multiple targets: a hit on any one counts.  ``acc_mutual_info`` is added
    when ``unconditional_lls`` (the ``("", choice)`` loglikelihoods) are given.
    """
    if not (len(lls) == len(is_greedy) == len(choices)):
        raise ValueError("lls, is_greedy and choices must have the same length")
    ll = np.array([float(x) for x in lls])
    resolved = resolve_gold(gold, choices)
    scores: MCScores = {
        "acc": _hit(_argmax(ll), resolved),
        "acc_norm": _hit(_argmax(_length_normalised(ll, [len(c) for c in choices])), resolved),
        "acc_bytes": _hit(
            _argmax(_length_normalised(ll, [len(c.encode("utf-8")) for c in choices])),
            resolved,
        ),
        "exact_match": _greedy_hit(is_greedy, resolved),
    }
    if unconditional_lls is not None:
        scores["acc_mutual_info"] = acc_mutual_info(lls, unconditional_lls, resolved)
    return scores


def acc_mutual_info(
    lls: Sequence[float], unconditional_lls: Sequence[float], gold: ResolvedGold
) -> float:
    """argmax of ``ll(choice|ctx) - ll(choice)`` compared with an already-resolved gold.

    lm-eval compares with ``==`` even for multiple targets, so a one-element gold list
    behaves like its element and a longer list makes lm-eval crash; we raise instead.
    """
    if len(lls) != len(unconditional_lls):
        raise ValueError("need one unconditional loglikelihood per choice")
    pred = _argmax([float(c) - float(u) for c, u in zip(lls, unconditional_lls, strict=True)])
    if isinstance(gold, list):
        if len(gold) != 1:
            raise ValueError("lm-eval cannot score acc_mutual_info with several gold targets")
        gold = gold[0]
    return 1.0 if pred == gold else 0.0


def mc_pair(lls: Sequence[float], choices: Sequence[str], gold: Gold) -> tuple[ResolvedGold, int]:
    """The ``(gold, pred)`` item lm-eval emits per document for the f1 / mcc metrics."""
    if len(lls) != len(choices):
        raise ValueError("need one loglikelihood per choice")
    return resolve_gold(gold, choices), _argmax(np.array([float(x) for x in lls]))


def mc2(lls: Sequence[float], labels: Sequence[int]) -> float:
    """TruthfulQA MC2 as lm-eval 0.4.13's ``process_results_mc2`` (reported as ``acc``).

    Probability mass of the choices labelled exactly ``1``, after normalising
    ``exp(ll)`` over all choices.  0.4.13 selects with a ``labels == 1`` mask (older
    releases split at the first ``0`` label; identical on the real data, whose labels
    are sorted).  No max-subtraction is done, so if every ``exp(ll)`` underflows the
    result is NaN, as in lm-eval.
    """
    if len(lls) != len(labels):
        raise ValueError("need one label per choice")
    probs = np.exp(np.array([float(x) for x in lls]))
    with np.errstate(invalid="ignore", divide="ignore"):
        probs_norm = probs / np.sum(probs)
    return float(np.sum(probs_norm[np.asarray(labels) == 1]))



# --------------------------------------------------------------------------- #
# loglikelihood_rolling (perplexity) items
# --------------------------------------------------------------------------- #


class RollingItems(TypedDict):
    """Per-document ``(loglikelihood, weight)`` tuples for the weighted aggregations."""

    word_perplexity: tuple[float, int]
    byte_perplexity: tuple[float, int]
    bits_per_byte: tuple[float, int]


def count_words(text: str) -> int:
    r"""lm-eval's default word count: ``len(re.split(r"\s+", text))``.

    Leading/trailing whitespace therefore adds empty "words", and ``""`` counts as 1.
    """
    return len(re.split(r"\s+", text))


def count_bytes(text: str) -> int:
    """UTF-8 byte length, the denominator of byte_perplexity and bits_per_byte."""
    return len(text.encode("utf-8"))


def rolling_items(loglikelihood: float, target: str, *, words: int | None = None) -> RollingItems:
    """Items for a loglikelihood_rolling document (``words`` overrides the word count).

    Wikitext counts words on the raw page, not the detokenized target, hence the override.
    """
    n_words = count_words(target) if words is None else words
    n_bytes = count_bytes(target)
    return {
        "word_perplexity": (loglikelihood, n_words),
        "byte_perplexity": (loglikelihood, n_bytes),
        "bits_per_byte": (loglikelihood, n_bytes),
    }
