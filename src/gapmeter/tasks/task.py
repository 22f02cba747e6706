"""A Task at run time: its docs, the prompt and requests for each doc, and per-doc scores.

The prompt layout reproduces lm-evaluation-harness 0.4.13's plain-text path exactly:

    description + Σ_examples (text + target_delimiter + answer + fewshot_delimiter) + text

with lm-eval's rules for which split supplies examples and when the evaluated doc is excluded.
With a ``PromptFormat`` (``--system_instruction``, ``--apply_chat_template``) the prompt is built
as chat messages instead (``tasks/chat.py``), as lm-eval's ``fewshot_context`` builds it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gapmeter.errors import ConfigError, DataError
from gapmeter.notices import notice
from gapmeter.requests import (
    GenerateRequest,
    LoglikelihoodRequest,
    Request,
    RollingLoglikelihoodRequest,
)
from gapmeter.tasks.chat import Message, PromptFormat, maybe_delimit, qa_turn, render
from gapmeter.tasks.data import load_splits
from gapmeter.tasks.fewshot import DEFAULT_FEWSHOT_SEED, FewShotSampler
from gapmeter.tasks.formats.user_table import TableRows
from gapmeter.tasks.hooks import resolve_hook
from gapmeter.tasks.schema import GenerationConfig, HookRef, TaskConfig
from gapmeter.tasks.task_metrics import TaskMetric, resolve_task_metrics
from gapmeter.tasks.templates import parse_literal, resolve_text


@dataclass(frozen=True)
class DocPlan:
    """Everything decided before the model runs: the doc, its few-shot examples, its requests."""

    doc_id: int
    doc: dict[str, Any]
    fewshot_ids: tuple[int, ...]
    requests: tuple[Request, ...]


@dataclass
class DocScore:
    """A scored doc: raw responses, filtered responses and metrics per filter pipeline."""

    doc_id: int
    target: Any
    responses: list[Any]
    filtered: dict[str, Any] = field(default_factory=dict)  # filter name -> filtered response(s)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)  # filter -> metric -> value


class Task:
    def __init__(
        self,
        config: TaskConfig,
        *,
        yaml_dir: Path | None = None,
        data_dir: Path | None = None,
    ) -> None:
        self.config = config
        self.yaml_dir = yaml_dir
        self.data_dir = data_dir
        self._hooks: dict[str, Callable[..., Any]] = {}
        self._loaded: dict[str, list[dict[str, Any]]] = {}
        # split -> one problem line per malformed row left out of a user table (skip_invalid)
        self.skipped_rows: dict[str, list[str]] = {}
        # A few-shot example's rendered text, by the example doc's identity: a 25-shot task
        # renders each pool doc for hundreds of eval docs otherwise (templates are pure).
        self._examples: dict[int, tuple[dict[str, Any], str]] = {}
        self._example_turns: dict[int, tuple[dict[str, Any], tuple[str, str | None]]] = {}

    @property
    def name(self) -> str:
        return self.config.task

    # ---------------------------------------------------------------- docs
    def _fewshot_split_name(self) -> str | None:
        """lm-eval's rule: fewshot_split, else train, else validation, else test."""
        c = self.config
        return c.fewshot_split or c.training_split or c.validation_split or c.test_split

    def _split(self, name: str) -> list[dict[str, Any]]:
        """One split, loaded on first use (a 0-shot run never needs the few-shot split)."""
        if name not in self._loaded:
            splits = load_splits(
                self.name, self.config.source, {name}, data_dir=self.data_dir, yaml_dir=self.yaml_dir
            )
            if name not in splits:
                raise DataError(f"task {self.name}: split {name!r} is not available from its source")
            rows = splits[name]
            self._loaded[name] = rows
            skipped = rows.skipped if isinstance(rows, TableRows) else []
            if skipped:
                self.skipped_rows[name] = skipped
                notice(f"task {self.name}: {len(skipped)} malformed row(s) skipped (--skip_invalid); "
                       f"the first: {skipped[0]}")
        return self._loaded[name]

    def _process(self, docs: list[dict[str, Any]], hook: str | None) -> list[dict[str, Any]]:
        if hook is None:
            return docs
        return list(self._hook(hook, "process_docs")(docs))

    @cached_property
    def eval_docs(self) -> list[dict[str, Any]]:
        docs = self._process(self._split(self.config.eval_split), self.config.process_docs)
        if not docs:
            raise DataError(f"task {self.name}: split {self.config.eval_split!r} has no docs")
        return docs

    @cached_property
    def fewshot_pool(self) -> list[dict[str, Any]]:
        split = self._fewshot_split_name()
        if split is None:
            return []
        hook = self.config.fewshot.process_docs or self.config.process_docs
        return self._process(self._split(split), hook)

    @cached_property
    def metrics(self) -> list[TaskMetric]:
        """The task's metrics resolved against the registry (empty with a process_results hook)."""
        return resolve_task_metrics(self.config, self.yaml_dir, f"task {self.name}")

    @property
    def needs_unconditional(self) -> bool:
        """A metric (acc_mutual_info) scores choices against their ``("", choice)`` loglikelihoods."""
        return self.config.output_type == "multiple_choice" and any(m.spec.needs_unconditional for m in self.metrics)

    # ---------------------------------------------------------- doc fields
    def _hook(self, spec: str, what: str) -> Callable[..., Any]:
        if spec not in self._hooks:
            self._hooks[spec] = resolve_hook(
                spec, yaml_dir=self.yaml_dir, where=f"task {self.name}: {what}"
            )
        return self._hooks[spec]

    def _field(self, spec: Any, doc: dict[str, Any], what: str) -> Any:
        if isinstance(spec, HookRef):
            return self._hook(spec.hook, what)(doc)
        if isinstance(spec, int | list):
            return spec
        return resolve_text(spec, doc, where=f"task {self.name}: {what}")

    def doc_to_text(self, doc: dict[str, Any], spec: Any = None) -> str | int:
        value = self._field(self.config.doc_to_text if spec is None else spec, doc, "doc_to_text")
        # A rendered index selects the context in multiple-input mode (lm-eval's isdigit rule).
        if isinstance(value, str) and value.isdigit() and self.config.doc_to_choice is not None:
            return int(value)
        return value

    def doc_to_target(self, doc: dict[str, Any], spec: Any = None) -> Any:
        spec = self.config.doc_to_target if spec is None else spec
        value = self._field(spec, doc, "doc_to_target")
        if isinstance(value, str) and not (isinstance(spec, str) and spec in doc):
            if value.isdigit() and self.config.doc_to_choice is not None:
                return int(value)
            if len(value) >= 2 and value[0] == "[" and value[-1] == "]":
                try:
                    return parse_literal(value, where="")
                except ConfigError:
                    return value
        return value

    def doc_to_choice(self, doc: dict[str, Any]) -> list[str]:
        spec = self.config.doc_to_choice
        if isinstance(spec, list):
            return [str(c) for c in spec]
        value = self._field(spec, doc, "doc_to_choice")
        if isinstance(value, str):
            value = parse_literal(value, where=f"task {self.name}: doc_to_choice")
        if isinstance(value, dict):
            value = list(value.values())
        if not isinstance(value, list):
            raise DataError(f"task {self.name}: doc_to_choice gave {type(value).__name__}, not a list")
        return value

    def gold(self, doc: dict[str, Any], choices: Sequence[str]) -> int | list[int]:
        """The right choice index (or indices); -100 marks a label outside the choices."""
        gold = self.doc_to_text(doc) if self.config.multiple_input else self.doc_to_target(doc)
        if isinstance(gold, list):
            return [g if isinstance(g, int) and g < len(choices) else -100 for g in gold]
        if isinstance(gold, bool) or not isinstance(gold, int | str):
            return -100
        if isinstance(gold, int):
            return gold if 0 <= gold < len(choices) else -100
        return choices.index(gold) if gold in choices else -100

    # ------------------------------------------------------------- prompts
    def _answer_text(self, doc: dict[str, Any], choices: list[str] | None, answer: Any) -> str:
        if choices and isinstance(answer, int):
            return choices[answer]
        if isinstance(answer, list):
            first = answer[0]
            return choices[first] if choices and isinstance(first, int) else str(first)
        return str(answer)

    def _example_parts(self, ex: dict[str, Any]) -> tuple[str, str | None]:
        """A few-shot example as (question, answer text or None when it has no answer)."""
        c = self.config
        fs = c.fewshot
        text = self.doc_to_text(ex, fs.doc_to_text)
        choices = self.doc_to_choice(ex) if c.doc_to_choice is not None else None
        answer = self.doc_to_target(ex, fs.doc_to_target)
        if c.multiple_input:
            assert choices is not None and isinstance(text, int)
            text, choices = choices[text], None
        if answer is None or answer == "":
            return str(text), None
        return str(text), self._answer_text(ex, choices, answer)

    def _example_text(self, ex: dict[str, Any]) -> str:
        c = self.config
        text, answer = self._example_parts(ex)
        return text if answer is None else f"{text}{c.target_delimiter}{answer}{c.fewshot_delimiter}"

    def _cached_example_text(self, ex: dict[str, Any]) -> str:
        hit = self._examples.get(id(ex))
        if hit is None or hit[0] is not ex:  # the doc itself is kept, so its id stays its own
            hit = self._examples[id(ex)] = (ex, self._example_text(ex))
        return hit[1]

    def context(self, doc: dict[str, Any], examples: Sequence[dict[str, Any]]) -> str | list[str]:
        """The prompt for ``doc``; a list of prompts (one per choice) in multiple-input mode."""
        c = self.config
        description = resolve_text(c.description, doc, where=f"task {self.name}: description") if c.description else ""
        prefix = str(description) + "".join(self._cached_example_text(ex) for ex in examples)
        if c.multiple_input:
            return [prefix + choice for choice in self.doc_to_choice(doc)]
        text = self.doc_to_text(doc)
        if not isinstance(text, str):
            raise DataError(f"task {self.name}: doc_to_text gave {type(text).__name__}, not text")
        return prefix + text

    def _example_qa(self, ex: dict[str, Any]) -> tuple[str, str | None]:
        """A few-shot example as (question, answer or None), cached like its plain text."""
        hit = self._example_turns.get(id(ex))
        if hit is None or hit[0] is not ex:
            hit = self._example_turns[id(ex)] = (ex, self._example_parts(ex))
        return hit[1]

    def chat_context(
        self, doc: dict[str, Any], examples: Sequence[dict[str, Any]], fmt: PromptFormat
    ) -> str | list[str]:
        """The prompt as lm-eval's ``fewshot_context`` builds it with a system instruction and/or a
        chat template: system message, a user/assistant turn per example, the doc's user turn."""
        c = self.config
        description = resolve_text(c.description, doc, where=f"task {self.name}: description") if c.description else ""
        messages: list[Message] = []
        system = maybe_delimit(fmt.system_instruction, str(description), c.fewshot_delimiter)
        if system:
            messages.append(Message("system", system))
        for ex in examples:
            question, answer = self._example_qa(ex)
            messages += qa_turn(question, answer, target_delimiter=c.target_delimiter,
                                fewshot_delimiter=c.fewshot_delimiter)
        if c.multiple_input:
            return [
                render(messages + qa_turn(choice, None, target_delimiter="", fewshot_delimiter=""), fmt)
                for choice in self.doc_to_choice(doc)
            ]
        text = self._doc_question(doc)
        return render(messages + qa_turn(text, None, target_delimiter=c.target_delimiter, fewshot_delimiter=""), fmt)

    def _doc_question(self, doc: dict[str, Any]) -> str:
        text = self.doc_to_text(doc)
        if not isinstance(text, str):
            raise DataError(f"task {self.name}: doc_to_text gave {type(text).__name__}, not text")
        return text

    # ------------------------------------------------------------ requests
    def fewshot_sampler(self, seed: int | None) -> FewShotSampler:
        c = self.config
        return FewShotSampler(
            pool=self.fewshot_pool,
            kind=c.fewshot.sampler,
            seed=seed,
            # lm-eval compares the configured fewshot split with the test split, so two unset
            # values count as equal and the eval doc is excluded (this changes the RNG stream).
            exclude_eval_doc=c.fewshot_split == c.test_split,
        )

    def plan(
        self,
        *,
        num_fewshot: int | None = None,
        limit: int | None = None,
        seed: int | None = DEFAULT_FEWSHOT_SEED,
        prompt_format: PromptFormat | None = None,
        gen_kwargs: dict[str, Any] | None = None,
    ) -> list[DocPlan]:
        """Every doc's few-shot examples, prompt and requests. ``prompt_format`` (system
        instruction, chat template) and ``gen_kwargs`` (``--gen_kwargs``, over the task's
        ``generation_kwargs``) are lm-eval's run options; without them the plain layout."""
        k = self.config.num_fewshot if num_fewshot is None else num_fewshot
        docs = self.eval_docs if limit is None else self.eval_docs[:limit]
        if k > 0 and not self.fewshot_pool:
            raise ConfigError(f"task {self.name}: {k}-shot asked but the task has no few-shot split")
        self._check_gold(docs)
        selections = (
            self.fewshot_sampler(seed).select_all(docs, k) if k > 0 else [[] for _ in docs]
        )
        fmt = prompt_format if prompt_format is not None and (
            prompt_format.chat or prompt_format.system_instruction is not None) else None
        generation = self._generation(gen_kwargs)
        shown = self._shown_generation_keys(gen_kwargs)
        plans = []
        for doc_id, (doc, chosen) in enumerate(zip(docs, selections, strict=True)):
            examples = [self.fewshot_pool[i] for i in chosen]
            ctx = self.context(doc, examples) if fmt is None else self.chat_context(doc, examples, fmt)
            requests = self.requests(doc, ctx, chat=fmt is not None and fmt.chat, generation=generation,
                                     shown=shown)
            plans.append(DocPlan(doc_id, doc, tuple(chosen), tuple(requests)))
        return plans

    def _shown_generation_keys(self, overrides: dict[str, Any] | None) -> tuple[str, ...] | None:
        """The generation options lm-eval logs in a request's arguments: the task YAML's
        ``generation_kwargs`` keys (``until`` added when missing), or, without that block, lm-eval's
        ``default_gen_kwargs``; then the keys ``--gen_kwargs`` adds (a dict update)."""
        gen = self.config.generation_kwargs
        if gen is None or self.config.output_type != "generate_until":
            return None
        written = gen.model_fields_set - {"options"}
        if not written and not gen.options:
            keys = ["temperature", "do_sample", "max_gen_toks", "until"]
        else:
            keys = [k for k in ("until", "max_gen_toks", "do_sample", "temperature") if k in written]
            keys += [k for k in gen.options if k not in keys]
            if "until" not in keys:
                keys.append("until")
        keys += [k for k in overrides or {} if k not in keys]
        return tuple(keys)

    def _generation(self, overrides: dict[str, Any] | None) -> GenerationConfig | None:
        """The task's generation_kwargs updated with ``--gen_kwargs`` (lm-eval's dict update,
        generate_until tasks only)."""
        gen = self.config.generation_kwargs
        if gen is None or not overrides or self.config.output_type != "generate_until":
            return gen
        merged = {"until": gen.until, "max_gen_toks": gen.max_gen_toks, "do_sample": gen.do_sample,
                  "temperature": gen.temperature, **gen.options, **overrides}
        if isinstance(merged["until"], str):  # lm-eval's backends take one stop string as a list
            merged["until"] = [merged["until"]]
        try:
            return GenerationConfig.model_validate(merged)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ConfigError(f"--gen_kwargs {where}: {first['msg']} (task {self.name})") from None

    def _check_gold(self, docs: Sequence[dict[str, Any]]) -> None:
        """A label outside the choices is a data error, reported before any model runs."""
        if self.config.output_type != "multiple_choice" or self.config.process_results:
            return
        for doc_id, doc in enumerate(docs):
            choices = self.doc_to_choice(doc)
            gold = self.gold(doc, choices)
            bad = gold == -100 if isinstance(gold, int) else (not gold or -100 in gold)
            if bad:
                raw = self.doc_to_text(doc) if self.config.multiple_input else self.doc_to_target(doc)
                raise DataError(
                    f"task {self.name}: doc {doc_id}: answer {raw!r} is not one of its "
                    f"{len(choices)} choices (index out of range)"
                )

    def requests(
        self,
        doc: dict[str, Any],
        ctx: str | list[str],
        *,
        chat: bool = False,
        generation: GenerationConfig | None = None,
        shown: tuple[str, ...] | None = None,
    ) -> list[Request]:
        c = self.config
        if c.output_type == "multiple_choice":
            # A chat-templated context ends with the assistant's turn opening: lm-eval drops the
            # target delimiter there (it keeps it only after a gen_prefix, which gapmeter lacks).
            delimiter = "" if chat else c.target_delimiter
            if c.multiple_input:
                cont = f"{delimiter}{self.doc_to_target(doc)}"
                return [LoglikelihoodRequest(context, cont) for context in ctx]
            assert isinstance(ctx, str)
            choices = self.doc_to_choice(doc)
            requests: list[Request] = [LoglikelihoodRequest(ctx, f"{delimiter}{ch}") for ch in choices]
            if self.needs_unconditional:  # lm-eval appends them after the conditional ones
                requests += [LoglikelihoodRequest("", f"{delimiter}{ch}") for ch in choices]
            return requests
        assert isinstance(ctx, str)
        if c.output_type == "loglikelihood":
            return [LoglikelihoodRequest(ctx, str(self.doc_to_target(doc)))]
        if c.output_type == "loglikelihood_rolling":
            return [RollingLoglikelihoodRequest(str(self.doc_to_target(doc)))]
        gen = generation if generation is not None else c.generation_kwargs
        assert gen is not None
        options = {"do_sample": gen.do_sample, "temperature": gen.temperature, **gen.options}
        return [
            GenerateRequest(ctx, tuple(gen.until), gen.max_gen_toks, tuple(sorted(options.items())), shown=shown)
        ]
