"""Saving a run: its row, its per-doc records and its metric rows. The one path every writer
takes — the engine (``evaluate``) and board submissions — so a run reads the same whoever wrote it.

A record is ``(task, doc_id, doc_hash, record)`` with ``record`` as in ``samples_<task>.jsonl``;
a metric row is a ``MetricResult`` with non-finite numbers stored as NULL.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy import delete, insert
from sqlalchemy.orm import Session, sessionmaker

from gapmeter.outcomes import MetricResult, RunOutcome
from gapmeter.requests import doc_hash
from gapmeter.spec import RunSpec
from gapmeter.store import results_json
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
