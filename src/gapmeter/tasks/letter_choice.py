"""``<task>_gen_letters``: a multiple-choice task asked as a letter-answer generation task.

Chat APIs return no prompt log-probs, so a multiple-choice task cannot be scored there the
loglikelihood way. This variant lists the choices as ``A. ...``, ``B. ...`` after the question,
asks for the answer (``Answer:``), generates greedily and extracts the letter at the start of the
answer (``^\\s*\\(?([A-Z])`` — a model that answers in prose scores as wrong). It is a different
task with its own name, version and metric (``exact_match`` on the letter), so its numbers are
never mixed with the loglikelihood task's ``acc``.

The question text is the base task's ``doc_to_text`` with a trailing answer cue (``Answer:`` /
``A:``) removed; prompts that already list lettered options (MMLU: choices ``A``-``D``) are kept
as they are. Few-shot examples use the same format with their answer letter.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from gapmeter.errors import ConfigError, DataError
from gapmeter.tasks.schema import (
    FilterPipeline,
    FilterStep,
    GenerationConfig,
    MetricConfig,
    TaskConfig,
)
from gapmeter.tasks.task import Task

SUFFIX = "_gen_letters"
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
LETTER_PATTERN = r"^\s*\(?([A-Z])(?![A-Za-z])"
_ANSWER_CUE = re.compile(r"\s*(?:Answer|A)\s*:\s*$")


def letter_config(base: TaskConfig) -> TaskConfig:
    name = base.task
    if base.output_type != "multiple_choice":
        raise ConfigError(f"{name}{SUFFIX}: {name} is a {base.output_type} task, not multiple choice")
    if base.multiple_input or base.process_results:
        raise ConfigError(
            f"{name}{SUFFIX}: {name} scores choices in its own way (multiple-input contexts or a "
            "process_results hook); it has no letter-answer form"
        )
    return base.model_copy(update={
        "task": name + SUFFIX,
        "version": f"{base.version}-letters",
        "description_text": f"{name} asked for the answer's letter (generation; for chat APIs)",
        "tags": [],
        "output_type": "generate_until",
        "doc_to_choice": None,  # the target is the letter itself
        "target_delimiter": " ",
        "fewshot_delimiter": "\n\n",
        "generation_kwargs": GenerationConfig(until=["\n\n"], max_gen_toks=16),
        "metric_list": [MetricConfig(metric="exact_match")],
        "filter_list": [FilterPipeline(name="letter", filter=[
            FilterStep(function="regex", params={"regex_pattern": LETTER_PATTERN, "fallback": "[invalid]"}),
            FilterStep(function="take_first"),
        ])],
    })


class LetterChoiceTask(Task):
    """The base task's docs, few-shot examples and gold answers; letter prompts and targets."""

    def __init__(self, base: Task) -> None:
        super().__init__(letter_config(base.config), yaml_dir=base.yaml_dir, data_dir=base.data_dir)
        self.base = base

    @property
    def eval_docs(self) -> list[dict[str, Any]]:
        return self.base.eval_docs

    @property
    def fewshot_pool(self) -> list[dict[str, Any]]:
        return self.base.fewshot_pool

    def _check_gold(self, docs: Sequence[dict[str, Any]]) -> None:
        self.base._check_gold(docs)
        for doc_id, doc in enumerate(docs):
            if len(self.base.doc_to_choice(doc)) > len(LETTERS):
                raise DataError(f"task {self.name}: doc {doc_id} has more than {len(LETTERS)} choices")

    def doc_to_target(self, doc: dict[str, Any], spec: Any = None) -> str:
        gold = self.base.gold(doc, self.base.doc_to_choice(doc))
        index = gold[0] if isinstance(gold, list) else gold
        return LETTERS[index]

    def question(self, doc: dict[str, Any]) -> str:
        """The question with its lettered choices, ending in ``Answer:``."""
        text = str(self.base.doc_to_text(doc))
        choices = [str(c) for c in self.base.doc_to_choice(doc)]
        if [c.strip() for c in choices] == list(LETTERS[: len(choices)]):
            return text  # the prompt already lists lettered options (MMLU)
        stem = _ANSWER_CUE.sub("", text).rstrip()
        options = "\n".join(f"{LETTERS[i]}. {c.strip()}" for i, c in enumerate(choices))
        return f"{stem}\n{options}\nAnswer:"

    def context(self, doc: dict[str, Any], examples: Sequence[dict[str, Any]]) -> str:
        c = self.config
        description = ""
        if c.description:
            from gapmeter.tasks.templates import resolve_text

            description = str(resolve_text(c.description, doc, where=f"task {self.name}: description"))
        shots = "".join(f"{self.question(ex)} {self.doc_to_target(ex)}\n\n" for ex in examples)
        return description + shots + self.question(doc)

    # the chat layout (Task.chat_context) asks these for the turns' texts
    def _example_qa(self, ex: dict[str, Any]) -> tuple[str, str | None]:
        return self.question(ex), self.doc_to_target(ex)

    def _doc_question(self, doc: dict[str, Any]) -> str:
        return self.question(doc)


def letter_task_name(name: str) -> str | None:
    """The base task's name when ``name`` asks for the letters variant."""
    return name[: -len(SUFFIX)] if name.endswith(SUFFIX) and len(name) > len(SUFFIX) else None
