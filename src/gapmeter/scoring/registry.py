"""The metric registry's types: what a metric declares and what it receives per document.

A metric is one ``MetricSpec``: its name, its corpus aggregation and direction (lm-eval's defaults
for lm-eval's metrics), and one per-document function per task output type it supports. Each
output type hands its functions one input object:

* ``multiple_choice``: ``ChoiceDoc`` (per-choice loglikelihoods, greedy flags, choices, gold);
* ``loglikelihood``: ``LoglikelihoodDoc`` (the target's loglikelihood and greedy flag);
* ``loglikelihood_rolling``: ``RollingDoc`` (the text's total loglikelihood);
* ``generate_until``: ``GenerationDoc`` (the filtered prediction, the reference(s), the doc).

called as ``fn(doc_input, **options)`` with the task's metric options (the YAML keys beside
``metric:``) after ``MetricSpec.bind`` has checked and prepared them. The built-in metrics are
registered in ``scoring/metrics.py``, the one place to add a metric; a task's own Python metric
becomes a spec through ``user_metric``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

from gapmeter.scoring.choice_metrics import MCScores, mc_scores

__all__ = [
    "OUTPUT_TYPES",
    "ChoiceDoc",
    "GenerationDoc",
    "LoglikelihoodDoc",
    "MetricRegistry",
    "MetricSpec",
    "RollingDoc",
    "user_metric",
]

OUTPUT_TYPES = ("multiple_choice", "loglikelihood", "loglikelihood_rolling", "generate_until")

PerDoc = Callable[..., Any]
#: ``prepare(options, base_dir) -> options``: validates a task's options when it loads (raising
#: ValueError with the reason) and turns them into the per-document keyword arguments (a compiled
#: regex, a schema validator built from a file relative to the task's YAML).
Prepare = Callable[[dict[str, Any], Path | None], dict[str, Any]]
F = TypeVar("F", bound=PerDoc)


@dataclass(frozen=True)
class ChoiceDoc:
    """A multiple-choice document: the model's per-choice loglikelihoods and the gold label."""

    lls: Sequence[float]
    is_greedy: Sequence[bool]
    choices: Sequence[str]
    gold: Any
    #: ``ll("" -> choice)`` per choice; set when a metric of the task asks for them.
    unconditional_lls: Sequence[float] | None = None

    @cached_property
    def scores(self) -> MCScores:
        """acc, acc_norm, acc_bytes and exact_match at once (one argmax each, shared)."""
        return mc_scores(self.lls, self.is_greedy, self.choices, self.gold)


@dataclass(frozen=True)
class LoglikelihoodDoc:
    ll: float
    is_greedy: bool
    target: Any


@dataclass(frozen=True)
class RollingDoc:
    ll: float
    target: str


@dataclass(frozen=True)
class GenerationDoc:
    """A generated answer and what it is compared with.

    ``references`` are the reference strings (one, or several when the target is a list: the
    metrics take the best match); ``multiple`` says the target was a list; ``doc`` is the raw
    document, for user metrics that need other fields.
    """

    prediction: str
    references: tuple[str, ...]
    multiple: bool = False
    doc: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MetricSpec:
    """One metric: name, default aggregation and direction, per-document function per output type.

    ``options`` are the option keys a task may set (None: any, for user metrics), ``required``
    those it must set. ``needs_unconditional`` asks multiple-choice tasks for the extra
    ``("", choice)`` loglikelihood requests (lm-eval's acc_mutual_info). A spec with no output
    types is a name produced outside the per-document functions (``mc2`` by a ``process_results``
    hook, ``judge_score`` by ``gapmeter judge``). ``value_range`` is the (lowest, highest) value
    the metric can take where it is fixed (``judge_score``: 1–10), so ``profile`` can rescale it
    to 0–1; None where it is not declared.
    """

    name: str
    aggregation: str = "mean"
    higher_is_better: bool = True
    per_doc: Mapping[str, PerDoc] = field(default_factory=dict)
    options: frozenset[str] | None = frozenset()
    required: frozenset[str] = frozenset()
    prepare: Prepare | None = None
    needs_unconditional: bool = False
    library: str = "gapmeter"
    value_range: tuple[float, float] | None = None

    @property
    def output_types(self) -> frozenset[str]:
        return frozenset(self.per_doc)

    def bind(self, options: Mapping[str, Any], base_dir: Path | None = None) -> dict[str, Any]:
        """Check a task's options for this metric and prepare them; ValueError says what is wrong."""
        given = dict(options)
        if self.options is not None:
            unknown = sorted(set(given) - self.options)
            if unknown:
                accepted = ", ".join(sorted(self.options)) or "none"
                raise ValueError(f"unknown option {unknown[0]!r} (accepted: {accepted})")
        missing = sorted(self.required - set(given))
        if missing:
            raise ValueError(f"option {missing[0]!r} is required")
        return self.prepare(given, base_dir) if self.prepare is not None else given

    def compute(self, output_type: str, doc_input: Any, bound: Mapping[str, Any]) -> Any:
        """The per-document item for ``doc_input`` (options already ``bind``-ed)."""
        return self.per_doc[output_type](doc_input, **bound)


class MetricRegistry(dict[str, MetricSpec]):
    """Metric name -> spec. Registration order matters: for the loglikelihood output types a
    task's per-document metrics are listed in this order (lm-eval's ``process_results`` order)."""

    def register(
        self,
        name: str,
        *output_types: str,
        aggregation: str = "mean",
        higher_is_better: bool = True,
        options: Collection[str] = (),
        required: Collection[str] = (),
        prepare: Prepare | None = None,
        needs_unconditional: bool = False,
        library: str = "gapmeter",
    ) -> Callable[[F], F]:
        """Decorator: register ``fn`` as ``name``'s per-document function for ``output_types``.

        Registering a name again adds output types; its aggregation, direction and options must
        then be the same (one metric, one meaning).
        """
        unknown = [t for t in output_types if t not in OUTPUT_TYPES]
        if unknown:
            raise ValueError(f"metric {name!r}: unknown output type {unknown[0]!r}")

        def decorate(fn: F) -> F:
            spec = MetricSpec(
                name=name,
                aggregation=aggregation,
                higher_is_better=higher_is_better,
                per_doc=dict.fromkeys(output_types, fn),
                options=frozenset(options),
                required=frozenset(required),
                prepare=prepare,
                needs_unconditional=needs_unconditional,
                library=library,
            )
            self._add(spec)
            return fn

        return decorate

    def hook_only(self, name: str, *, aggregation: str, higher_is_better: bool,
                  value_range: tuple[float, float] | None = None) -> None:
        """A name produced outside the per-document functions (a ``process_results`` hook, the
        judge): known for its aggregation, direction and, where fixed, its range."""
        if value_range is not None and not value_range[0] < value_range[1]:
            raise ValueError(f"metric {name!r}: value_range {value_range} is not (low, high) with low < high")
        self._add(MetricSpec(name=name, aggregation=aggregation, higher_is_better=higher_is_better,
                             value_range=value_range))

    def _add(self, spec: MetricSpec) -> None:
        old = self.get(spec.name)
        if old is None:
            self[spec.name] = spec
            return
        same = (old.aggregation, old.higher_is_better, old.options, old.required, old.needs_unconditional,
                old.value_range)
        if same != (spec.aggregation, spec.higher_is_better, spec.options, spec.required, spec.needs_unconditional,
                    spec.value_range):
            raise ValueError(f"metric {spec.name!r} registered twice with different defaults")
        clash = old.output_types & spec.output_types
        if clash:
            raise ValueError(f"metric {spec.name!r} registered twice for {sorted(clash)[0]}")
        self[spec.name] = MetricSpec(
            name=old.name, aggregation=old.aggregation, higher_is_better=old.higher_is_better,
            per_doc={**old.per_doc, **spec.per_doc}, options=old.options, required=old.required,
            prepare=old.prepare or spec.prepare, needs_unconditional=old.needs_unconditional,
            library=old.library, value_range=old.value_range,
        )

    def supporting(self, output_type: str) -> list[str]:
        """Names of the metrics computed for ``output_type`` (in registration order)."""
        return [name for name, spec in self.items() if output_type in spec.output_types]


def user_metric(
    fn: Callable[..., Any], *, name: str | None = None, aggregation: str = "mean", higher_is_better: bool = True
) -> MetricSpec:
    """A task's own generation metric: ``fn(prediction, references, doc, **options) -> float``.

    ``references`` is always a list of strings (a task with one reference gives a one-element
    list); the function decides how several references combine. Any options are passed through.
    """

    def per_doc(d: GenerationDoc, **options: Any) -> Any:
        return fn(d.prediction, list(d.references), d.doc, **options)

    return MetricSpec(
        name=name or str(getattr(fn, "__name__", "user_metric")),
        aggregation=aggregation,
        higher_is_better=higher_is_better,
        per_doc={"generate_until": per_doc},
        options=None,
        library="user function",
    )
