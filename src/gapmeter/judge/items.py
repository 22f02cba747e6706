"""The items of a stored run a judge reads: question, reference, the model's answer, human label."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from gapmeter.compare.runs import StoredRun
from gapmeter.errors import ConfigError
from gapmeter.store.models import DocRecord


@dataclass(frozen=True)
class Item:
    task: str
    doc_id: int
    doc_hash: str
    question: str
    reference: str
    answer: str
    human_label: Any = None
    graded_answer: str | None = None  # the answer ``human_label`` grades (a calibration item)

    @property
    def key(self) -> tuple[str, int, str]:
        return (self.task, self.doc_id, self.doc_hash)


def _answer(record: dict[str, Any]) -> str:
    """The answer the run's metrics saw: the first filter's output, else the raw generation."""
    filtered = record.get("filtered_resps")
    value = next(iter(filtered.values()), None) if isinstance(filtered, dict) and filtered else filtered
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None:
        resps = record.get("resps") or [[""]]
        value = resps[0][0] if resps and resps[0] else ""
    return str(value)


def _question(record: dict[str, Any]) -> str:
    doc = record.get("doc") or {}
    if isinstance(doc.get("input"), str):  # tables read by `task init` (tasks/formats/user_table.py)
        return doc["input"]
    args = (record.get("arguments") or {}).get("gen_args_0") or {}
    return str(args.get("arg_0", ""))  # the prompt the model saw


def judged_tasks(run: StoredRun, only: list[str] | None) -> list[str]:
    """The run's generation tasks (judging scores free-form answers), or ``only`` checked."""
    gen = [n for n, t in run.tasks.items() if t.kind == "task" and t.config.get("output_type") == "generate_until"]
    if only:
        bad = [t for t in only if t not in gen]
        if bad:
            raise ConfigError(f"run {run.id[:12]}: {bad[0]!r} is not one of its generation tasks ({', '.join(gen)})")
        return only
    if not gen:
        raise ConfigError(f"run {run.id[:12]} has no generation (generate_until) task: nothing for a judge to read")
    return gen


def run_items(run: StoredRun, tasks: list[str]) -> list[Item]:
    with run.sessions() as s:
        rows = s.execute(
            select(DocRecord.task, DocRecord.doc_id, DocRecord.doc_hash, DocRecord.record)
            .where(DocRecord.run_id == run.id, DocRecord.task.in_(tasks))
            .order_by(DocRecord.task, DocRecord.doc_id)
        ).all()
    return [
        Item(task, int(doc_id), dh, _question(rec), str(rec.get("target", "")), _answer(rec),
             (rec.get("doc") or {}).get("human_label"), (rec.get("doc") or {}).get("graded_answer"))
        for task, doc_id, dh, rec in rows
    ]
