"""Submissions: an uploaded run is checked against the board's own tasks and re-scored here.

What is checked, in order (the first failure rejects the upload, nothing is written):

1. shape: the payload schema (``gapmeter-submission/1``), sizes, JSON types;
2. tasks: every task is a registry name the board knows, at the same version;
3. completeness: per task, one record per doc, doc ids 0..n-1, ``n-samples`` consistent;
   where the board has the task's data, the docs are the board's docs (hash) and the prompts
   are the ones the board builds (few-shot examples, template) for the declared shots and seed;
4. consistency: per-doc metrics are recomputed from the submitted *responses* with the task's
   own filters and metrics and must equal the submitted per-doc metrics; task and group
   aggregates (value and standard error) are recomputed and must equal ``results``.

The board stores its recomputed numbers, not the submitted ones.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gapmeter.board.names import canonical_sha256, normalize_model_name
from gapmeter.board.tasklib import TaskLibrary, _version
from gapmeter.engine.aggregate import MetricResult, aggregate_groups, aggregate_task
from gapmeter.errors import GapmeterError
from gapmeter.requests import doc_hash
from gapmeter.store.runs import finite
from gapmeter.tasks.scoring import score_task
from gapmeter.tasks.task import DocPlan

FORMAT = "gapmeter-submission/1"
MAX_BOOTSTRAP_ITERS = 100_000
REL_TOL = 1e-9
ABS_TOL = 1e-9


class SubmissionError(GapmeterError):
    """An upload that is refused; the message says what is wrong and where."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status

    def __reduce__(self) -> tuple[Any, ...]:  # raised in a validator process: keep the status
        return (SubmissionError, (str(self), self.status))


class SubmissionPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["gapmeter-submission/1"]
    model_name: str = Field(min_length=1, max_length=400)  # checked by normalize_model_name
    results: dict[str, Any]
    samples: dict[str, list[dict[str, Any]]]


@dataclass
class ValidatedRun:
    model_name: str
    spec: dict[str, Any]
    model_info: dict[str, Any]
    top_tasks: list[str]
    metrics: list[MetricResult]
    records: list[tuple[str, int, str, dict[str, Any]]]  # task, doc_id, doc_hash, record
    checks: dict[str, Any] = field(default_factory=dict)
    content_sha: str = ""  # of the payload's content (canonical JSON): the dedup key


def parse_payload(body: bytes) -> SubmissionPayload:
    try:
        raw = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SubmissionError(f"malformed JSON: {err}", 400) from None
    except RecursionError:  # e.g. 200,000 nested brackets: Python's parser recurses per level
        raise SubmissionError("malformed JSON: nested too deeply", 400) from None
    if not isinstance(raw, dict):
        raise SubmissionError("malformed submission: the body must be a JSON object", 400)
    try:
        payload = SubmissionPayload.model_validate(raw)
        payload.model_name = normalize_model_name(payload.model_name)
        return payload
    except ValueError as err:
        if not isinstance(err, ValidationError):
            raise SubmissionError(f"malformed submission: field model_name: {err}", 422) from None
        first = err.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "body"
        raise SubmissionError(f"malformed submission: field {where}: {first['msg']}", 422) from None


def _section(results: dict[str, Any], key: str) -> dict[str, Any]:
    value = results.get(key)
    if not isinstance(value, dict):
        raise SubmissionError(f"results.{key}: missing or not an object")
    return value


def _close(a: float | None, b: Any) -> bool:
    if b in ("N/A", None):
        return a is None
    if a is None:
        return False
    try:
        b = float(b)
    except (TypeError, ValueError):
        return False
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL)


def _same_metric_value(a: Any, b: Any) -> bool:
    if isinstance(a, bool | int | float) and isinstance(b, bool | int | float):
        return _close(float(a), float(b))
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same_metric_value(x, y) for x, y in zip(a, b, strict=True))
    return json.dumps(a, default=str, sort_keys=True) == json.dumps(b, default=str, sort_keys=True)


def _response(task: str, doc_id: int, raw: Any, output_type: str) -> Any:
    if not isinstance(raw, list) or len(raw) != 1:
        raise SubmissionError(f"samples.{task}[doc {doc_id}].resps: each request's response must be a one-element list")
    r = raw[0]
    if output_type in ("multiple_choice", "loglikelihood"):
        ok = isinstance(r, list) and len(r) == 2 and isinstance(r[0], int | float) and isinstance(r[1], bool)
        if not ok:
            raise SubmissionError(f"samples.{task}[doc {doc_id}].resps: expected [loglikelihood, is_greedy]")
        return (float(r[0]), bool(r[1]))
    if output_type == "loglikelihood_rolling":
        if not isinstance(r, int | float):
            raise SubmissionError(f"samples.{task}[doc {doc_id}].resps: expected a loglikelihood number")
        return float(r)
    if not isinstance(r, str):
        raise SubmissionError(f"samples.{task}[doc {doc_id}].resps: expected generated text")
    return r


def validate(payload: SubmissionPayload, library: TaskLibrary, *, max_samples: int) -> ValidatedRun:
    res = payload.results
    configs = _section(res, "configs")
    versions = _section(res, "versions")
    nshot = _section(res, "n-shot")
    nsamples = _section(res, "n-samples")
    results = _section(res, "results")
    config = res.get("config") if isinstance(res.get("config"), dict) else {}
    leaves = sorted(configs)
    if not leaves:
        raise SubmissionError("results.configs: no tasks")
    if set(payload.samples) != set(leaves):
        missing = sorted(set(leaves) - set(payload.samples))
        extra = sorted(set(payload.samples) - set(leaves))
        raise SubmissionError(
            f"samples: {'missing for ' + ', '.join(missing) if missing else ''}"
            f"{'; ' if missing and extra else ''}{'unexpected ' + ', '.join(extra) if extra else ''}"
            " (submit a run made with --log_samples)"
        )
    total = sum(len(v) for v in payload.samples.values())
    if total > max_samples:
        raise SubmissionError(f"too many samples: {total} > {max_samples} allowed per submission", 413)
    seed = config.get("fewshot_seed", 1234)
    limit = config.get("limit")
    iters = config.get("bootstrap_iters", MAX_BOOTSTRAP_ITERS)
    if not isinstance(seed, int) or (limit is not None and not isinstance(limit, int | float)):
        raise SubmissionError("results.config: fewshot_seed must be an int and limit a number or null")
    if not isinstance(iters, int) or not 0 <= iters <= MAX_BOOTSTRAP_ITERS:
        raise SubmissionError(f"results.config.bootstrap_iters must be an int in 0..{MAX_BOOTSTRAP_ITERS}")

    checks: dict[str, Any] = {"tasks": {}}
    task_metrics: dict[str, list[MetricResult]] = {}
    doc_values: dict[str, dict[tuple[str, str], list[float]]] = {}
    records: list[tuple[str, int, str, dict[str, Any]]] = []
    for name in leaves:
        if not isinstance(name, str) or not library.knows(name) or name not in library.registry.tasks:
            raise SubmissionError(f"task {name!r} is not a task this board knows (see /api/tasks)")
        want = library.version(name)
        if _version(versions.get(name)) != want:
            raise SubmissionError(f"task {name}: version {versions.get(name)!r} but the board has version {want}")
        shots = nshot.get(name)
        if not isinstance(shots, int) or shots < 0:
            raise SubmissionError(f"results.n-shot.{name}: missing or not a non-negative int")
        task, shots = library.task(name, shots)
        recs = payload.samples[name]
        counts = nsamples.get(name)
        if not isinstance(counts, dict) or counts.get("effective") != len(recs):
            raise SubmissionError(
                f"task {name}: results.n-samples.effective is {counts.get('effective') if isinstance(counts, dict) else None!r} "
                f"but {len(recs)} sample records were sent"
            )
        ids = [r.get("doc_id") for r in recs]
        if any(not isinstance(i, int) for i in ids):
            raise SubmissionError(f"samples.{name}: every record needs an integer doc_id")
        if sorted(ids) != list(range(len(recs))):
            dup = sorted({i for i in ids if ids.count(i) > 1})[:5]
            raise SubmissionError(
                f"samples.{name}: doc ids must be 0..{len(recs) - 1} exactly once"
                + (f" (duplicated: {dup})" if dup else " (some are missing)")
            )
        recs = sorted(recs, key=lambda r: r["doc_id"])
        plans, how = _plans(task, name, recs, shots, seed, counts)
        checks["tasks"][name] = how
        responses = [[_response(name, r["doc_id"], x, task.config.output_type) for x in r.get("resps") or []] for r in recs]
        for p, resp in zip(plans, responses, strict=True):
            if p.requests and len(resp) != len(p.requests):
                raise SubmissionError(f"samples.{name}[doc {p.doc_id}]: {len(resp)} responses for {len(p.requests)} requests")
        try:
            scores = score_task(task, plans, responses)
        except GapmeterError as err:
            raise SubmissionError(f"task {name}: cannot score the submitted responses: {err}") from None
        except (TypeError, ValueError, IndexError, KeyError) as err:
            raise SubmissionError(f"task {name}: responses do not fit the task ({type(err).__name__}: {err})") from None
        for rec, score in zip(recs, scores, strict=True):
            mine = {f"{m},{f}": v for f, ms in score.metrics.items() for m, v in ms.items()}
            theirs = rec.get("metrics")
            if not isinstance(theirs, dict) or set(theirs) != set(mine):
                raise SubmissionError(f"samples.{name}[doc {rec['doc_id']}].metrics: expected keys {sorted(mine)}")
            filtered = json.loads(json.dumps(score.filtered, default=str))
            if json.loads(json.dumps(rec.get("filtered_resps"), default=str)) != filtered:
                raise SubmissionError(
                    f"samples.{name}[doc {rec['doc_id']}].filtered_resps disagree with the response filtered by "
                    "the task's filters"
                )
            for key, v in mine.items():
                if not _same_metric_value(v, theirs[key]):
                    raise SubmissionError(
                        f"samples.{name}[doc {rec['doc_id']}].metrics.{key} = {theirs[key]!r} disagrees with "
                        f"the response, which scores {v!r}"
                    )
        metrics = aggregate_task(task, plans, scores, iters)
        submitted = results.get(name)
        if not isinstance(submitted, dict):
            raise SubmissionError(f"results.results.{name}: missing")
        for m in metrics:
            key = f"{m.metric},{m.filter}"
            if not _close(finite(m.value), submitted.get(key, "missing")):
                raise SubmissionError(
                    f"task {name}: submitted {key} = {submitted.get(key)!r} but its samples give {m.value!r}"
                )
            se_key = f"{m.metric}_stderr,{m.filter}"
            if not _close(finite(m.stderr), submitted.get(se_key, "N/A")):
                raise SubmissionError(
                    f"task {name}: submitted {se_key} = {submitted.get(se_key)!r} but its samples give {m.stderr!r}"
                )
        task_metrics[name] = metrics
        doc_values[name] = {
            (m, f): [float(s.metrics[f][m]) for s in scores]
            for f in (scores[0].metrics if scores else {})
            for m in scores[0].metrics[f]
            if isinstance(scores[0].metrics[f][m], int | float)
        }
        for rec, p, score in zip(recs, plans, scores, strict=True):
            # The drill-down shows the doc and target the board scored against, never the
            # submitter's own `doc`/`target` fields.
            target = json.loads(json.dumps(score.target, default=str))
            records.append((name, int(rec["doc_id"]), doc_hash(p.doc), rec | {"doc": p.doc, "target": target}))

    top, groups = _groups(res, library, leaves, task_metrics, doc_values)
    all_metrics = [m for ms in task_metrics.values() for m in ms] + groups
    model_info = {k: v for k, v in (config.get("model_info") or {}).items() if isinstance(v, str | int | float | bool)} if isinstance(config.get("model_info"), dict) else {}
    spec = {
        "model": str(config.get("model", "submitted"))[:64], "model_args": "",
        "tasks": top, "num_fewshot": None, "limit": limit, "fewshot_seed": seed, "bootstrap_iters": iters,
        "n_shot": {n: nshot[n] for n in leaves},
    }
    return ValidatedRun(payload.model_name, spec, model_info, top, all_metrics, records, checks,
                        canonical_sha256(payload.model_dump()))


_WORKER: tuple[TaskLibrary, int] | None = None  # set in a validator process (init_worker)


def init_worker(include_path: tuple[Path, ...], data_dir: Path | None, max_samples: int) -> None:
    """Start a validator process: its own task library, built as the board's is."""
    global _WORKER
    _WORKER = (TaskLibrary(include_path, data_dir), max_samples)


def validate_upload(body: bytes) -> ValidatedRun:
    """Parse and re-score an upload in a validator process (``init_worker`` ran first)."""
    if _WORKER is None:
        raise RuntimeError("validate_upload runs in a validator process started with init_worker")
    library, max_samples = _WORKER
    return validate(parse_payload(body), library, max_samples=max_samples)


def _plans(task: Any, name: str, recs: list[dict[str, Any]], shots: int, seed: int, counts: dict[str, Any]) -> tuple[list[DocPlan], str]:
    """The board's own plans when it has the data (docs and prompts must match), else the
    submitted docs (scoring still uses the board's task definition)."""
    try:
        docs = task.eval_docs
    except GapmeterError:
        docs = None
    if docs is None:
        plans = []
        for r in recs:
            doc = r.get("doc")
            if not isinstance(doc, dict):
                raise SubmissionError(f"samples.{name}[doc {r['doc_id']}].doc: missing")
            plans.append(DocPlan(r["doc_id"], doc, (), ()))
        return plans, "scored from submitted docs (the board has no copy of this task's data)"
    if counts.get("original") != len(docs):
        raise SubmissionError(f"task {name}: n-samples.original is {counts.get('original')!r} but the task has {len(docs)} docs")
    try:
        plans = task.plan(num_fewshot=shots, limit=len(recs), seed=seed)
    except GapmeterError as err:
        raise SubmissionError(f"task {name}: {err}") from None
    for p, r in zip(plans, recs, strict=True):
        if r.get("doc_hash") != doc_hash(p.doc):
            raise SubmissionError(f"samples.{name}[doc {p.doc_id}]: the doc is not the board's doc {p.doc_id} of {name}")
        args = r.get("arguments")
        want = {f"gen_args_{i}": {f"arg_{j}": a for j, a in enumerate(q.args())} for i, q in enumerate(p.requests)}
        if json.dumps(args, sort_keys=True, default=str) != json.dumps(want, sort_keys=True, default=str):
            raise SubmissionError(
                f"samples.{name}[doc {p.doc_id}].arguments: the requests differ from the board's prompt for "
                f"{shots}-shot, seed {seed}"
            )
    return plans, f"docs and prompts match the board's ({shots}-shot, seed {seed}); re-scored from responses"


def _groups(res: dict[str, Any], library: TaskLibrary, leaves: list[str], task_metrics: dict[str, list[MetricResult]],
            doc_values: dict[str, dict[tuple[str, str], list[float]]]) -> tuple[list[str], list[MetricResult]]:
    tree = res.get("group_subtasks") if isinstance(res.get("group_subtasks"), dict) else {}
    children = {c for v in tree.values() if isinstance(v, list) for c in v}
    top = [n for n in tree if isinstance(n, str) and n not in children] or list(leaves)
    group_names = [n for n in top if n not in leaves]
    if not group_names:
        return top, []
    try:
        plan = library.plan(group_names, None)
    except KeyError as err:
        raise SubmissionError(f"group {err} is not a group this board knows") from None
    missing = sorted({leaf for g in group_names for leaf in plan.leaves_under(g)} - set(leaves))
    if missing:
        raise SubmissionError(f"groups {', '.join(group_names)}: samples missing for subtasks {', '.join(missing[:5])}")
    groups = aggregate_groups(plan, task_metrics, doc_values)
    results = res.get("results") or {}
    for m in groups:
        key = f"{m.metric},{m.filter}"
        submitted = (results.get(m.task) or {}).get(key, "missing")
        if not _close(finite(m.value), submitted):
            raise SubmissionError(f"group {m.task}: submitted {key} = {submitted!r} but its subtasks give {m.value!r}")
    return top, groups

