"""The task YAML schema (pydantic). A YAML file merely fills in these typed models.

Field names follow lm-evaluation-harness where the concept is the same, so a user of that tool can
read a gapmeter task at a glance; coercions it does implicitly (``"3"`` → index 3, ``"[0, 2]"``
→ list) are explicit here through ``target_kind``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

OutputType = Literal["multiple_choice", "loglikelihood", "loglikelihood_rolling", "generate_until"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HubSource(_Strict):
    """A HuggingFace hub dataset (loaded with ``datasets`` when online)."""

    path: str
    name: str | None = None
    revision: str | None = None


class LocalSource(_Strict):
    """Original-format files under the data dir, converted to the hub schema by ``format``."""

    format: str = Field(description="a converter in gapmeter.tasks.formats, e.g. arc_jsonl")
    files: dict[str, str | list[str]] = Field(description="split name -> path(s) under the data dir")
    options: dict[str, Any] = Field(default_factory=dict)


class GeneratorSource(_Strict):
    """Docs made by a seeded Python function ``module:function(n=..., seed=..., split=..., **params)``."""

    function: str
    splits: dict[str, dict[str, Any]] = Field(description="split -> {n: int, seed: int}")
    params: dict[str, Any] = Field(default_factory=dict)


class Source(_Strict):
    """Where docs come from. Local files are preferred; the hub is the fallback when online."""

    def local_layouts(self) -> list[LocalSource]:
        if self.local is None:
            return []
        return self.local if isinstance(self.local, list) else [self.local]

    # One local layout, or several alternatives tried in order (the first whose files exist):
    # e.g. an original-schema jsonl before a derived fallback copy.
    local: LocalSource | list[LocalSource] | None = None
    hub: HubSource | None = None
    generator: GeneratorSource | None = None

    @model_validator(mode="after")
    def _at_least_one(self) -> Source:
        if not (self.local or self.hub or self.generator):
            raise ValueError("source needs at least one of: local, hub, generator")
        return self


#: Capability dimensions for `gapmeter profile` ("memory" is accepted for knowledge).
DIMENSIONS = ("comprehension", "generation", "reasoning", "knowledge")
_DIMENSION_ALIASES = {"memory": "knowledge", "knowledge/memory": "knowledge"}


class PromptVariant(_Strict):
    """Marks a task (or group) as the same items as ``of`` under another prompt ``format``;
    ``gapmeter run --prompt_variants`` runs every format of the tasks asked for."""

    of: str
    format: str


class HookRef(_Strict):
    """A Python function instead of a template: ``{hook: winogrande.doc_to_text}``.

    Built-in hooks live in ``gapmeter.tasks.hooks``; user hooks are ``package.module:function``
    or ``path/to/file.py:function`` relative to the YAML file.
    """

    hook: str


Field_ = str | int | list[Any] | HookRef


class FewShotConfig(_Strict):
    split: str | None = None
    sampler: Literal["default", "first_n"] = "default"
    # Optional separate templates for the examples (rare; e.g. chain-of-thought targets).
    doc_to_text: str | HookRef | None = None
    doc_to_target: str | HookRef | None = None
    process_docs: str | None = None


class MetricConfig(_Strict):
    metric: str
    aggregation: str | None = None
    higher_is_better: bool | None = None
    # Extra keyword arguments for the metric (e.g. exact_match's regexes_to_ignore).
    kwargs: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _collect_kwargs(cls, data: Any) -> Any:
        # Accept lm-eval's flat style: {metric: exact_match, ignore_case: true, ...}
        if isinstance(data, dict):
            known = {"metric", "aggregation", "higher_is_better", "kwargs"}
            extra = {k: v for k, v in data.items() if k not in known}
            if extra:
                data = {k: v for k, v in data.items() if k in known}
                data["kwargs"] = {**data.get("kwargs", {}), **extra}
        return data


class FilterStep(_Strict):
    function: str
    # Step parameters, e.g. regex_pattern, group_select, fallback.
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _collect_params(cls, data: Any) -> Any:
        if isinstance(data, dict):
            extra = {k: v for k, v in data.items() if k not in {"function", "params"}}
            if extra:
                data = {"function": data["function"] if "function" in data else None,
                        "params": {**data.get("params", {}), **extra}}
        return data


class FilterPipeline(_Strict):
    name: str
    filter: list[FilterStep]


class GenerationConfig(_Strict):
    until: list[str] = Field(default_factory=list)
    max_gen_toks: int = 256
    do_sample: bool = False
    temperature: float = 0.0
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _collect_options(cls, data: Any) -> Any:
        if isinstance(data, dict):
            known = {"until", "max_gen_toks", "do_sample", "temperature", "options"}
            extra = {k: v for k, v in data.items() if k not in known}
            if extra:
                data = {k: v for k, v in data.items() if k in known}
                data["options"] = {**data.get("options", {}), **extra}
        return data


class TaskConfig(_Strict):
    """One task: what docs, how they become prompts and requests, and how they are scored."""

    task: str
    version: float | str = 1.0
    description_text: str | None = Field(default=None, description="one line for `gapmeter tasks`")
    tags: list[str] = Field(default_factory=list)
    dimension: str | None = None  # capability dimension: one of DIMENSIONS (for `profile`)
    prompt_variant: PromptVariant | None = None

    source: Source
    test_split: str | None = None
    validation_split: str | None = None
    training_split: str | None = None
    fewshot_split: str | None = None
    fewshot: FewShotConfig = Field(default_factory=FewShotConfig)
    num_fewshot: int = 0
    process_docs: str | None = None  # hook "module.function" (built-in hooks) or "pkg.mod:fn"

    output_type: OutputType = "multiple_choice"
    description: str = ""  # prepended to every prompt (MMLU's subject line); a template
    doc_to_text: Field_ = ""  # template or field name; an int for multiple-input tasks
    doc_to_target: Field_ = ""  # template or field name; an int or list of ints (gold index)
    doc_to_choice: Field_ | None = None  # template rendering a list; a field; a literal list
    # Multiple-input mode (Winogrande's partial scoring): doc_to_text gives the gold index, each
    # choice is its own context, and doc_to_target is the shared continuation.
    multiple_input: bool = False
    target_delimiter: str = " "
    fewshot_delimiter: str = "\n\n"
    # Hook computing per-doc metrics from responses for odd cases (TruthfulQA mc2).
    process_results: str | None = None

    metric_list: list[MetricConfig] = Field(default_factory=lambda: [MetricConfig(metric="acc")])
    filter_list: list[FilterPipeline] | None = None
    generation_kwargs: GenerationConfig | None = None

    # Items that belong together (MMLU subject, passage id): a doc field or template; used for
    # the clustered standard error reported next to lm-eval's iid one.
    cluster_by: str | None = None

    @field_validator("dimension")
    @classmethod
    def _known_dimension(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = _DIMENSION_ALIASES.get(value.strip().lower(), value.strip().lower())
        if value not in DIMENSIONS:
            raise ValueError(f"must be one of {', '.join(DIMENSIONS)}")
        return value

    @model_validator(mode="after")
    def _check(self) -> TaskConfig:
        if self.output_type == "multiple_choice" and self.doc_to_choice is None:
            raise ValueError("multiple_choice tasks need doc_to_choice")
        if self.output_type == "generate_until":
            # lm-eval's TaskConfig: without a generation_kwargs block its default_gen_kwargs, and
            # without `until` the few-shot delimiter. Built with the fields the YAML set kept as
            # they were, so samples files list the options lm-eval lists (Task._shown_generation_keys).
            gen = self.generation_kwargs
            if gen is None:
                gen = GenerationConfig.model_construct(set(), until=[self.fewshot_delimiter])
            elif "until" not in gen.model_fields_set:
                gen = GenerationConfig.model_construct(
                    set(gen.model_fields_set), **{**dict(gen), "until": [self.fewshot_delimiter]})
            object.__setattr__(self, "generation_kwargs", gen)
        if self.test_split is None and self.validation_split is None:
            raise ValueError("set test_split or validation_split (the split that is evaluated)")
        if self.num_fewshot < 0:
            raise ValueError("num_fewshot must be >= 0")
        return self

    @property
    def eval_split(self) -> str:
        return self.test_split or self.validation_split  # type: ignore[return-value]


class GroupAggregate(_Strict):
    metric: str
    weight_by_size: bool = True
    filter_list: list[str] = Field(default_factory=lambda: ["none"])


class GroupConfig(_Strict):
    """A named set of tasks (and groups), optionally with an aggregate score."""

    group: str
    task: list[str | dict[str, Any]]
    aggregate_metric_list: list[GroupAggregate] = Field(default_factory=list)
    description_text: str | None = None
    version: float | str = 1.0
    prompt_variant: PromptVariant | None = None


class FamilyConfig(_Strict):
    """Many tasks that differ only in a few values (MMLU's 57 subjects): defaults + variants."""

    family: str
    defaults: dict[str, Any]
    variants: list[dict[str, Any]]
