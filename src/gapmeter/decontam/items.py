"""Benchmark items as text: each doc of a task's evaluated split, fully verbalised.

An item's text is the zero-shot prompt (``doc_to_text``, without the task description that
every item shares) followed by the gold answer, as Llama 2's analysis matched "fully
verbalised" samples. ``prompt`` mode drops the answer. The ``doc_hash`` is the one the run
stores for the same doc, so subset files can be checked against a run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from gapmeter.requests import doc_hash
from gapmeter.tasks.task import Task

ItemText = Literal["prompt_answer", "prompt"]


@dataclass(frozen=True)
class BenchmarkItem:
    task: str
    doc_id: int
    doc_hash: str
    text: str


def task_items(task: Task, *, mode: ItemText = "prompt_answer", limit: int | None = None) -> list[BenchmarkItem]:
    docs = task.eval_docs if limit is None else task.eval_docs[:limit]
    items = []
    for doc_id, doc in enumerate(docs):
        items.append(BenchmarkItem(task.name, doc_id, doc_hash(doc), verbalise(task, doc, mode)))
    return items


def verbalise(task: Task, doc: dict, mode: ItemText = "prompt_answer") -> str:
    c = task.config
    choices: Sequence[str] | None = task.doc_to_choice(doc) if c.doc_to_choice is not None else None
    if c.multiple_input:
        # Winogrande-style: the gold choice is the context; the shared target continues it.
        assert choices is not None
        gold = task.gold(doc, choices)
        g = gold[0] if isinstance(gold, list) else gold
        prompt = choices[g] if 0 <= g < len(choices) else ""
        answer = str(task.doc_to_target(doc))
        return prompt if mode == "prompt" else f"{prompt}{c.target_delimiter}{answer}"
    if c.output_type == "loglikelihood_rolling":
        return str(task.doc_to_target(doc))
    prompt = str(task.doc_to_text(doc))
    if mode == "prompt":
        return prompt
    if c.output_type == "multiple_choice":
        assert choices is not None
        gold = task.gold(doc, choices)
        golds = gold if isinstance(gold, list) else [gold]
        answer = " ".join(choices[g] for g in golds[:1] if 0 <= g < len(choices))
    else:
        answer = str(task.doc_to_target(doc))
    return f"{prompt}{c.target_delimiter}{answer}" if answer else prompt
