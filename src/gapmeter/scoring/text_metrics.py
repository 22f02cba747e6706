"""Per-reference scores of a generated answer: lm-eval's ``exact_match`` and the open-answer
metrics (SQuAD-normalised exact match and token F1, ROUGE-L, regex, numeric tolerance, JSON and
JSON-schema validity).

Each function scores one prediction against one reference; the registry (``scoring.metrics``)
takes the maximum over a document's references. Library-backed scores (``rouge_score``,
``jsonschema``) import their library lazily, so a task that does not use them does not pay for it.
"""

from __future__ import annotations

import json
import math
import re
import string
from collections import Counter
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any, cast

import numpy as np

__all__ = [
    "exact_match",
    "exact_match_any",
    "json_schema_valid",
    "json_valid",
    "numeric_match",
    "parse_number",
    "regex_match",
    "rouge_l",
    "schema_validator",
    "squad_exact_match",
    "squad_normalise",
    "token_f1",
]


# --------------------------------------------------------------------------- #
# lm-eval's exact_match (HF evaluate's normalisations)
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
# SQuAD-style normalised exact match and token F1
# --------------------------------------------------------------------------- #

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)


def squad_normalise(text: str) -> str:
    """The official SQuAD v1.1 answer normalisation: lower-case, drop ASCII punctuation, drop the
    articles a/an/the, collapse whitespace (in that order, as the evaluation script does)."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def squad_exact_match(prediction: str, reference: str) -> float:
    """1.0 when the SQuAD-normalised strings are equal."""
    return float(squad_normalise(prediction) == squad_normalise(reference))


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD's token F1: harmonic mean of precision and recall of the normalised tokens (a bag:
    repeated tokens count as often as they occur in both). Two empty answers score 1.0, one empty
    answer 0.0, as in the SQuAD v2 script."""
    pred_tokens = squad_normalise(prediction).split()
    ref_tokens = squad_normalise(reference).split()
    if not pred_tokens or not ref_tokens:
        return float(pred_tokens == ref_tokens)
    common = sum((Counter(pred_tokens) & Counter(ref_tokens)).values())
    if common == 0:
        return 0.0
    precision = common / len(pred_tokens)
    recall = common / len(ref_tokens)
    return 2 * precision * recall / (precision + recall)


# --------------------------------------------------------------------------- #
# ROUGE-L (Google's rouge-score package)
# --------------------------------------------------------------------------- #


@lru_cache(maxsize=4)
def _rouge_scorer(use_stemmer: bool) -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=use_stemmer)


def rouge_l(prediction: str, reference: str, *, use_stemmer: bool = False) -> float:
    """ROUGE-L F-measure (longest common subsequence of tokens), in [0, 1], from ``rouge_score``
    with its default tokenizer (lower-cased ASCII alphanumerics; no stemming unless asked)."""
    return float(_rouge_scorer(use_stemmer).score(reference, prediction)["rougeL"].fmeasure)


# --------------------------------------------------------------------------- #
# Regex and numeric answers
# --------------------------------------------------------------------------- #


def regex_match(prediction: str, pattern: re.Pattern[str], *, full: bool = False) -> float:
    """1.0 when ``pattern`` is found in the prediction (anywhere, or the whole of it with
    ``full``). The pattern comes from the metric's options, not from the references."""
    hit = pattern.fullmatch(prediction.strip()) if full else pattern.search(prediction)
    return float(hit is not None)


# Thousands commas only in groups of three ("1,234", not the list "1,2"), then decimals, exponent.
_NUMBER = re.compile(r"[-+]?(?:(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?")


def parse_number(text: str, *, pick: str = "last") -> float | None:
    """The first or last number written in ``text`` (``1,234.5``, ``-3``, ``2e-3``; thousands
    commas dropped), or the whole stripped text as a number (``pick="whole"``). None if none."""
    if pick == "whole":
        candidates = [text.strip()]
    else:
        found = _NUMBER.findall(text)
        if not found:
            return None
        candidates = [found[-1] if pick == "last" else found[0]]
    try:
        value = float(candidates[0].replace(",", ""))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def numeric_match(
    prediction: str, reference: str, *, abs_tol: float = 0.0, rel_tol: float = 1e-9, pick: str = "last"
) -> float:
    """1.0 when the number in the prediction (the last one by default, see ``parse_number``)
    equals the reference's within ``math.isclose``'s absolute and relative tolerances. A
    reference that is not a number never matches."""
    want = parse_number(reference, pick="whole")
    if want is None:
        want = parse_number(reference, pick="last")
    got = parse_number(prediction, pick=pick)
    if want is None or got is None:
        return 0.0
    return float(math.isclose(got, want, rel_tol=rel_tol, abs_tol=abs_tol))


# --------------------------------------------------------------------------- #
# Structured outputs: JSON and JSON Schema
# --------------------------------------------------------------------------- #

_FENCE = re.compile(r"^\s*```[A-Za-z0-9_-]*\s*\n(.*?)\n?\s*```\s*$", re.DOTALL)


def _parse_json(prediction: str, strip_fences: bool) -> tuple[bool, Any]:
    text = prediction
    if strip_fences:
        fenced = _FENCE.match(text)
        if fenced:
            text = fenced.group(1)
    try:
        return True, json.loads(text)
    except ValueError:
        return False, None


def json_valid(prediction: str, *, strip_fences: bool = True) -> float:
    """1.0 when the prediction parses as JSON (a Markdown code fence around it is removed first,
    unless ``strip_fences`` is false)."""
    return float(_parse_json(prediction, strip_fences)[0])


def json_schema_valid(prediction: str, validator: Any, *, strip_fences: bool = True) -> float:
    """1.0 when the prediction parses as JSON and the ``jsonschema`` validator (built once from
    the task's schema, for the draft the schema names) accepts it."""
    ok, value = _parse_json(prediction, strip_fences)
    return float(ok and validator.is_valid(value))


def schema_validator(schema: Mapping[str, Any]) -> Any:
    """A ``jsonschema`` validator for ``schema`` (its ``$schema`` draft, else the latest); raises
    ValueError naming the first problem when the schema itself is invalid."""
    import jsonschema

    cls = jsonschema.validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except jsonschema.exceptions.SchemaError as err:
        raise ValueError(f"invalid JSON schema: {err.message}") from None
    return cls(schema)

