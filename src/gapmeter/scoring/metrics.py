"""Per-document metrics and corpus aggregations, numerically identical to lm-eval 0.4.13.

Everything here is a clean reimplementation: gapmeter never imports ``lm_eval`` at
runtime.  Where lm-evaluation-harness has a quirk that changes reported numbers
(upper median, NumPy string handling in ``exact_match``, negative gold indices, ...)
the quirk is reproduced on purpose and called out in the docstring, because the
point of gapmeter is to report the *same* numbers.

Float arithmetic deliberately follows the reference's order of operations (e.g. a
plain Python ``sum`` for ``mean`` rather than NumPy's pairwise summation) so that
aggregates and bootstrap replicates are bit-identical, not merely close.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from numbers import Integral
from typing import Any, TypedDict, cast

import numpy as np

__all__ = [
    "AGGREGATIONS",
    "INVALID_GOLD",
    "METRICS",
    "MCScores",
    "MetricSpec",
    "RollingItems",
    "acc_mutual_info",
    "aggregate",
    "bits_per_byte",
    "bleu",
    "chrf",
    "chrfpp",
    "count_bytes",
    "count_words",
    "exact_match",
    "exact_match_any",
    "f1_score",
    "matthews_corrcoef",
    "mc2",
    "mc_pair",
    "mc_scores",
    "mean",
    "median",
    "nanmean",
    "passthrough",
    "perplexity",
    "resolve_gold",
    "rolling_items",
    "ter",
    "weighted_mean",
    "weighted_perplexity",
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
# Generation: exact match
# --------------------------------------------------------------------------- #

# Deletion tables for ``np.char.translate``, which hands them to ``str.translate`` (a mapping);
# NumPy's stubs type the table as ``str``, hence the casts.
_PUNCT_TABLE = cast(str, str.maketrans("", "", string.punctuation))
_DIGIT_TABLE = cast(str, str.maketrans("", "", string.digits))


def _normalise_pair(
    prediction: str,
    reference: str,
    regexes_to_ignore: Sequence[str] | None,
    ignore_case: bool,
    ignore_punctuation: bool,
    ignore_numbers: bool,
) -> tuple[np.ndarray | list[str], np.ndarray | list[str]]:
    """Apply HF-evaluate's normalisations to a one-element batch, via NumPy on purpose.

    The reference stores intermediate strings in NumPy ``<U`` arrays, which silently
    drops trailing NUL characters after *every* step, and ``np.char.lower`` does not
    apply Unicode length-changing case maps (``"İ"`` -> ``"i"``, not ``"i̇"``).  Using
    the same NumPy calls keeps these corner cases identical.
    """
    preds: np.ndarray | list[str] = [prediction]
    refs: np.ndarray | list[str] = [reference]
    if regexes_to_ignore is not None:
        for pattern in regexes_to_ignore:
            preds = np.array([re.sub(pattern, "", x) for x in preds])
            refs = np.array([re.sub(pattern, "", x) for x in refs])
    else:
        preds, refs = np.asarray(preds), np.asarray(refs)
    if ignore_case:
        preds, refs = np.char.lower(preds), np.char.lower(refs)
    if ignore_punctuation:
        preds = np.char.translate(preds, table=_PUNCT_TABLE)
        refs = np.char.translate(refs, table=_PUNCT_TABLE)
    if ignore_numbers:
        preds = np.char.translate(preds, table=_DIGIT_TABLE)
        refs = np.char.translate(refs, table=_DIGIT_TABLE)
    return preds, refs


def exact_match(
    prediction: str,
    reference: str,
    *,
    regexes_to_ignore: Sequence[str] | None = None,
    ignore_case: bool = False,
    ignore_punctuation: bool = False,
    ignore_numbers: bool = False,
) -> float:
    """lm-eval's ``exact_match_hf_evaluate`` for a single pair: 1.0 or 0.0.

    Order of normalisation: each regex in ``regexes_to_ignore`` (removed from both
    strings, in order), then lower-casing, then ASCII punctuation, then digits.
    """
    preds, refs = _normalise_pair(
        prediction, reference, regexes_to_ignore, ignore_case, ignore_punctuation, ignore_numbers
    )
    return float(np.mean(np.asarray(preds == refs)))


def exact_match_any(prediction: str, references: Sequence[str], **options: Any) -> float:
    """Multiple-target generation tasks: 1.0 if the prediction matches any reference."""
    scores = [exact_match(prediction, ref, **options) for ref in references]
    return 1.0 if scores and float(np.mean(scores)) > 0.0 else 0.0


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


def passthrough(item: Any) -> Any:
    """Per-doc function of metrics whose per-doc value is the raw item (e.g. perplexity)."""
    return item


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


# --------------------------------------------------------------------------- #
# Registry
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class MetricSpec:
    """A metric's per-doc function, default aggregation, direction (lm-eval defaults) and the
    task output types whose scoring computes it.

    ``fn`` computes the per-document item; several names share ``mc_scores`` (it
    returns all multiple-choice scores at once) -- pick the key named ``name``. A metric with
    no output types (``mc2``, ``bleu``...) is computed only by a task's ``process_results`` hook.
    """

    name: str
    fn: Callable[..., Any]
    aggregation: str
    higher_is_better: bool
    output_types: frozenset[str] = frozenset()


def _spec(name: str, fn: Callable[..., Any], aggregation: str, higher: bool, *output_types: str) -> MetricSpec:
    return MetricSpec(name=name, fn=fn, aggregation=aggregation, higher_is_better=higher,
                      output_types=frozenset(output_types))


METRICS: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        _spec("acc", mc_scores, "mean", True, "multiple_choice", "loglikelihood"),
        _spec("acc_norm", mc_scores, "mean", True, "multiple_choice"),
        _spec("acc_bytes", mc_scores, "mean", True, "multiple_choice"),
        _spec("acc_mutual_info", mc_scores, "mean", True, "multiple_choice"),
        _spec("exact_match", exact_match, "mean", True, "multiple_choice", "generate_until"),
        _spec("mc2", mc2, "mean", True),
        _spec("perplexity", passthrough, "perplexity", False, "loglikelihood"),
        _spec("word_perplexity", rolling_items, "weighted_perplexity", False, "loglikelihood_rolling"),
        _spec("byte_perplexity", rolling_items, "weighted_perplexity", False, "loglikelihood_rolling"),
        _spec("bits_per_byte", rolling_items, "bits_per_byte", False, "loglikelihood_rolling"),
        _spec("f1", mc_pair, "f1", True, "multiple_choice"),
        _spec("mcc", mc_pair, "matthews_corrcoef", True, "multiple_choice"),
        _spec("bleu", passthrough, "bleu", True),
        _spec("chrf", passthrough, "chrf", True),
        _spec("chrf++", passthrough, "chrf++", True),
        _spec("ter", passthrough, "ter", False),
    )
}
