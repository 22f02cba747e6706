"""Page data: one function per page, returning plain JSON-able dicts.

Each HTML page renders exactly what its ``/api/...`` mirror returns, so the API and the pages
can never disagree. Inputs (query parameters) are validated here; unknown names give ``None``
and the route answers 404.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gapmeter.board import paired
from gapmeter.board.readmodel import ModelSummary, RunInfo, Score, Snapshot, score_by
from gapmeter.board.weighting import Weights, weighted_scores
from gapmeter.compare.ranking import Interval, ci_overlap_ranks
from gapmeter.scoring.stats import mean_ci
from gapmeter.store.models import DocRecord, Run
from gapmeter.store.runs import IMPORTED_KEY, RESULTS_DOCUMENT_KEY

SORT_KEYS = ("rank", "quality", "name", "cost", "latency", "weighted", "private_gap")


@dataclass(frozen=True)
class LeaderboardQuery:
    tasks: tuple[str, ...] = ()  # empty: every column
    q: str = ""  # substring filter on model names
    sort: str = "rank"  # one of SORT_KEYS or "task:<name>"
    desc: bool | None = None  # None: the natural direction of the sort key
    weights: Weights = Weights()
    limit: int = 100
    offset: int = 0
    include_hidden: bool = False
    flagged_only: bool = False
    # (task, "metric,filter"): rank these columns by this metric instead of the board's choice
    metrics: tuple[tuple[str, str], ...] = ()


class MetricChoiceError(ValueError):
    """A ``metric=TASK=METRIC[,FILTER]`` choice the board cannot honour (its message is the answer)."""


def metric_keys(snap: Snapshot, task: str) -> list[str]:
    """Every "metric,filter" some visible run of the board has a value of for ``task``."""
    memo = snap.memo.get("metric_keys")
    if memo is None:
        memo = {}
        for run in snap.runs.values():
            if not run.hidden:
                for t, key in run.value_keys:
                    memo.setdefault(t, set()).add(key)
        snap.memo["metric_keys"] = memo
    return sorted(memo.get(task, ()))


def parse_metric_choices(values: list[str]) -> dict[str, str]:
    """``TASK=METRIC[,FILTER]`` values → task → "metric,filter" (filter ``none`` when not given);
    a ValueError naming the value otherwise (the board's query and `gapmeter board --metric`)."""
    chosen: dict[str, str] = {}
    for value in values:
        task, sep, metric = (part.strip() for part in value.partition("="))
        name, _, filt = metric.partition(",")
        if not sep or not task or not name.strip() or "," in filt:
            raise ValueError(f"{value!r}: expected TASK=METRIC or TASK=METRIC,FILTER, e.g. support_faq=judge_score")
        if task in chosen:
            raise ValueError(f"{value!r}: task {task!r} is chosen twice")
        chosen[task] = f"{name.strip()},{filt.strip() or 'none'}"
    return chosen


def metric_choices(snap: Snapshot, values: list[str]) -> tuple[tuple[str, str], ...]:
    """``TASK=METRIC[,FILTER]`` query values, checked against the board: a task it has a
    column for, a metric some visible run has for it."""
    try:
        chosen = parse_metric_choices(values)
    except ValueError as e:
        raise MetricChoiceError(f"invalid parameter metric={e}") from None
    for value, (task, key) in zip(values, chosen.items(), strict=True):  # one entry per value, in order
        if task not in snap.tasks:
            raise MetricChoiceError(f"invalid parameter metric={value!r}: the board has no task {task!r}")
        known = metric_keys(snap, task)
        if key not in known:
            raise MetricChoiceError(f"invalid parameter metric={value!r}: no run on the board has {key} for "
                                    f"{task} (it has: {', '.join(known)})")
    return tuple(sorted(chosen.items()))


def _fmt_score(s: Score | None) -> dict[str, Any] | None:
    return s.as_json() if s is not None else None


def _quality(scores: dict[str, Score], tasks: list[str]) -> tuple[float | None, float | None, Interval | None, int]:
    """Macro mean over the selected tasks the model has; SE of the mean of independent tasks."""
    got = [scores[t] for t in tasks if t in scores and scores[t].value is not None]
    if not got:
        return None, None, None, 0
    k = len(got)
    mean = sum(s.value for s in got if s.value is not None) / k
    ses = [s.stderr for s in got]
    if any(se is None for se in ses):
        return mean, None, Interval(mean, mean, mean), k
    se = math.sqrt(sum(se * se for se in ses if se is not None)) / k
    lo, hi = mean_ci(mean, se)
    return mean, se, Interval(mean, lo, hi), k


def private_gaps(model: ModelSummary) -> dict[str, dict[str, Any]]:
    """Public minus private score per task (positive: better on public items), with a 95% CI."""
    out = {}
    for task, p in model.private.items():
        pub = model.scores.get(task)
        entry: dict[str, Any] = {
            "task": task, "private": p.value, "private_stderr": p.stderr, "private_n": p.n,
            "evaluations": p.evals, "public": pub.value if pub else None, "gap": None, "gap_ci95": None,
        }
        if pub is not None and pub.value is not None and p.value is not None:
            gap = pub.value - p.value
            se = math.sqrt((pub.stderr or 0.0) ** 2 + (p.stderr or 0.0) ** 2)
            entry["gap"] = gap
            entry["gap_ci95"] = [gap - 1.959964 * se, gap + 1.959964 * se]
        out[task] = entry
    return out


@dataclass
class _Ranked:
    """The query-independent part of a leaderboard (memoised per snapshot): the models shown,
    their quality over the chosen columns, and tie-aware ranks."""

    models: list[ModelSummary]
    scores: list[dict[str, Score]]  # per model: task -> the score shown (the chosen metric's)
    quality: list[tuple[float | None, float | None, Interval | None, int]]
    complete: list[bool]
    ranks: list[int | None]
    gaps: list[float | None]
    _index: dict[str, int] | None = None

    def index(self) -> dict[str, int]:
        """Model name -> position in ``models``."""
        if self._index is None:
            self._index = {m.name: i for i, m in enumerate(self.models)}
        return self._index


def _scores(model: ModelSummary, metrics: tuple[tuple[str, str], ...]) -> dict[str, Score]:
    """The model's scores, with each chosen task's from the chosen metric (absent if it has none)."""
    if not metrics:
        return model.scores
    out = dict(model.scores)
    for task, key in metrics:
        chosen = score_by(model, task, key) if task in model.scores else None
        if chosen is None:
            out.pop(task, None)
        else:
            out[task] = chosen
    return out


def _ranked(snap: Snapshot, columns: tuple[str, ...], include_hidden: bool, flagged_only: bool,
            metrics: tuple[tuple[str, str], ...] = ()) -> _Ranked:
    key = ("ranked", columns, include_hidden, flagged_only, metrics)
    hit = snap.memo.get(key)
    if hit is not None:
        return hit
    models = [
        m for m in snap.models.values()
        if (include_hidden or not m.hidden) and (not flagged_only or any(f.flagged for f in m.audit))
    ]
    cols = list(columns)
    scores = [_scores(m, metrics) for m in models]
    qual = [_quality(sc, cols) for sc in scores]
    complete = [k == len(cols) and k > 0 for (_, _, _, k) in qual]
    ranks = ci_overlap_ranks([iv if ok else None for (_, _, iv, _), ok in zip(qual, complete, strict=True)])
    gaps = []
    for m in models:
        values = [g["gap"] for g in private_gaps(m).values() if g["gap"] is not None] if m.private else []
        gaps.append(max(values) if values else None)
    out = _Ranked(models, scores, qual, complete, ranks, gaps)
    if len(snap.memo) > 64:  # many distinct column choices: start over rather than grow
        snap.memo.clear()
    snap.memo[key] = out
    return out


def leaderboard(snap: Snapshot, query: LeaderboardQuery) -> dict[str, Any]:
    columns = tuple(t for t in query.tasks if t in snap.tasks) if query.tasks else tuple(snap.tasks)
    base = _ranked(snap, columns, query.include_hidden, query.flagged_only, query.metrics)
    weighted = weighted_scores(
        [q[0] if ok else None for q, ok in zip(base.quality, base.complete, strict=True)],
        [m.efficiency.cost_per_1k for m in base.models],
        [m.efficiency.speed for m in base.models],
        query.weights,
    )
    needle = query.q.lower()
    shown = [i for i, m in enumerate(base.models) if not needle or needle in m.name.lower()]
    order = _order(shown, base, weighted, columns, query)
    total = len(order)
    rows = [_row(base, i, weighted[i], columns) for i in order[query.offset : query.offset + query.limit]]
    return {
        "tasks": list(columns),
        "all_tasks": list(snap.tasks),
        "primary_metric": {t: dict(query.metrics).get(t) or snap.primary.get(t) for t in columns},
        "metric_choice": dict(query.metrics),
        "weights": {"quality": query.weights.quality, "cost": query.weights.cost, "speed": query.weights.speed},
        "sort": query.sort,
        "desc": _direction(query),
        "q": query.q,
        "total": total,
        "offset": query.offset,
        "limit": query.limit,
        "rows": rows,
        "ranking": (
            "rank = 1 + number of models whose 95% CI lies entirely above this model's "
            "(tie-aware; models missing a selected task are not ranked)"
        ),
    }


def _row(base: _Ranked, i: int, weighted: float, columns: tuple[str, ...]) -> dict[str, Any]:
    m = base.models[i]
    mean, se, iv, k = base.quality[i]
    return {
        "model": m.name,
        "rank": base.ranks[i],
        "quality": mean,
        "quality_stderr": se,
        "quality_ci95": [iv.low, iv.high] if iv is not None and se is not None else None,
        "tasks_scored": k,
        "complete": base.complete[i],
        "weighted_score": weighted,
        "scores": {t: _fmt_score(base.scores[i].get(t)) for t in columns},
        "efficiency": m.efficiency.as_json(),
        "audit": {"flagged": any(f.flagged for f in m.audit), "verdicts": [f.as_json() for f in m.audit]},
        "private_gap": base.gaps[i],
        "annotations": [a["text"] for a in m.annotations],
        "hidden": m.hidden,
        "runs": [r.id for r in m.runs if not r.hidden],
        "submitter": m.submitter,
    }


def _direction(query: LeaderboardQuery) -> bool:
    if query.desc is not None:
        return query.desc
    return query.sort in ("quality", "weighted", "private_gap") or query.sort.startswith("task:")


def _order(shown: list[int], base: _Ranked, weighted: list[float], columns: tuple[str, ...],
           query: LeaderboardQuery) -> list[int]:
    key = query.sort
    use_weighted = key == "weighted" or (key == "rank" and not query.weights.is_quality_only)
    desc = (True if query.desc is None else query.desc) if use_weighted else _direction(query)

    def value(i: int) -> Any:
        m = base.models[i]
        if use_weighted:
            return weighted[i]
        if key == "rank":
            return base.ranks[i] if base.ranks[i] is not None else math.inf
        if key == "quality":
            return base.quality[i][0]
        if key == "name":
            return m.name.lower()
        if key == "cost":
            return m.efficiency.cost_per_1k
        if key == "latency":
            return m.efficiency.speed
        if key == "private_gap":
            return base.gaps[i]
        if key.startswith("task:"):
            s = base.scores[i].get(key[5:])
            return s.value if s else None
        return m.name.lower()

    keyed = [(value(i), i) for i in shown]
    present = [(v, i) for v, i in keyed if v is not None]
    missing = [i for v, i in keyed if v is None]
    present.sort(key=lambda x: base.models[x[1]].name.lower())  # ties keep name order (stable sorts)
    if key == "rank" and not use_weighted:  # equal ranks: better mean first
        present.sort(key=lambda x: -(base.quality[x[1]][0] or 0.0))
    present.sort(key=lambda x: x[0], reverse=desc)
    missing.sort(key=lambda i: base.models[i].name.lower())
    return [i for _, i in present] + missing  # models without the value always come last


def model_page(snap: Snapshot, name: str, *, include_hidden: bool = False) -> dict[str, Any] | None:
    m = snap.models.get(name)
    if m is None or (m.hidden and not include_hidden):
        return None
    tasks = list(m.scores)
    base = _ranked(snap, tuple(snap.tasks), include_hidden, False)
    i = base.index().get(name)
    row = None if i is None else _row(base, i, 0.0, ())
    best = _best_on_board(snap)
    per_task = []
    for t in tasks:
        s = m.scores[t]
        per_task.append({
            "task": t, "primary": s.as_json(),
            "metrics": [x.as_json() for x in m.all_scores.get(t, [])],
            "best_on_board": best.get(t) if not m.hidden else None,
        })
    return {
        "model": m.name,
        "rank": row["rank"] if row else None,
        "quality": row["quality"] if row else None,
        "quality_ci95": row["quality_ci95"] if row else None,
        "per_task": per_task,
        "radar": {"tasks": tasks, "values": [m.scores[t].value for t in tasks]},
        "efficiency": m.efficiency.as_json(),
        "audit": [f.as_json() for f in m.audit],
        "private": private_gaps(m),
        "annotations": m.annotations,
        "hidden": m.hidden,
        "runs": [_run_brief(r) for r in m.runs if include_hidden or not r.hidden],
    }


def _best_on_board(snap: Snapshot) -> dict[str, float]:
    """Per task, the best primary score of a visible model (memoised per snapshot)."""
    hit = snap.memo.get("best_on_board")
    if hit is None:
        hit = {}
        for o in snap.models.values():
            if not o.hidden:
                for t, sc in o.scores.items():
                    hit[t] = max(hit.get(t, sc.value or 0.0), sc.value or 0.0)
        snap.memo["best_on_board"] = hit
    return hit


def _run_brief(r: RunInfo) -> dict[str, Any]:
    return {
        "run_id": r.id, "model": r.model_name, "backend": r.backend, "tasks": r.top_tasks,
        "finished_at": r.finished_at.isoformat() if r.finished_at else None,
        "wall_seconds": r.wall_seconds, "source": r.source, "submitter": r.submitter,
        "hidden": r.hidden, "hidden_reason": r.hidden_reason, "n_items": r.n_items,
    }


def run_page(session: Session, snap: Snapshot, run_id: str, *, include_hidden: bool = False) -> dict[str, Any] | None:
    r = snap.runs.get(run_id)
    if r is None or (r.hidden and not include_hidden):
        return None
    row = session.execute(select(Run.spec, Run.model_info).where(Run.id == run_id)).one_or_none()
    spec = dict(row.spec or {}) if row else {}
    # local paths and URLs of the evaluator, not the run's config; the results document (its
    # environment, paths and store URL) is for `gapmeter export`
    for private_key in ("db", "output_path", "data_dir", "include_path", RESULTS_DOCUMENT_KEY):
        spec.pop(private_key, None)
    if isinstance(spec.get(IMPORTED_KEY), dict):
        spec[IMPORTED_KEY] = {k: v for k, v in spec[IMPORTED_KEY].items() if k != "from"}
    tasks = sorted(r.scores)
    return {
        "run": _run_brief(r),
        "config": {"spec": spec, "model_info": _public_info(row.model_info if row else {})},
        "metrics": [s.as_json() for t in tasks for s in r.scores[t]],
        "tasks": [t for t in tasks if r.scores[t] and not r.scores[t][0].is_group],
        "primary_metric": {t: snap.primary.get(t) for t in tasks},
    }


def _public_info(info: dict[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (info or {}).items() if k not in ("pretrained",)} | (
        {"pretrained": str(info["pretrained"]).rsplit("/", 1)[-1]} if info and info.get("pretrained") else {}
    )


def run_samples(
    session: Session, snap: Snapshot, run_id: str, task: str, *, outcome: str = "all",
    offset: int = 0, limit: int = 50, include_hidden: bool = False,
) -> dict[str, Any] | None:
    """Per-item drill-down: prompt, response, target and score; ``outcome`` = all|correct|incorrect."""
    r = snap.runs.get(run_id)
    if r is None or (r.hidden and not include_hidden) or task not in r.scores:
        return None
    key = snap.primary.get(task) or (r.scores[task][0].key if r.scores[task] else "")
    records = session.scalars(
        select(DocRecord.record).where(DocRecord.run_id == run_id, DocRecord.task == task).order_by(DocRecord.doc_id)
    ).all()
    items = []
    for rec in records:
        v = (rec.get("metrics") or {}).get(key)
        correct = None if not isinstance(v, bool | int | float) else float(v) > 0
        if outcome == "correct" and correct is not True:
            continue
        if outcome == "incorrect" and correct is not False:
            continue
        items.append(_sample_view(rec, key, correct))
    return {
        "run_id": run_id, "task": task, "metric": key, "outcome": outcome, "total": len(items),
        "offset": offset, "limit": limit, "items": items[offset : offset + limit],
    }


def _sample_view(rec: dict[str, Any], key: str, correct: bool | None) -> dict[str, Any]:
    args = rec.get("arguments") or {}
    requests = [args[k] for k in sorted(args, key=lambda x: int(x.rsplit("_", 1)[-1]) if x.rsplit("_", 1)[-1].isdigit() else 0)]
    prompt = str(requests[0].get("arg_0", "")) if requests else ""
    continuations = [str(a.get("arg_1")) for a in requests if isinstance(a.get("arg_1"), str)]
    resps = rec.get("resps") or []
    filtered = rec.get("filtered_resps")
    response: Any
    if continuations and len(continuations) == len(resps):
        # Multiple choice: the chosen option is the highest loglikelihood.
        lls = [r[0][0] if isinstance(r, list) and r and isinstance(r[0], list) else None for r in resps]
        best = max(range(len(lls)), key=lambda i: lls[i] if lls[i] is not None else -math.inf) if lls else None
        response = continuations[best] if best is not None else None
    else:
        response = filtered if not isinstance(filtered, dict) else next(iter(filtered.values()), None)
        if isinstance(response, list) and len(response) == 1:
            response = response[0]
        raw = resps[0][0] if resps and isinstance(resps[0], list) and resps[0] else None
        if raw is not None and raw != response:
            response = {"filtered": response, "raw": raw}
    return {
        "doc_id": rec.get("doc_id"), "prompt": prompt, "choices": continuations,
        "response": response, "target": rec.get("target"), "score": (rec.get("metrics") or {}).get(key),
        "correct": correct, "metrics": rec.get("metrics") or {},
        # `gapmeter judge`: per judge metric, the prompt, the raw replies and the verdict
        "judge": rec.get("judge") or {},
    }


def pareto_page(snap: Snapshot) -> dict[str, Any]:
    """Quality vs cost and quality vs latency, with each frontier (non-dominated models)."""
    columns = tuple(snap.tasks)
    base = _ranked(snap, columns, False, False)
    points = []
    for m, (mean, se, iv, _), ok in zip(base.models, base.quality, base.complete, strict=True):
        if mean is None:
            continue
        e = m.efficiency
        points.append({
            "model": m.name, "quality": mean, "quality_ci95": [iv.low, iv.high] if iv is not None and se is not None else None,
            "complete": ok, "cost": e.cost_per_1k, "latency": e.latency_p50, "latency_p95": e.latency_p95,
            "wall_per_1k": e.wall_s_per_1k,
        })
    points.sort(key=lambda p: -p["quality"])
    speed_key = "latency" if any(p["latency"] is not None for p in points) else "wall_per_1k"
    return {
        "tasks": list(columns),
        "points": points,
        "speed_axis": speed_key,
        "frontier_cost": _frontier(points, "cost"),
        "frontier_speed": _frontier(points, speed_key),
    }


def _frontier(points: list[dict[str, Any]], x: str) -> list[str]:
    """Models no other model beats on both quality (higher) and ``x`` (lower)."""
    pts = sorted((p for p in points if p[x] is not None), key=lambda p: (p[x], -(p["quality"] or 0)))
    out, best = [], -math.inf
    for p in pts:
        if p["quality"] > best:
            out.append(p["model"])
            best = p["quality"]
    return out


def compare_page(session: Session, snap: Snapshot, a: str, b: str) -> dict[str, Any] | None:
    ma, mb = snap.models.get(a), snap.models.get(b)
    if ma is None or mb is None or ma.hidden or mb.hidden:
        return None
    rows = []
    for task in [t for t in ma.scores if t in mb.scores]:
        sa, sb = ma.scores[task], mb.scores[task]
        # Paired analysis on the leaf tasks' records (a group's records are its subtasks').
        leaves = [task] if not sa.is_group else []
        for leaf in leaves:
            res = paired.compare_runs(session, leaf, sa.key, sa.run_id, sb.run_id)
            rows.append({
                "task": leaf, "metric": sa.key, "score_a": sa.value, "score_b": sb.value,
                "paired": res.as_json() if res else None,
            })
        if not leaves:
            rows.append({"task": task, "metric": sa.key, "score_a": sa.value, "score_b": sb.value, "paired": None})
    return {"a": a, "b": b, "tasks": rows, "models": sorted(m.name for m in snap.models.values() if not m.hidden)}
