"""Judgements kept with the runs they judged: per-item verdicts, prompts and raw replies and the
metric rows in the store (``store/runs.add_metric``); for single grading also the metric and the
judge's summary in the run's results.json (lm-eval's keys, gapmeter's extras under ``gapmeter``)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from gapmeter.compare.runs import StoredRun
from gapmeter.judge.pairwise import PairwiseResult
from gapmeter.judge.single import SingleResult, aggregates
from gapmeter.store.lm_eval_layout import parse_results_name
from gapmeter.store.models import Run
from gapmeter.store.results_json import atomic_write, output_dir
from gapmeter.store.runs import RESULTS_DOCUMENT_KEY, add_metric


def save_single(run: StoredRun, result: SingleResult) -> Path | None:
    """Store the judgement; update results.json when the run's output directory has one."""
    per_doc: dict[tuple[str, int], tuple[float | None, dict[str, Any]]] = {
        (item.task, item.doc_id): (asked.verdict, {**asked.to_json(), "judge": result.judge.get("name")})
        for item, asked in zip(result.items, result.asked, strict=True)
    }
    add_metric(run.sessions, run.id, result.metric, per_doc, result.metrics, detail_key="judge")
    with run.sessions() as s:
        row = s.get(Run, run.id)
        assert row is not None
        output = row.output_path
        stored = (row.spec or {}).get(RESULTS_DOCUMENT_KEY)
        if stored:  # what `gapmeter export` writes back (a new object: SQLAlchemy compares values)
            row.spec = {**row.spec, RESULTS_DOCUMENT_KEY: _with_judgement(copy.deepcopy(stored), result)}
            s.commit()
    path = Path(output) / "results.json" if output else None
    if path is None or not path.is_file():
        return None
    doc = json.loads(path.read_text(encoding="utf-8"))
    # The same document is also lm-eval's results_<date>.json beside the samples files: update
    # this run's copies, so lm-eval's tools see the judge's metric too.
    folder = output_dir(path.parent, doc)
    copies = [path, *sorted(p for p in folder.glob("results_*.json") if parse_results_name(p.name))]
    for written in copies:
        found = json.loads(written.read_text(encoding="utf-8"))
        if (found.get("gapmeter") or {}).get("run_id") != run.id:
            continue  # another run's file in the same folder
        updated = _with_judgement(found, result)
        atomic_write(written, json.dumps(updated, indent=2, ensure_ascii=False, default=str))
    return path


def _with_judgement(doc: dict[str, Any], result: SingleResult) -> dict[str, Any]:
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
    return doc


def pairwise_metric(other: StoredRun) -> str:
    return f"pairwise_vs_{other.id[:8]}"


def save_pairwise(run_a: StoredRun, run_b: StoredRun, result: PairwiseResult, judge_name: str) -> None:
    """Each run gets ``pairwise_vs_<other run>``: per item 1 (won), 0.5 (tie or inconsistent), 0
    (lost), nothing when a verdict was unparseable; per item both prompts and all raw replies."""
    for run, other, mine in ((run_a, run_b, "a"), (run_b, run_a, "b")):
        metric = pairwise_metric(other)
        per_doc: dict[tuple[str, int], tuple[float | None, dict[str, Any]]] = {}
        values: dict[str, list[float]] = {}
        for p in result.pairs:
            item = p.a if mine == "a" else p.b
            value = None if p.outcome is None else 0.5 if p.outcome == "tie" else float(p.outcome == mine)
            per_doc[(item.task, item.doc_id)] = (value, {
                "prompt": p.ab.prompt, "swapped_prompt": p.ba.prompt, "raw": p.ab.replies + p.ba.replies,
                "verdict": value, "parsed": value is not None, "consistent": p.consistent, "judge": judge_name,
                "other_run": other.id})
            if value is not None:
                values.setdefault(item.task, []).append(value)
        add_metric(run.sessions, run.id, metric, per_doc, aggregates(run, metric, values), detail_key="judge")
