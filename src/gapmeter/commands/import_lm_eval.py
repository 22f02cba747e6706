"""``gapmeter import DIR...``: lm-evaluation-harness output directories into the store as runs.

Each ``results_<date_id>.json`` under a DIR is one run; its samples are the
``samples_<task>_<date_id>.jsonl`` (or ``.parquet``, as the leaderboards' "details" datasets
publish them) beside it. Every doc is keyed by gapmeter's doc hash, recomputed from the doc, so
``compare`` pairs an imported run's items with a gapmeter run's. A task gapmeter knows gets
gapmeter's config when lm-eval's agrees on the prompt (so ``compare`` accepts it), else lm-eval's
own (and ``compare`` names the difference). Everything is read and checked before anything is
stored; all runs go in, or none (one error line naming the file and line).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gapmeter.errors import ConfigError, DataError
from gapmeter.outcomes import MetricResult
from gapmeter.requests import doc_hash
from gapmeter.store import lm_eval_layout as layout
from gapmeter.store.db import open_store, resolve_db_url
from gapmeter.store.models import utcnow
from gapmeter.store.runs import IMPORTED_KEY, RESULTS_DOCUMENT_KEY, DocRow, save_imported_runs
from gapmeter.store.task_configs import RESOLVED_TASKS_KEY, from_results_json
from gapmeter.tasks.registry import TaskRegistry

#: task-config fields that decide the prompt and the score: lm-eval's must equal gapmeter's
PROMPT_FIELDS = ("doc_to_text", "doc_to_target", "doc_to_choice", "target_delimiter", "fewshot_delimiter",
                 "output_type")


@dataclass
class ImportedRun:
    id: str
    source: Path
    model: str
    tasks: list[str]
    docs: int
    aggregates_only: list[str]
    stored: bool = True


def _load_json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read ({err})") from None
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: malformed JSON ({err})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("results"), dict) or not isinstance(doc.get("configs"), dict):
        raise DataError(f"{path}: not an lm-eval results file (no results/configs)")
    return doc


def _check_line(line: Any, where: str) -> dict[str, Any]:
    if not isinstance(line, dict):
        raise DataError(f"{where}: not a JSON object")
    for key in ("doc_id", "doc", "target", "arguments", "resps", "filtered_resps", "filter", "metrics",
                "prompt_hash", "target_hash"):
        if key not in line:
            raise DataError(f"{where}: field {key}: missing")
    if not isinstance(line["metrics"], list):
        raise DataError(f"{where}: field metrics: not a list of metric names")
    for m in line["metrics"]:
        if m not in line:
            raise DataError(f"{where}: field {m}: missing (listed in metrics)")
    return line


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    out = []
    with path.open(encoding="utf-8") as fh:
        for i, text in enumerate(fh, 1):
            if not text.strip():
                continue
            try:
                line = json.loads(text)
            except json.JSONDecodeError as err:
                raise DataError(f"{path}:{i}: malformed or truncated JSON line ({err.msg})") from None
            out.append(_check_line(line, f"{path}:{i}"))
    return out


def _drop_nulls(x: Any) -> Any:
    """Parquet gives every row the union of all rows' struct fields (absent ones null)."""
    if isinstance(x, dict):
        return {k: _drop_nulls(v) for k, v in x.items() if v is not None}
    if isinstance(x, list):
        return [_drop_nulls(v) for v in x]
    return x


def _read_parquet(path: Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    try:
        rows = pq.read_table(path).to_pylist()
    except Exception as err:  # noqa: BLE001 - pyarrow raises many types for a bad file
        raise DataError(f"{path}: not a readable parquet file ({type(err).__name__}: {err})") from None
    out = []
    for i, row in enumerate(rows, 1):
        row = {**row, "doc": _drop_nulls(row.get("doc")), "arguments": _drop_nulls(row.get("arguments"))}
        out.append(_check_line(row, f"{path}: row {i}"))
    return out


def _samples_files(folder: Path, date: str) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        stem_name = path.name.removesuffix(".parquet") + ".jsonl" if path.suffix == ".parquet" else path.name
        parsed = layout.parse_samples_name(stem_name)
        if parsed and parsed[1] == date:
            found[parsed[0]] = path
    return found


def _num(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    return float(x) if math.isfinite(x) else None


def _metrics(doc: dict[str, Any], leaves: list[str]) -> list[MetricResult]:
    out = []
    n_samples = doc.get("n-samples") or {}
    hib = doc.get("higher_is_better") or {}
    groups = set(doc.get("groups") or {})
    for task, entry in doc["results"].items():
        if task not in leaves and task not in groups:
            continue
        n = int((n_samples.get(task) or {}).get("effective") or entry.get("sample_len") or 0)
        for key, value in entry.items():
            metric, sep, filter_name = key.partition(",")
            if not sep or metric.endswith(("_stderr", "_ci95", "_clustered_stderr")) or _num(value) is None:
                continue
            ci = entry.get(f"{metric}_ci95,{filter_name}")
            out.append(MetricResult(
                task=task, metric=metric, filter=filter_name, value=float(value),
                stderr=_num(entry.get(f"{metric}_stderr,{filter_name}")), n=n,
                clustered_stderr=_num(entry.get(f"{metric}_clustered_stderr,{filter_name}")),
                is_group=task in groups, higher_is_better=bool((hib.get(task) or {}).get(metric, True)),
                bootstrap_ci=(float(ci[0]), float(ci[1])) if isinstance(ci, list) and len(ci) == 2
                and all(_num(c) is not None for c in ci) else None,
            ))
    return out


def _resolved(doc: dict[str, Any], registry: TaskRegistry, path: Path) -> dict[str, dict[str, Any]]:
    resolved = from_results_json(doc)
    for name, info in resolved.items():
        if info["kind"] != "task":
            continue
        entry = registry.tasks.get(name)
        if entry is None:
            raise DataError(f"{path}: task {name!r} is unknown to gapmeter (`gapmeter tasks` lists them; "
                            "--include_path adds a YAML for it)")
        ours = entry.config.model_dump(mode="json", exclude_none=True)
        theirs = info["config"]
        if all(theirs.get(k) == ours.get(k) for k in PROMPT_FIELDS if k in theirs and k in ours):
            info["config"] = ours
    return resolved


def _model_args(value: Any) -> str:
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items())
    return str(value or "")


def _read_run(results_path: Path, registry: TaskRegistry, aggregates_only: bool) -> tuple[dict[str, Any], list[DocRow], list[MetricResult], ImportedRun]:
    doc = _load_json(results_path)
    date = layout.parse_results_name(results_path.name) or ""
    files = _samples_files(results_path.parent, date)
    resolved = _resolved(doc, registry, results_path)
    leaves = [n for n, i in resolved.items() if i["kind"] == "task"]
    missing = [t for t in leaves if t not in files]
    if missing and not aggregates_only:
        want = results_path.parent / layout.samples_file_name(missing[0], date)
        raise DataError(f"{results_path}: no samples for task {missing[0]} ({want} not found; lm-eval writes it "
                        "with --log_samples); pass --aggregates_only to import the scores without per-doc items")
    records: list[DocRow] = []
    for task in leaves:
        if task not in files:
            continue
        path = files[task]
        lines = _read_parquet(path) if path.suffix == ".parquet" else _read_jsonl(path)
        if not lines:
            raise DataError(f"{path}: no samples in the file")
        output_type = (doc["configs"].get(task) or {}).get("output_type")
        records += [(task, int(r["doc_id"]), r["doc_hash"], r)
                    for r in layout.records_from_lines(lines, doc_hash, output_type)]
    extra = doc.get(layout.EXTRA_KEY) if isinstance(doc.get(layout.EXTRA_KEY), dict) else {}
    with_samples = sorted(set(leaves) - set(missing))
    run_id = extra.get("run_id") or hashlib.sha256(
        ("lm-eval-import\0" + json.dumps(doc, sort_keys=True, default=str) + json.dumps(with_samples)).encode()
    ).hexdigest()[:16]
    config = doc.get("config") or {}
    model = str(doc.get("model_source") or config.get("model") or "lm-eval")
    row = {
        "id": run_id,
        "status": "complete",
        "model": model[:64],
        "model_args": _model_args(config.get("model_args")),
        "model_fingerprint": "lm-eval:" + hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:40],
        "tasks": leaves,
        "spec": {
            "model": model, "model_args": _model_args(config.get("model_args")), "tasks": leaves,
            "limit": config.get("limit"), "fewshot_seed": config.get("fewshot_seed"),
            "bootstrap_iters": config.get("bootstrap_iters"),
            IMPORTED_KEY: {"source": "lm-eval", "from": str(results_path), "aggregates_only": missing},
            RESOLVED_TASKS_KEY: resolved,
            RESULTS_DOCUMENT_KEY: doc,
        },
        "model_info": config.get("model_info") or {k: v for k, v in config.items() if k.startswith("model")},
        "output_path": None,
        "finished_at": utcnow(),
        "wall_seconds": _num(_float(doc.get("total_evaluation_time_seconds"))),
    }
    summary = ImportedRun(run_id, results_path, model, leaves, len(records), missing)
    return row, records, _metrics(doc, leaves), _efficiency(doc, leaves, records, row["wall_seconds"]), summary


def _efficiency(doc: dict[str, Any], leaves: list[str], records: list[DocRow], wall: float | None) -> list[dict[str, Any]]:
    """What lm-eval's files say about cost and speed: items, requests and the run's wall time;
    no per-request timings, tokens or cost (``pareto`` shows such a run without them)."""
    n_samples = doc.get("n-samples") or {}
    rows = []
    for scope, task in [("run", ""), *(("task", t) for t in leaves)]:
        mine = [r for t, _, _, r in records if not task or t == task]
        items = len(mine) if mine else sum(int((n_samples.get(t) or {}).get("effective") or 0)
                                           for t in (leaves if not task else [task]))
        rows.append({"scope": scope, "task": task, "n_items": items,
                     "n_requests": sum(len(r.get("arguments") or {}) for r in mine), "n_timed_requests": 0,
                     "wall_seconds": wall if scope == "run" else None,
                     "summary": {"source": "lm-eval", "note": "imported: no per-request timings, tokens or cost"}})
    return rows


def _float(x: Any) -> float | None:
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def _results_files(directory: Path) -> list[Path]:
    if not directory.exists():
        raise DataError(f"{directory}: no such directory")
    if directory.is_file():
        return [directory]
    found = sorted(p for p in directory.rglob("results_*.json") if layout.parse_results_name(p.name))
    if not found:
        raise DataError(f"{directory}: no lm-eval results_<date>.json file in it (lm-eval's --output_path)")
    return found


def import_lm_eval(dirs: list[Path], db: str | None, *, aggregates_only: bool = False,
                   include_path: list[Path] | None = None) -> list[ImportedRun]:
    """Read and check every run under ``dirs``, then store them all in one transaction (nothing
    is stored when any file is bad)."""
    if not dirs:
        raise ConfigError("gapmeter import: give at least one lm-eval output directory")
    registry = TaskRegistry.load(include_path)
    runs = [_read_run(path, registry, aggregates_only) for d in dirs for path in _results_files(d)]
    sessions = open_store(resolve_db_url(db, None))  # created only once every file has been read
    stored = save_imported_runs(sessions, [run[:4] for run in runs])
    for (*_, summary), ok in zip(runs, stored, strict=True):
        summary.stored = ok
    return [summary for *_, summary in runs]


def print_imported(runs: list[ImportedRun], console: Any) -> None:
    for r in runs:
        what = "imported" if r.stored else "already stored as a gapmeter run, left as it is"
        docs = f"{r.docs} docs" + (f"; aggregates only for {', '.join(r.aggregates_only)} (no paired tests)"
                                   if r.aggregates_only else "")
        console.print(f"{r.id}  {what}: {r.model} {', '.join(r.tasks)} ({docs}) from {r.source}", highlight=False)
