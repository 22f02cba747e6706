"""``openbookqa_jsonl``: OpenBookQA JSONL → ``allenai/openbookqa`` rows."""

from __future__ import annotations

from collections.abc import Mapping

from gapmeter.tasks.formats.ai2_mc import ai2_splits
from gapmeter.tasks.formats.registry import FileSpec, Splits, converter


@converter("openbookqa_jsonl")
def openbookqa_jsonl(files: Mapping[str, FileSpec]) -> Splits:
    """OpenBookQA ``Data/Main`` JSONL → ``allenai/openbookqa`` (``main``) rows
    ``{"id", "question_stem", "choices": {"text", "label"}, "answerKey"}``.

    Hub splits: train / validation / test from ``train`` / ``dev`` / ``test``.jsonl.
    """
    return ai2_splits("openbookqa_jsonl", files, stem_key="question_stem")
