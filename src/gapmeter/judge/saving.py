"""A single-answer judgement kept with the run it judged: per-item verdicts, prompts and raw
replies and the metric rows in the store (``store/runs.add_metric``), and the metric plus the
judge's summary in the run's results.json (lm-eval's keys, gapmeter's extras under ``gapmeter``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import select

from gapmeter.compare.runs import StoredRun
from gapmeter.judge.single import SingleResult
from gapmeter.store.models import Run
from gapmeter.store.results_json import atomic_write
from gapmeter.store.runs import add_metric


def save_single(run: StoredRun, result: SingleResult) -> Path | None:
    """Store the judgement; update results.json when the run's output directory has one."""
    per_doc: dict[tuple[str, int], tuple[float | None, dict[str, Any]]] = {
        (item.task, item.doc_id): (asked.verdict, {**asked.to_json(), "judge": result.judge.get("name")})
        for item, asked in zip(result.items, result.asked, strict=True)
    }
    add_metric(run.sessions, run.id, result.metric, per_doc, result.metrics, detail_key="judge")
    with run.sessions() as s:
        output = s.scalar(select(Run.output_path).where(Run.id == run.id))
    path = Path(output) / "results.json" if output else None
    if path is None or not path.is_file():
        return None
    doc = json.loads(path.read_text(encoding="utf-8"))
    key = f"{result.metric},none"
    for m in result.metrics:
        entry = doc.setdefault("groups" if m.is_group else "results", {}).setdefault(m.task, {"alias": m.task})
        values: dict[str, Any] = {key: m.value, f"{result.metric}_stderr,none": m.stderr if m.stderr is not None else "N/A"}
        if m.ci95:
            values[f"{result.metric}_ci95,none"] = list(m.ci95)
        entry.update(values)
        if m.is_group:
            doc.setdefault("results", {}).setdefault(m.task, {"alias": m.task}).update(values)
        else:
            doc.setdefault("higher_is_better", {}).setdefault(m.task, {})[result.metric] = True
    doc.setdefault("gapmeter", {}).setdefault("judge", {})[result.metric] = result.summary()
    atomic_write(path, json.dumps(doc, indent=2, ensure_ascii=False, default=str))
    return path
