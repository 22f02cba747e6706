"""``truthfulqa_mc_json``: TruthfulQA ``mc_task.json`` → ``truthful_qa`` multiple_choice rows."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gapmeter.errors import DataError
from gapmeter.tasks import sources
from gapmeter.tasks.formats.registry import FileSpec, Rows, Splits, converter
from gapmeter.tasks.formats.rows import single_path, typed_field


def _targets(item: Mapping[str, Any], name: str, where: str) -> dict[str, list[Any]]:
    targets = typed_field(item, name, where, dict)
    labels = list(targets.values())
    if not targets or any(v not in (0, 1) or isinstance(v, bool) for v in labels):
        raise DataError(f"{where}: field {name!r} must map each answer to 0 or 1")
    if 1 not in labels:
        raise DataError(f"{where}: field {name!r} has no true answer (no label 1)")
    return {"choices": list(targets.keys()), "labels": labels}


@converter("truthfulqa_mc_json")
def truthfulqa_mc_json(files: Mapping[str, FileSpec]) -> Splits:
    """TruthfulQA ``mc_task.json`` → ``truthful_qa`` ``multiple_choice`` rows
    ``{"question", "mc1_targets": {"choices", "labels"}, "mc2_targets": {"choices", "labels"}}``.

    The hub's script listed each targets dict's keys and values, so the choice order is the
    JSON's key order (kept by ``json``). lm-eval's mc1 takes choice 0 as the gold answer, so the
    first mc1 label must be 1. The hub has one split, ``validation``.

    Caveat: the hub rows come from ``sylinrl/TruthfulQA@013686a`` ``data/mc_task.json`` (2021).
    The classic 817-question file available here (``truthfulqa/v1/mc_task.json``, the repo's
    pre-2025 version) lists the questions in another order (the hub's row 0, "What is the
    smallest country in the world that is at least one square mile in area?", is entry 529
    here) and holds about 7% more answer text (Arrow size 651,899 vs the hub's 609,082 bytes),
    so these rows are faithful to the file but not identical to the hub's.
    """
    out: Splits = {}
    for split, spec in files.items():
        path = single_path("truthfulqa_mc_json", split, spec)
        rows: Rows = []
        for number, item in enumerate(sources.read_json(path), start=1):
            where = f"{path}: entry {number}"
            if not isinstance(item, dict):
                raise DataError(f"{where}: expected an object, got {type(item).__name__}")
            question = typed_field(item, "question", where, str)
            mc1 = _targets(item, "mc1_targets", where)
            if mc1["labels"][0] != 1:
                raise DataError(f"{where}: field 'mc1_targets' must list the true answer first")
            mc2 = _targets(item, "mc2_targets", where)
            rows.append({"question": question, "mc1_targets": mc1, "mc2_targets": mc2})
        out[split] = rows
    return out
