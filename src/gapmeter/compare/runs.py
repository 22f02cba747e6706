"""Stored runs as ``compare`` and ``profile`` see them: configs, top-level tasks, per-doc values.

A run is named by its id (or a unique prefix) in a store, or by its output directory (the one
holding ``results.json``; its store is ``gapmeter.sqlite`` there, or the one results.json names).
Per-doc values are keyed by ``(doc_id, doc_hash)``, so two runs are paired only on items that
are the same document, whatever their order or ``--limit``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gapmeter.errors import ConfigError, DataError
from gapmeter.scoring.metrics import METRICS
from gapmeter.store.db import DB_FILENAME, open_store
from gapmeter.store.models import DocRecord, MetricValue, Run
from gapmeter.store.runs import IMPORTED_KEY
from gapmeter.store.task_configs import RESOLVED_TASKS_KEY, from_results_json
from gapmeter.tasks.templates import resolve_text

__all__ = ["DocKey", "MetricInfo", "StoredRun", "TaskInfo", "open_run", "store_url"]

DocKey = tuple[int, str]  # (doc_id, doc_hash)


@dataclass(frozen=True)
class MetricInfo:
    metric: str
    aggregation: str
    higher_is_better: bool


@dataclass(frozen=True)
class TaskInfo:
    """A task or group of a stored run, as it was configured when it ran."""

    name: str
    kind: Literal["task", "group"]
    top: bool
    version: Any
    num_fewshot: int | None = None
    config: dict[str, Any] = field(default_factory=dict)
    children: tuple[str, ...] = ()
    aggregates: tuple[dict[str, Any], ...] = ()

    @property
    def dimension(self) -> str | None:
        return self.config.get("dimension")

    @property
    def metrics(self) -> list[MetricInfo]:
        out = []
        # added_metrics: given after the run (`gapmeter judge`, store/runs.add_metric)
        for m in [*(self.config.get("metric_list") or [{"metric": "acc"}]), *self.config.get("added_metrics", [])]:
            spec = METRICS.get(m["metric"])
            agg = m.get("aggregation") or (spec.aggregation if spec else "mean")
            hib = m.get("higher_is_better")
            if hib is None:
                hib = spec.higher_is_better if spec else True
            out.append(MetricInfo(m["metric"], agg, bool(hib)))
        return out

    @property
    def filters(self) -> list[str]:
        pipelines = self.config.get("filter_list")
        return [p["name"] for p in pipelines] if pipelines else ["none"]


@dataclass
class StoredRun:
    id: str
    model: str
    model_args: str
    status: str
    spec: dict[str, Any]
    tasks: dict[str, TaskInfo]
    db_url: str
    sessions: sessionmaker[Session]
    label: str = ""

    @property
    def fewshot_seed(self) -> Any:
        return self.spec.get("fewshot_seed")

    @property
    def limit(self) -> Any:
        return self.spec.get("limit")

    @property
    def aggregates_only(self) -> set[str]:
        """Tasks imported without per-doc samples (``gapmeter import --aggregates_only``)."""
        return set((self.spec.get(IMPORTED_KEY) or {}).get("aggregates_only") or ())

    def top_names(self) -> list[str]:
        return [n for n, t in self.tasks.items() if t.top]

    def leaves_under(self, name: str) -> list[str]:
        info = self.tasks[name]
        if info.kind == "task":
            return [name]
        out: list[str] = []
        for child in info.children:
            for leaf in self.leaves_under(child) if child in self.tasks else []:
                if leaf not in out:
                    out.append(leaf)
        return out

    def doc_values(self, task: str, metric: str, filter_name: str) -> dict[DocKey, Any]:
        """Per-doc values of ``metric,filter`` for one leaf task (absent docs are skipped)."""
        key = f"{metric},{filter_name}"
        with self.sessions() as s:
            rows = s.execute(
                select(DocRecord.doc_id, DocRecord.doc_hash, DocRecord.record["metrics"]).where(
                    DocRecord.run_id == self.id, DocRecord.task == task
                )
            ).all()
        return {(int(i), h): m[key] for i, h, m in rows if m and key in m}

    def doc_clusters(self, task: str) -> dict[DocKey, str] | None:
        """The task's ``cluster_by`` value per doc, rendered from the stored doc."""
        spec = self.tasks[task].config.get("cluster_by")
        if not spec:
            return None
        with self.sessions() as s:
            rows = s.execute(
                select(DocRecord.doc_id, DocRecord.doc_hash, DocRecord.record["doc"]).where(
                    DocRecord.run_id == self.id, DocRecord.task == task
                )
            ).all()
        where = f"task {task}: cluster_by"
        return {(int(i), h): str(resolve_text(spec, d, where=where)) for i, h, d in rows}

    def metric_values(self) -> dict[tuple[str, str, str], MetricValue]:
        """Stored aggregates keyed by ``(task, metric, filter)``."""
        with self.sessions() as s:
            rows = s.scalars(select(MetricValue).where(MetricValue.run_id == self.id)).all()
        return {(m.task, m.metric, m.filter): m for m in rows}


def store_url(db: str | None) -> str:
    """The store to read: ``--db`` (URL or SQLite file), else ``GAPMETER_DB``, else
    ``runs/gapmeter.sqlite``; a SQLite file that does not exist is an error (never created)."""
    import os

    value = db or os.environ.get("GAPMETER_DB") or str(Path("runs") / DB_FILENAME)
    if "://" in value:
        return value
    path = Path(value).expanduser().resolve()
    if path.is_dir():
        path = path / DB_FILENAME
    if not path.is_file():
        raise ConfigError(f"no store at {path}: pass --db FILE|URL (or GAPMETER_DB), or a run's output directory")
    return f"sqlite:///{path}"


@cache
def _sessions(url: str) -> sessionmaker[Session]:
    return open_store(url)


def _label(model: str, model_args: str) -> str:
    for part in model_args.split(","):
        key, _, value = part.partition("=")
        if key.strip() in ("pretrained", "model", "model_name") and value:
            return Path(value.strip().rstrip("/")).name or value
    return model


def _from_output_dir(path: Path) -> tuple[str, str]:
    results = path / "results.json" if path.is_dir() else path
    try:
        doc = json.loads(results.read_text(encoding="utf-8"))
        run_id = doc["gapmeter"]["run_id"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DataError(f"{results}: not a gapmeter results.json ({type(err).__name__}: {err})") from None
    local = results.parent / DB_FILENAME
    if local.is_file():
        return run_id, f"sqlite:///{local.resolve()}"
    url = doc["gapmeter"].get("db") or ""
    if not url or "***" in url:
        raise ConfigError(f"{results}: its store is not beside it; pass --db")
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        raise DataError(f"{results}: its store {url} no longer exists")
    return run_id, url


def open_run(ref: str, db: str | None = None) -> StoredRun:
    """A run by id / id prefix (in ``db``) or by output directory; complete runs only."""
    path = Path(ref)
    if path.exists() and (path.is_dir() or path.name.endswith(".json")):
        run_key, url = _from_output_dir(path)
        exact = True
    else:
        run_key, url, exact = ref, store_url(db), False
    sessions = _sessions(url)
    with sessions() as s:
        if exact:
            matches = [r for r in [s.get(Run, run_key)] if r is not None]
        else:
            matches = list(s.scalars(select(Run).where(Run.id.startswith(run_key))).all())
    if not matches:
        raise ConfigError(f"no run {ref!r} in {url}; `gapmeter runs --db ...` lists the stored runs")
    if len(matches) > 1:
        ids = ", ".join(r.id for r in matches[:5])
        raise ConfigError(f"run {ref!r} is ambiguous in {url} ({ids}); give more of the id")
    run = matches[0]
    if run.status != "complete":
        raise ConfigError(f"run {run.id} is {run.status}, not complete: run its command again to finish it")
    resolved = (run.spec or {}).get(RESOLVED_TASKS_KEY)
    if resolved is None:
        resolved = _resolved_from_results(run)
    tasks = {
        name: TaskInfo(
            name=name,
            kind=d["kind"],
            top=bool(d.get("top")),
            version=d.get("version"),
            num_fewshot=d.get("num_fewshot"),
            config=d.get("config", {}),
            children=tuple(d.get("children", ())),
            aggregates=tuple(d.get("aggregates", ())),
        )
        for name, d in resolved.items()
    }
    return StoredRun(run.id, run.model, run.model_args, run.status, dict(run.spec or {}), tasks, url,
                     sessions, label=_label(run.model, run.model_args))


def _resolved_from_results(run: Run) -> dict[str, dict[str, Any]]:
    if run.output_path:
        results = Path(run.output_path) / "results.json"
        if results.is_file():
            return from_results_json(json.loads(results.read_text(encoding="utf-8")))
    raise DataError(
        f"run {run.id} has no stored task configs (made by an older gapmeter and its results.json is "
        "gone): run it again to compare it"
    )
