"""The AI2 multiple-choice record (ARC, OpenBookQA): ``{id, question: {stem, choices}, answerKey}``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gapmeter.errors import DataError
from gapmeter.tasks import sources
from gapmeter.tasks.formats.registry import FileSpec, Rows, Splits
from gapmeter.tasks.formats.rows import row_at, single_path, typed_field


def mc_question(row: Mapping[str, Any], where: str) -> tuple[str, dict[str, list[str]], str]:
    """(stem, {"text", "label"}, answerKey) of an AI2 multiple-choice record, validated."""
    question = typed_field(row, "question", where, dict)
    stem = typed_field(question, "stem", f"{where}: question", str)
    choices = typed_field(question, "choices", f"{where}: question", list)
    texts: list[str] = []
    labels: list[str] = []
    for i, choice in enumerate(choices):
        at = f"{where}: question.choices[{i}]"
        if not isinstance(choice, dict):
            raise DataError(f"{at}: expected an object with 'text' and 'label'")
        texts.append(typed_field(choice, "text", at, str))
        labels.append(typed_field(choice, "label", at, str))
    if not labels:
        raise DataError(f"{where}: field 'question.choices' is empty")
    key = typed_field(row, "answerKey", where, str)
    return stem, {"text": texts, "label": labels}, key


def check_key(key: str, labels: list[str], where: str) -> None:
    if key.strip() not in labels:
        raise DataError(
            f"{where}: field 'answerKey' is {key!r} but the choice labels are {', '.join(labels)}"
        )


def ai2_splits(fmt: str, files: Mapping[str, FileSpec], *, stem_key: str) -> Splits:
    """Every split of AI2 multiple-choice JSONL as hub rows ``{"id", stem_key, "choices",
    "answerKey"}`` in file order (the hubs differ only in the stem's field name)."""
    out: Splits = {}
    for split, spec in files.items():
        path = single_path(fmt, split, spec)
        rows: Rows = []
        for line, row in sources.read_jsonl_numbered(path):
            where = row_at(path, line)
            ident = typed_field(row, "id", where, str)
            stem, choices, key = mc_question(row, where)
            check_key(key, choices["label"], where)
            rows.append({"id": ident, stem_key: stem, "choices": choices, "answerKey": key})
        out[split] = rows
    return out
