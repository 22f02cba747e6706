"""Corpus-level aggregations (a task's per-document items -> one number), as lm-eval 0.4.13.

Float arithmetic deliberately follows the reference's order of operations (a plain Python
``sum`` for ``mean`` rather than NumPy's pairwise summation) so that aggregates and bootstrap
replicates are bit-identical, not merely close. sacrebleu is imported lazily: only tasks with a
BLEU/chrF/TER metric pay for it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "AGGREGATIONS",
    "aggregate",
    "bits_per_byte",
    "bleu",
    "chrf",
    "chrfpp",
    "f1_score",
    "matthews_corrcoef",
    "mean",
    "median",
    "nanmean",
    "perplexity",
    "ter",
    "weighted_mean",
    "weighted_perplexity",
]


# --------------------------------------------------------------------------- #
# Aggregations (corpus level)
# --------------------------------------------------------------------------- #


def mean(xs: Sequence[float]) -> float:
    """Left-to-right Python sum / n (not NumPy's pairwise sum), for bit-identity."""
    return sum(xs) / len(xs)


def median(xs: Sequence[float]) -> float:
    """lm-eval's median is the *upper* median ``sorted(xs)[n // 2]`` (no averaging)."""
    return sorted(xs)[len(xs) // 2]


def nanmean(xs: Sequence[float]) -> float:
    """NaN-ignoring mean; NaN when empty or all-NaN (NumPy pairwise sum otherwise)."""
    if len(xs) == 0 or all(np.isnan(xs)):
        return float("nan")
    return float(np.nanmean(xs))


def perplexity(lls: Sequence[float]) -> float:
    """exp(-mean loglikelihood) for per-request loglikelihoods."""
    return math.exp(-mean(lls))


def weighted_mean(items: Sequence[tuple[float, float]]) -> float:
    """sum(value) / sum(weight) over ``(value, weight)`` pairs."""
    values, weights = zip(*items, strict=True)
    return sum(values) / sum(weights)


def weighted_perplexity(items: Sequence[tuple[float, float]]) -> float:
    """exp(-total loglikelihood / total words-or-bytes)."""
    return math.exp(-weighted_mean(items))


def bits_per_byte(items: Sequence[tuple[float, float]]) -> float:
    """-total loglikelihood (nats) / total bytes / ln 2."""
    return -weighted_mean(items) / math.log(2)


def _unzip_pairs(items: Iterable[tuple[Any, Any]]) -> tuple[list[Any], list[Any]]:
    """Split ``(gold, pred)`` items into two lists."""
    golds, preds = [], []
    for gold, pred in items:
        golds.append(gold)
        preds.append(pred)
    return golds, preds


def f1_score(items: Sequence[tuple[Any, Any]]) -> float:
    """Binary F1 of label 1 over ``(gold, pred)`` pairs, as sklearn's ``f1_score``.

    Same validation (more than two distinct labels, or two labels without ``1``, is an
    error) and the same zero-division result (0.0).  ``2tp / (2tp + fp + fn)`` is one
    correctly rounded division of exact integers, hence bit-identical to sklearn.
    """
    golds, preds = _unzip_pairs(items)
    labels = set(golds) | set(preds)
    if len(labels) > 2:
        raise ValueError("f1 is binary (average='binary'): got more than two labels")
    if 1 not in labels and len(labels) == 2:
        raise ValueError(f"f1 positive label 1 is not one of the labels {sorted(labels)}")
    tp = sum(1 for g, p in zip(golds, preds, strict=True) if g == 1 and p == 1)
    n_true = sum(1 for g in golds if g == 1)
    n_pred = sum(1 for p in preds if p == 1)
    denominator = n_true + n_pred
    return 0.0 if denominator == 0 else (2.0 * tp) / float(denominator)


def matthews_corrcoef(items: Sequence[tuple[Any, Any]]) -> float:
    """Multiclass Matthews correlation as sklearn computes it (0.0 when undefined).

    The covariance terms are exact integers held in float64 (as in sklearn), followed
    by one product, one sqrt and one division, so results are bit-identical.
    """
    golds, preds = _unzip_pairs(items)
    index = {label: i for i, label in enumerate(set(golds) | set(preds))}
    confusion = np.zeros((len(index), len(index)), dtype=np.int64)
    for gold, pred in zip(golds, preds, strict=True):
        confusion[index[gold], index[pred]] += 1
    t_sum = confusion.sum(axis=1, dtype=np.float64)
    p_sum = confusion.sum(axis=0, dtype=np.float64)
    n_correct = float(np.trace(confusion))
    n_samples = float(p_sum.sum())
    cov_ytyp = n_correct * n_samples - float(np.dot(t_sum, p_sum))
    cov_ypyp = n_samples**2 - float(np.dot(p_sum, p_sum))
    cov_ytyt = n_samples**2 - float(np.dot(t_sum, t_sum))
    denominator = cov_ypyp * cov_ytyt
    return 0.0 if denominator == 0 else cov_ytyp / math.sqrt(denominator)


def _is_multi(obj: Any) -> bool:
    """True for non-string iterables (one pred/ref given as a list)."""
    return isinstance(obj, Iterable) and not isinstance(obj, str)


def _sacrebleu_streams(
    items: Sequence[tuple[Any, Any]],
) -> tuple[list[str], list[list[str]]]:
    """Convert ``(refs, pred)`` items to sacrebleu's ``(hypotheses, reference streams)``.

    Each item's refs may be one string or a list of M strings; sacrebleu wants M streams
    of N references.  A pred may be a one-element list.
    """
    refs, preds = _unzip_pairs(items)
    per_item_refs = [list(r) if _is_multi(r) else [r] for r in refs]
    # Like lm-eval, items with more references than the others are truncated.
    streams = [list(stream) for stream in zip(*per_item_refs, strict=False)]
    hyps = []
    for pred in preds:
        if _is_multi(pred):
            pred = list(pred)
            if len(pred) != 1:
                raise ValueError(f"pred must be a single string, got {pred!r}")
            pred = pred[0]
        hyps.append(pred)
    return hyps, streams


def bleu(items: Sequence[tuple[Any, Any]]) -> float:
    """Corpus BLEU (sacrebleu defaults); sacrebleu is imported lazily (optional extra)."""
    import sacrebleu

    hyps, streams = _sacrebleu_streams(items)
    return sacrebleu.corpus_bleu(hyps, streams).score


def chrf(items: Sequence[tuple[Any, Any]]) -> float:
    """Corpus chrF (char_order=6, word_order=0, beta=2)."""
    import sacrebleu

    hyps, streams = _sacrebleu_streams(items)
    return sacrebleu.corpus_chrf(hyps, streams).score


def chrfpp(items: Sequence[tuple[Any, Any]]) -> float:
    """Corpus chrF++ (word_order=2)."""
    import sacrebleu

    hyps, streams = _sacrebleu_streams(items)
    return sacrebleu.corpus_chrf(hyps, streams, word_order=2).score


def ter(items: Sequence[tuple[Any, Any]]) -> float:
    """Corpus translation error rate (lower is better)."""
    import sacrebleu

    hyps, streams = _sacrebleu_streams(items)
    return sacrebleu.corpus_ter(hyps, streams).score


#: Aggregation name (as used in task YAML) -> corpus-level function.
AGGREGATIONS: dict[str, Callable[[Sequence[Any]], float]] = {
    "mean": mean,
    "median": median,
    "nanmean": nanmean,
    "perplexity": perplexity,
    "weighted_perplexity": weighted_perplexity,
    "bits_per_byte": bits_per_byte,
    "f1": f1_score,
    "matthews_corrcoef": matthews_corrcoef,
    "bleu": bleu,
    "chrf": chrf,
    "chrf++": chrfpp,
    "ter": ter,
}


def aggregate(aggregation: str, items: Sequence[Any]) -> float:
    """Apply a named aggregation (KeyError names the unknown aggregation)."""
    try:
        fn = AGGREGATIONS[aggregation]
    except KeyError:
        raise KeyError(f"unknown aggregation {aggregation!r}") from None
    return fn(items)
