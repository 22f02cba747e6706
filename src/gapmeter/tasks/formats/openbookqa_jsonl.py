"""``openbookqa_jsonl``: OpenBookQA JSONL → ``allenai/openbookqa`` rows."""

from __future__ import annotations

from collections.abc import Mapping

from gapmeter.tasks import sources
from gapmeter.tasks.formats.ai2_mc import check_key, mc_question
from gapmeter.tasks.formats.registry import FileSpec, Rows, Splits, converter
from gapmeter.tasks.formats.rows import row_at, single_path, typed_field


@converter("openbookqa_jsonl")
def openbookqa_jsonl(files: Mapping[str, FileSpec]) -> Splits:
    """OpenBookQA ``Data/Main`` JSONL → ``allenai/openbookqa`` (``main``) rows
    ``{"id", "question_stem", "choices": {"text", "label"}, "answerKey"}``.

    Hub splits: train / validation / test from ``train`` / ``dev`` / ``test``.jsonl.
    """
    out: Splits = {}
    for split, spec in files.items():
        path = single_path("openbookqa_jsonl", split, spec)
        rows: Rows = []
        for line, row in sources.read_jsonl_numbered(path):
            where = row_at(path, line)
            ident = typed_field(row, "id", where, str)
            stem, choices, key = mc_question(row, where)
            check_key(key, choices["label"], where)
            rows.append({"id": ident, "question_stem": stem, "choices": choices, "answerKey": key})
        out[split] = rows
    return out
