"""``arc_jsonl``: ARC-V1 JSONL → ``allenai/ai2_arc`` rows."""

from __future__ import annotations

from collections.abc import Mapping

from gapmeter.tasks.formats.ai2_mc import ai2_splits
from gapmeter.tasks.formats.registry import FileSpec, Splits, converter


@converter("arc_jsonl")
def arc_jsonl(files: Mapping[str, FileSpec]) -> Splits:
    """ARC-V1 JSONL (``{id, question: {stem, choices: [{text, label}]}, answerKey}``) →
    ``allenai/ai2_arc`` rows ``{"id", "question", "choices": {"text", "label"}, "answerKey"}``.

    The hub splits train / validation / test come from the ``-Train`` / ``-Dev`` / ``-Test``
    files, rows in file order. Labels are kept as written (some questions use ``1``-``4``).
    """
    return ai2_splits("arc_jsonl", files, stem_key="question")
