"""Saving a run: its row, its per-doc records and its metric rows. The one path every writer
takes — the engine (``evaluate``) and board submissions — so a run reads the same whoever wrote it.

A record is ``(task, doc_id, doc_hash, record)`` with ``record`` as in ``samples_<task>.jsonl``;
a metric row is a ``MetricResult`` with non-finite numbers stored as NULL.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from gapmeter.outcomes import MetricResult, RunOutcome
from gapmeter.requests import doc_hash
from gapmeter.spec import RunSpec
from gapmeter.store import results_json
from gapmeter.store.board_tables import BoardMeta
from gapmeter.store.models import DocRecord, EfficiencyValue, MetricValue, Run, utcnow
from gapmeter.store.task_configs import RESOLVED_TASKS_KEY, resolved_task_configs

#: the run's results document (lm-eval's layout), in the run's spec JSON
RESULTS_DOCUMENT_KEY = "results_document"
#: in an imported run's spec: where it came from and which tasks have no per-doc records
IMPORTED_KEY = "imported"
DocRow = tuple[str, int, str, dict[str, Any]]  # task, doc_id, doc_hash, record


def finite(x: float | None) -> float | None:
    """``x`` as a float, or None when it is missing, NaN or infinite (stored as NULL)."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def metric_row(run_id: str, m: MetricResult) -> dict[str, Any]:
    ci = m.ci95
    return {
        "run_id": run_id, "task": m.task, "is_group": int(m.is_group), "metric": m.metric, "filter": m.filter,
        "value": finite(m.value), "stderr": finite(m.stderr), "clustered_stderr": finite(m.clustered_stderr),
        "ci_low": finite(ci[0]) if ci else None, "ci_high": finite(ci[1]) if ci else None, "n": m.n,
    }


def save_results(session: Session, run_id: str, records: Iterable[DocRow], metrics: Iterable[MetricResult],
                 *, replace: bool = True) -> None:
    """Write a run's records and metric rows in the caller's transaction (bulk INSERTs); with
    ``replace``, the run's earlier ones are deleted first (a resumed or repeated run)."""
    if replace:
        session.execute(delete(DocRecord).where(DocRecord.run_id == run_id))
        session.execute(delete(MetricValue).where(MetricValue.run_id == run_id))
    rows = [{"run_id": run_id, "task": task, "doc_id": doc_id, "doc_hash": dh, "record": rec}
            for task, doc_id, dh, rec in records]
    if rows:
        session.execute(insert(DocRecord), rows)
    metric_rows = [metric_row(run_id, m) for m in metrics]
    if metric_rows:
        session.execute(insert(MetricValue), metric_rows)


def outcome_records(outcome: RunOutcome) -> Iterator[DocRow]:
    for name, task in outcome.tasks.items():
        for plan, score in zip(task.plans, task.scores, strict=True):
            yield name, plan.doc_id, doc_hash(plan.doc), results_json.sample_record(plan, score)


def start_run(sessions: sessionmaker[Session], run_id: str, spec: RunSpec, fingerprint: str, info: dict[str, Any]) -> None:
    """The run's row, ``running`` (a resumed run's row is marked running again)."""
    with sessions() as s:
        run = s.get(Run, run_id)
        if run is None:
            s.add(
                Run(
                    id=run_id,
                    status="running",
                    model=spec.model,
                    model_args=spec.model_args,
                    model_fingerprint=fingerprint,
                    tasks=list(spec.tasks),
                    spec=spec.to_json(),
                    model_info=info,
                    output_path=str(spec.output_path) if spec.output_path else None,
                )
            )
        else:
            run.status = "running"
        s.commit()


def finish_run(sessions: sessionmaker[Session], outcome: RunOutcome, document: dict[str, Any] | None = None) -> None:
    """Replace the run's records and metrics in one transaction, then mark it complete. The
    results document (results.json) is kept with the run: ``gapmeter export`` writes it back."""
    with sessions() as s:
        save_results(s, outcome.run_id, outcome_records(outcome),
                     [r for t in outcome.tasks.values() for r in t.metrics] + outcome.groups)
        run = s.get(Run, outcome.run_id)
        assert run is not None
        run.status = "complete"
        # The tasks as they were run (prompts, shots, versions): what `compare` checks.
        run.spec = {**run.spec, RESOLVED_TASKS_KEY: resolved_task_configs(outcome)}
        if document is not None:
            run.spec[RESULTS_DOCUMENT_KEY] = document
        run.finished_at = utcnow()
        run.wall_seconds = outcome.wall_seconds
        s.commit()


def add_metric(sessions: sessionmaker[Session], run_id: str, metric: str,
               per_doc: dict[tuple[str, int], tuple[float | None, dict[str, Any]]],
               results: Iterable[MetricResult], *, detail_key: str) -> None:
    """A metric computed after the run (a judge's verdicts) added to a complete run, in one
    transaction: each doc's value under ``metrics["<metric>,none"]`` (None: not scored, e.g. an
    unreadable verdict) and its details under ``record[detail_key][metric]``; the metric rows
    (replacing an earlier ``metric``); and the metric in the run's resolved task configs (a
    task's ``added_metrics``, a group's ``aggregates``), so
    ``compare``, ``profile`` and the board read it like the run's own metrics."""
    key = f"{metric},none"
    results = list(results)
    with sessions() as s:
        rows = s.execute(select(DocRecord.id, DocRecord.task, DocRecord.doc_id, DocRecord.record)
                         .where(DocRecord.run_id == run_id)).all()
        for row_id, task, doc_id, record in rows:
            if (task, doc_id) not in per_doc:
                continue
            value, detail = per_doc[(task, doc_id)]
            metrics = {k: v for k, v in (record.get("metrics") or {}).items() if k != key}
            if value is not None:
                metrics[key] = value
            details = {**(record.get(detail_key) or {}), metric: detail}
            s.execute(update(DocRecord).where(DocRecord.id == row_id)
                      .values(record={**record, "metrics": metrics, detail_key: details}))
        s.execute(delete(MetricValue).where(MetricValue.run_id == run_id, MetricValue.metric == metric))
        if results:
            s.execute(insert(MetricValue), [metric_row(run_id, m) for m in results])
        run = s.get(Run, run_id)
        assert run is not None
        resolved = {name: dict(d) for name, d in (run.spec or {}).get(RESOLVED_TASKS_KEY, {}).items()}
        scored = {m.task for m in results}
        for name, d in resolved.items():
            if name not in scored:
                continue
            if d.get("kind") == "task":
                cfg = dict(d.get("config") or {})
                kept = [m for m in cfg.get("added_metrics") or [] if m.get("metric") != metric]
                cfg["added_metrics"] = [*kept, {"metric": metric, "aggregation": "mean", "higher_is_better": True}]
                d["config"] = cfg
            else:
                kept = [a for a in d.get("aggregates") or [] if a.get("metric") != metric]
                d["aggregates"] = [*kept, {"metric": metric, "weight_by_size": True, "filter_list": ["none"]}]
        if resolved:
            run.spec = {**run.spec, RESOLVED_TASKS_KEY: resolved}
        _bump_metrics_revision(s, run_id)
        s.commit()


#: ``BoardMeta`` key of a run's metrics revision, bumped when a metric is added after the run: a
#: running board (which caches a run's metrics until its finish time changes) reads it again.
METRICS_REVISION_PREFIX = "metrics:"


def _bump_metrics_revision(s: Session, run_id: str) -> None:
    for key in (f"{METRICS_REVISION_PREFIX}{run_id}", "generation"):  # generation: pages rebuild
        done = s.execute(update(BoardMeta).where(BoardMeta.key == key).values(value=BoardMeta.value + 1))
        if done.rowcount == 0:  # type: ignore[attr-defined]
            s.add(BoardMeta(key=key, value=1))
            s.flush()


#: run row, records, metrics, efficiency rows (``EfficiencyValue`` columns without ``run_id``)
ImportedRow = tuple[dict[str, Any], list[DocRow], list[MetricResult], list[dict[str, Any]]]


def save_imported_runs(sessions: sessionmaker[Session], runs: list[ImportedRow]) -> list[bool]:
    """Store runs read from another tool's files (``gapmeter import``): rows, records and metrics
    of all of them in one transaction, each replacing an earlier import of the same run. A run this
    store made itself is left as it is (its entry in the answer is False)."""
    stored = []
    with sessions() as s, s.begin():
        for row, records, metrics, efficiency in runs:
            run = s.get(Run, row["id"])
            if run is not None and not (run.spec or {}).get(IMPORTED_KEY):
                stored.append(False)
                continue
            if run is None:
                s.add(Run(**row))
            else:
                for key, value in row.items():
                    setattr(run, key, value)
            s.flush()
            save_results(s, row["id"], records, metrics)
            s.execute(delete(EfficiencyValue).where(EfficiencyValue.run_id == row["id"]))
            if efficiency:
                s.execute(insert(EfficiencyValue), [{"run_id": row["id"], **e} for e in efficiency])
            stored.append(True)
    return stored
