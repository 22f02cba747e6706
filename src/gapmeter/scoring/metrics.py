"""Every built-in metric, registered in one table: the one place to add a metric.

A metric declares the task output types it is computed for, its default aggregation and
direction (lm-eval 0.4.13's for lm-eval's metrics, so reported numbers stay identical), the
options a task may give it and, per output type, a per-document function receiving that type's
input (``scoring.registry``: ``ChoiceDoc``, ``LoglikelihoodDoc``, ``RollingDoc``,
``GenerationDoc``). Generation metrics that compare with references take the best score over a
document's references.

The numerical functions live in ``choice_metrics`` (loglikelihood-based), ``text_metrics``
(generated answers) and ``aggregations`` (corpus level); they are re-exported here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gapmeter.scoring.aggregations import (
    AGGREGATIONS,
    aggregate,
    bits_per_byte,
    bleu,
    chrf,
    chrfpp,
    f1_score,
    matthews_corrcoef,
    mean,
    median,
    nanmean,
    perplexity,
    ter,
    weighted_mean,
    weighted_perplexity,
)
from gapmeter.scoring.choice_metrics import (
    INVALID_GOLD,
    MCScores,
    RollingItems,
    acc_mutual_info,
    count_bytes,
    count_words,
    mc2,
    mc_pair,
    mc_scores,
    resolve_gold,
    rolling_items,
)
from gapmeter.scoring.registry import (
    OUTPUT_TYPES,
    ChoiceDoc,
    GenerationDoc,
    LoglikelihoodDoc,
    MetricRegistry,
    MetricSpec,
    RollingDoc,
    user_metric,
)
from gapmeter.scoring.text_metrics import (
    exact_match,
    exact_match_any,
    json_schema_valid,
    json_valid,
    numeric_match,
    regex_match,
    rouge_l,
    schema_validator,
    squad_exact_match,
    token_f1,
)

__all__ = [
    "AGGREGATIONS", "INVALID_GOLD", "METRICS", "OUTPUT_TYPES", "ChoiceDoc", "GenerationDoc",
    "LoglikelihoodDoc", "MCScores", "MetricRegistry", "MetricSpec", "RollingDoc", "RollingItems",
    "acc_mutual_info", "aggregate", "bits_per_byte", "bleu", "chrf", "chrfpp", "count_bytes",
    "count_words", "exact_match", "exact_match_any", "f1_score", "matthews_corrcoef", "mc2",
    "mc_pair", "mc_scores", "mean", "median", "nanmean", "perplexity",
    "resolve_gold", "rolling_items", "ter", "user_metric", "weighted_mean", "weighted_perplexity",
]

METRICS = MetricRegistry()

MC, LL, ROLLING, GEN = OUTPUT_TYPES

# ----------------------------------------------------------------------------------------------
# lm-eval's metrics. Registration order = lm-eval's per-document key order for the
# loglikelihood output types (perplexity before acc; acc, f1, mcc, acc_norm, ...).
# ----------------------------------------------------------------------------------------------


@METRICS.register("perplexity", LL, aggregation="perplexity", higher_is_better=False)
def _perplexity(d: LoglikelihoodDoc) -> float:
    return d.ll


@METRICS.register("acc", MC)
def _acc(d: ChoiceDoc) -> float:
    return d.scores["acc"]


@METRICS.register("acc", LL)
def _acc_greedy(d: LoglikelihoodDoc) -> int:
    return int(d.is_greedy)


@METRICS.register("f1", MC, aggregation="f1")
def _f1_pair(d: ChoiceDoc) -> tuple[Any, int]:
    return mc_pair(d.lls, d.choices, d.gold)


@METRICS.register("mcc", MC, aggregation="matthews_corrcoef")
def _mcc_pair(d: ChoiceDoc) -> tuple[Any, int]:
    return mc_pair(d.lls, d.choices, d.gold)


@METRICS.register("acc_norm", MC)
def _acc_norm(d: ChoiceDoc) -> float:
    return d.scores["acc_norm"]


@METRICS.register("acc_bytes", MC)
def _acc_bytes(d: ChoiceDoc) -> float:
    return d.scores["acc_bytes"]


#: lm-eval's (HF evaluate's) exact_match options; multiple-choice exact_match ignores them.
EXACT_MATCH_OPTIONS = ("regexes_to_ignore", "ignore_case", "ignore_punctuation", "ignore_numbers")


@METRICS.register("exact_match", MC, options=EXACT_MATCH_OPTIONS)
def _exact_match_greedy(d: ChoiceDoc, **_: Any) -> int:
    return d.scores["exact_match"]


@METRICS.register("exact_match", GEN, options=EXACT_MATCH_OPTIONS)
def _exact_match(d: GenerationDoc, **options: Any) -> float:
    if d.multiple:  # lm-eval: 1.0 if any reference matches
        return exact_match_any(d.prediction, d.references, **options)
    return exact_match(d.prediction, d.references[0], **options)


@METRICS.register("acc_mutual_info", MC, needs_unconditional=True)
def _acc_mutual_info(d: ChoiceDoc) -> float:
    if d.unconditional_lls is None:
        raise ValueError("acc_mutual_info needs the unconditional loglikelihoods")
    return acc_mutual_info(d.lls, d.unconditional_lls, resolve_gold(d.gold, d.choices))


@METRICS.register("word_perplexity", ROLLING, aggregation="weighted_perplexity", higher_is_better=False)
def _word_items(d: RollingDoc) -> tuple[float, int]:
    return rolling_items(d.ll, d.target)["word_perplexity"]


@METRICS.register("byte_perplexity", ROLLING, aggregation="weighted_perplexity", higher_is_better=False)
def _byte_items(d: RollingDoc) -> tuple[float, int]:
    return rolling_items(d.ll, d.target)["byte_perplexity"]


@METRICS.register("bits_per_byte", ROLLING, aggregation="bits_per_byte", higher_is_better=False)
def _bpb_items(d: RollingDoc) -> tuple[float, int]:
    return rolling_items(d.ll, d.target)["bits_per_byte"]


METRICS.hook_only("mc2", aggregation="mean", higher_is_better=True)  # TruthfulQA's hook
# `gapmeter judge`'s metrics (judge/single.py): a mean 1-10 rating, a pass rate.
METRICS.hook_only("judge_score", aggregation="mean", higher_is_better=True, value_range=(1.0, 10.0))
METRICS.hook_only("judge_pass", aggregation="mean", higher_is_better=True, value_range=(0.0, 1.0))


def _sacrebleu_item(d: GenerationDoc) -> tuple[Any, str]:
    """lm-eval's item for the corpus metrics: ``(reference(s), prediction)``; the aggregation
    computes the corpus score (several references per document are sacrebleu reference streams)."""
    return (list(d.references) if d.multiple else d.references[0]), d.prediction


for _name, _aggregation, _higher in (("bleu", "bleu", True), ("chrf", "chrf", True),
                                     ("chrf++", "chrf++", True), ("ter", "ter", False)):
    METRICS.register(_name, GEN, aggregation=_aggregation, higher_is_better=_higher,
                     library="sacrebleu")(_sacrebleu_item)


# ----------------------------------------------------------------------------------------------
# Open-answer metrics (generate_until): best score over the references, mean over documents.
# ----------------------------------------------------------------------------------------------


def _best(score: Callable[[str, str], float], d: GenerationDoc) -> float:
    return max((score(d.prediction, ref) for ref in d.references), default=0.0)


def _flag(options: dict[str, Any], key: str, default: bool) -> bool:
    value = options.get(key, default)
    if not isinstance(value, bool):
        raise ValueError(f"option {key!r} must be true or false, got {value!r}")
    return value


@METRICS.register("exact_match_norm", GEN)
def _exact_match_norm(d: GenerationDoc) -> float:
    return _best(squad_exact_match, d)


@METRICS.register("token_f1", GEN)
def _token_f1(d: GenerationDoc) -> float:
    return _best(token_f1, d)


def _prepare_rouge(options: dict[str, Any], _: Path | None) -> dict[str, Any]:
    return {"use_stemmer": _flag(options, "use_stemmer", False)}


@METRICS.register("rougeL", GEN, options=("use_stemmer",), prepare=_prepare_rouge, library="rouge-score")
def _rouge_l(d: GenerationDoc, *, use_stemmer: bool) -> float:
    return _best(lambda p, r: rouge_l(p, r, use_stemmer=use_stemmer), d)


def _prepare_regex(options: dict[str, Any], _: Path | None) -> dict[str, Any]:
    pattern = options["pattern"]
    if not isinstance(pattern, str):
        raise ValueError(f"option 'pattern' must be a string, got {pattern!r}")
    flags = re.IGNORECASE if _flag(options, "ignore_case", False) else 0
    try:
        compiled = re.compile(pattern, flags)
    except re.error as err:
        raise ValueError(f"option 'pattern': bad regular expression: {err}") from None
    return {"pattern": compiled, "full": _flag(options, "full", False)}


@METRICS.register("regex_match", GEN, options=("pattern", "ignore_case", "full"), required=("pattern",),
                  prepare=_prepare_regex)
def _regex_match(d: GenerationDoc, *, pattern: re.Pattern[str], full: bool) -> float:
    return regex_match(d.prediction, pattern, full=full)


def _prepare_numeric(options: dict[str, Any], _: Path | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, default in (("abs_tol", 0.0), ("rel_tol", 1e-9)):
        value = options.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ValueError(f"option {key!r} must be a number >= 0, got {value!r}")
        out[key] = float(value)
    pick = options.get("pick", "last")
    if pick not in ("first", "last", "whole"):
        raise ValueError(f"option 'pick' must be first, last or whole, got {pick!r}")
    return {**out, "pick": pick}


@METRICS.register("numeric_match", GEN, options=("abs_tol", "rel_tol", "pick"), prepare=_prepare_numeric)
def _numeric_match(d: GenerationDoc, *, abs_tol: float, rel_tol: float, pick: str) -> float:
    return _best(lambda p, r: numeric_match(p, r, abs_tol=abs_tol, rel_tol=rel_tol, pick=pick), d)


def _prepare_json(options: dict[str, Any], _: Path | None) -> dict[str, Any]:
    return {"strip_fences": _flag(options, "strip_fences", True)}


@METRICS.register("json_valid", GEN, options=("strip_fences",), prepare=_prepare_json)
def _json_valid(d: GenerationDoc, *, strip_fences: bool) -> float:
    return json_valid(d.prediction, strip_fences=strip_fences)


def _prepare_schema(options: dict[str, Any], base_dir: Path | None) -> dict[str, Any]:
    inline, path = options.get("schema"), options.get("schema_file")
    if (inline is None) == (path is None):
        raise ValueError("give exactly one of the options 'schema' (inline) and 'schema_file'")
    if path is not None:
        file = Path(str(path))
        if not file.is_absolute() and base_dir is not None:
            file = base_dir / file
        try:
            inline = json.loads(file.read_text(encoding="utf-8"))
        except OSError as err:
            raise ValueError(f"option 'schema_file': cannot read {file}: {err.strerror}") from None
        except ValueError as err:
            raise ValueError(f"option 'schema_file': {file} is not JSON: {err}") from None
    if not isinstance(inline, dict):
        raise ValueError(f"the JSON schema must be an object, got {type(inline).__name__}")
    return {"validator": schema_validator(inline), "strip_fences": _flag(options, "strip_fences", True)}


@METRICS.register("json_schema_valid", GEN, options=("schema", "schema_file", "strip_fences"),
                  prepare=_prepare_schema, library="jsonschema")
def _json_schema_valid(d: GenerationDoc, *, validator: Any, strip_fences: bool) -> float:
    return json_schema_valid(d.prediction, validator, strip_fences=strip_fences)
