"""``gapmeter export RUN --format lm-eval DIR``: a stored run in lm-evaluation-harness's layout.

Writes ``DIR/<model_name_sanitized>/results_<date_id>.json`` (the run's results document as it
was written or imported) and ``samples_<task>_<date_id>.jsonl`` for every task with per-doc
records: for a gapmeter run, the files ``--log_samples`` writes; for an imported run, the files
it came from (``gapmeter import`` of them gives the same run back).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from gapmeter.compare.runs import StoredRun, open_run
from gapmeter.errors import ConfigError, DataError
from gapmeter.store import lm_eval_layout as layout
from gapmeter.store.models import DocRecord
from gapmeter.store.results_json import output_dir, write_lm_eval_layout
from gapmeter.store.runs import RESULTS_DOCUMENT_KEY

FORMATS = ("lm-eval",)


def _records(run: StoredRun) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    with run.sessions() as s:
        rows = s.execute(
            select(DocRecord.task, DocRecord.record).where(DocRecord.run_id == run.id).order_by(DocRecord.id)
        ).all()
    for task, record in rows:
        out.setdefault(task, []).append(record)
    return out


def export_run(ref: str, directory: Path, *, fmt: str = "lm-eval", db: str | None = None) -> Path:
    """Write the run; returns the results file written."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt}: not a known format (known: {', '.join(FORMATS)})")
    run = open_run(ref, db)
    document = run.spec.get(RESULTS_DOCUMENT_KEY)
    if not isinstance(document, dict):
        raise DataError(f"run {run.id} was stored by a gapmeter without results documents in the store; "
                        "run it again (its cached responses make that quick) to export it")
    records = _records(run)
    document = dict(document)
    if records and not document.get("task_hashes"):
        # lm-eval records task hashes whenever it writes samples
        document["task_hashes"] = {t: layout.task_hash(layout.task_lines(recs))
                                   for t, recs in records.items()}
    return write_lm_eval_layout(output_dir(directory, document), document, records, layout.date_id())
