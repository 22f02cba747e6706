"""``arc_jsonl``: ARC-V1 JSONL → ``allenai/ai2_arc`` rows."""

from __future__ import annotations

from collections.abc import Mapping

from gapmeter.tasks import sources
from gapmeter.tasks.formats.ai2_mc import check_key, mc_question
from gapmeter.tasks.formats.registry import FileSpec, Rows, Splits, converter
from gapmeter.tasks.formats.rows import row_at, single_path, typed_field


@converter("arc_jsonl")
def arc_jsonl(files: Mapping[str, FileSpec]) -> Splits:
    """ARC-V1 JSONL (``{id, question: {stem, choices: [{text, label}]}, answerKey}``) →
    ``allenai/ai2_arc`` rows ``{"id", "question", "choices": {"text", "label"}, "answerKey"}``.

    The hub splits train / validation / test come from the ``-Train`` / ``-Dev`` / ``-Test``
    files, rows in file order. Labels are kept as written (some questions use ``1``-``4``).
    """
    out: Splits = {}
    for split, spec in files.items():
        path = single_path("arc_jsonl", split, spec)
        rows: Rows = []
        for line, row in sources.read_jsonl_numbered(path):
            where = row_at(path, line)
            ident = typed_field(row, "id", where, str)
            stem, choices, key = mc_question(row, where)
            check_key(key, choices["label"], where)
            rows.append({"id": ident, "question": stem, "choices": choices, "answerKey": key})
        out[split] = rows
    return out
