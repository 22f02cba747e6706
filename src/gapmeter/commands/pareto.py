"""``gapmeter pareto RUN...``: which runs give the most quality for their cost and their latency.

Each run is a point (quality with its 95% CI, cost per 1k items, latency); a run is on a
frontier when no other run is at least as good on both axes and better on one. Prints both
frontiers and writes ``pareto.html`` (plotly, offline), ``pareto.png`` (matplotlib) and
``pareto.json`` to ``--out``.

Quality is one number per run: ``--task`` (a task or group) and its first metric (or
``--metric``); without ``--task``, the single top-level task the runs share, or, when they
share several, the mean of their main metrics (SE combined as independent). Runs are named as in
``compare``: id / id prefix in ``--db``, or an output directory; none given = every complete run
in the store.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from gapmeter.compare.runs import StoredRun, open_run, store_url
from gapmeter.cost.estimate import Pricing
from gapmeter.efficiency.frontier import FrontierPoint, pareto_frontier
from gapmeter.efficiency.plots import Panel, PanelPoint, html_figure, write_png
from gapmeter.efficiency.report import fmt_seconds, fmt_usd
from gapmeter.errors import ConfigError, DataError
from gapmeter.render import print_table
from gapmeter.scoring.metrics import METRICS
from gapmeter.store.db import open_store
from gapmeter.store.models import EfficiencyValue, MetricValue, Run
from gapmeter.store.results_json import atomic_write

LATENCIES = ("p50", "p90", "p99", "ttft_p50", "seconds_per_item")
Z95 = 1.959963984540054


@dataclass
class ParetoPoint:
    run_id: str
    label: str
    model: str
    model_args: str
    quality: float
    ci_low: float | None
    ci_high: float | None
    n_items: int
    cost_usd: float | None
    cost_per_1k_items: float | None
    cost_basis: str | None
    score_per_dollar: float | None
    latency_s: float | None
    compute_seconds: float | None
    cost_dominated_by: str | None = None
    latency_dominated_by: str | None = None
    on_cost_frontier: bool | None = None
    on_latency_frontier: bool | None = None


@dataclass
class ParetoResult:
    scope: str  # task/group name, or "" for the mean over the runs' top-level tasks
    metric: str
    higher_is_better: bool
    latency: str
    points: list[ParetoPoint]
    files: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        return {
            "scope": self.scope or "mean of top-level tasks",
            "metric": self.metric,
            "higher_is_better": self.higher_is_better,
            "cost_axis": "usd_per_1k_items",
            "latency_axis": self.latency,
            "runs": [asdict(p) for p in self.points],
        }


def _all_complete_runs(db: str | None) -> list[str]:
    sessions = open_store(store_url(db))
    with sessions() as s:
        ids = list(s.scalars(select(Run.id).where(Run.status == "complete").order_by(Run.created_at)))
    if not ids:
        raise ConfigError(f"no complete runs in {store_url(db)}")
    return ids


def _efficiency_row(run: StoredRun, scope: str) -> EfficiencyValue:
    with run.sessions() as s:
        rows = s.scalars(select(EfficiencyValue).where(EfficiencyValue.run_id == run.id)).all()
    for row in rows:
        if (scope == "" and row.scope == "run") or (scope and row.scope != "run" and row.task == scope):
            return row
    raise DataError(
        f"run {run.id} has no efficiency record{f' for {scope}' if scope else ''} "
        "(made before gapmeter measured efficiency): run its command again to add it"
    )


def _metric_value(run: StoredRun, task: str, metric: str | None) -> tuple[MetricValue, bool]:
    """The task's chosen metric (``--metric NAME[,FILTER]``, else its first) and higher_is_better."""
    with run.sessions() as s:
        rows = s.scalars(
            select(MetricValue).where(MetricValue.run_id == run.id, MetricValue.task == task).order_by(MetricValue.id)
        ).all()
    if metric:
        name, _, filt = metric.partition(",")
        rows = [r for r in rows if r.metric == name and (not filt or r.filter == filt)]
    if not rows:
        what = f"metric {metric!r}" if metric else "metrics"
        raise ConfigError(f"run {run.id} has no {what} for {task!r}")
    row = rows[0]
    hib = True
    info = run.tasks.get(task)
    known = {m.metric: m.higher_is_better for m in info.metrics} if info and info.kind == "task" else {}
    if row.metric in known:
        hib = known[row.metric]
    elif row.metric in METRICS:
        hib = METRICS[row.metric].higher_is_better
    return row, hib


def _ci(row: MetricValue) -> tuple[float | None, float | None]:
    if row.ci_low is not None and row.ci_high is not None:
        return row.ci_low, row.ci_high
    return None, None


def _quality(run: StoredRun, scope: str, metric: str | None) -> tuple[float, float | None, float | None, str, bool]:
    if scope:
        if scope not in run.tasks:
            raise ConfigError(f"run {run.id} ({run.label}) has no task or group {scope!r}")
        row, hib = _metric_value(run, scope, metric)
        if row.value is None:
            raise DataError(f"run {run.id}: {scope} {row.metric},{row.filter} has no value")
        low, high = _ci(row)
        return row.value, low, high, f"{row.metric},{row.filter}", hib
    # Mean of the top-level tasks' main metrics; their SEs combine as independent samples.
    values, variances, labels, directions = [], [], set(), set()
    for name in run.top_names():
        row, hib = _metric_value(run, name, metric)
        if row.value is None:
            raise DataError(f"run {run.id}: {name} {row.metric},{row.filter} has no value")
        values.append(row.value)
        se = max(row.stderr or 0.0, row.clustered_stderr or 0.0) if row.stderr is not None else None
        variances.append(None if se is None else se * se)
        labels.add(f"{row.metric},{row.filter}")
        directions.add(hib)
    if len(directions) > 1:
        raise ConfigError("the top-level tasks' main metrics point in different directions: pick one with --task")
    k = len(values)
    mean = math.fsum(values) / k
    if any(v is None for v in variances):
        return mean, None, None, "mean of " + ", ".join(sorted(labels)), directions.pop()
    se = math.sqrt(math.fsum(v for v in variances if v is not None)) / k
    return mean, mean - Z95 * se, mean + Z95 * se, "mean of " + ", ".join(sorted(labels)), directions.pop()


def _scope(runs: Sequence[StoredRun], task: str | None) -> str:
    if task:
        return task
    tops = {tuple(r.top_names()) for r in runs}
    if len(tops) > 1:
        listing = "; ".join(f"{r.label}: {', '.join(r.top_names())}" for r in runs)
        raise ConfigError(f"the runs were evaluated on different tasks ({listing}): choose one with --task")
    names = tops.pop()
    return names[0] if len(names) == 1 else ""


def _cost(run: StoredRun, row: EfficiencyValue, gpu_hour_cost: float | None, prices: Path | None) -> tuple[float | None, float | None, str | None]:
    """Stored cost, or re-priced: ``--prices`` for models in the price table, ``--gpu_hour_cost``
    for the others (local models)."""
    if gpu_hour_cost is None and prices is None:
        return row.cost_usd, row.cost_per_1k_items, row.cost_basis
    pricing = Pricing.resolve(run.model, run.model_args, prices=prices)
    if pricing.price is None:
        if gpu_hour_cost is None:
            return row.cost_usd, row.cost_per_1k_items, row.cost_basis
        pricing = Pricing.resolve(run.model, run.model_args, gpu_hour_cost=gpu_hour_cost, prices=prices)
    est = pricing.estimate(
        compute_seconds=row.compute_seconds,
        prompt_tokens=row.prompt_tokens,
        completion_tokens=row.completion_tokens,
        n_items=row.n_items,
        complete=row.n_timed_requests == row.n_requests,
    )
    return (est.usd, est.per_1k_items, est.basis) if est else (None, None, None)


def _latency(row: EfficiencyValue, which: str) -> float | None:
    if which == "seconds_per_item":
        complete = row.n_timed_requests == row.n_requests
        return row.compute_seconds / row.n_items if complete and row.compute_seconds and row.n_items else None
    return {"p50": row.latency_p50, "p90": row.latency_p90, "p99": row.latency_p99, "ttft_p50": row.ttft_p50}[which]


def collect(
    refs: Sequence[str],
    *,
    db: str | None,
    task: str | None,
    metric: str | None,
    latency: str,
    gpu_hour_cost: float | None,
    prices: Path | None,
    notes: Console | None = None,
) -> ParetoResult:
    """Points of the runs; without named runs, the store's complete runs that have ``task``
    (the others are skipped with a note on ``notes``: a store mixes runs of different tasks)."""
    if latency not in LATENCIES:
        raise ConfigError(f"--latency {latency!r}: choose one of {', '.join(LATENCIES)}")
    if gpu_hour_cost is not None and not gpu_hour_cost >= 0:
        raise ConfigError(f"--gpu_hour_cost {gpu_hour_cost}: must be a number >= 0 ($ per hour)")
    runs = [open_run(ref, db) for ref in (refs or _all_complete_runs(db))]
    if task and not refs:
        lacking = [r for r in runs if task not in r.tasks]
        runs = [r for r in runs if task in r.tasks]
        if not runs:
            raise ConfigError(f"no complete run in {store_url(db)} has the task or group {task!r}")
        for r in lacking:
            if notes is not None:
                notes.print(f"note: skipped run {r.id} ({r.label}): it has no task or group {task!r}",
                            highlight=False, soft_wrap=True)
    seen: dict[str, int] = {}
    for r in runs:
        seen[r.label] = seen.get(r.label, 0) + 1
    scope = _scope(runs, task)
    points: list[ParetoPoint] = []
    metrics, directions = set(), set()
    for run in runs:
        value, low, high, label, hib = _quality(run, scope, metric)
        metrics.add(label)
        directions.add(hib)
        row = _efficiency_row(run, scope)
        usd, per_1k, basis = _cost(run, row, gpu_hour_cost, prices)
        points.append(
            ParetoPoint(
                run_id=run.id,
                label=run.label if seen[run.label] == 1 else f"{run.label}@{run.id[:6]}",
                model=run.model,
                model_args=run.model_args,
                quality=value,
                ci_low=low,
                ci_high=high,
                n_items=row.n_items,
                cost_usd=usd,
                cost_per_1k_items=per_1k,
                cost_basis=basis,
                score_per_dollar=value / usd if usd and hib else None,
                latency_s=_latency(row, latency),
                compute_seconds=row.compute_seconds,
            )
        )
    if len(directions) > 1:
        raise ConfigError("the runs' metrics point in different directions: choose one with --metric")
    hib = directions.pop()
    _mark(points, "cost_per_1k_items", "cost", hib)
    _mark(points, "latency_s", "latency", hib)
    return ParetoResult(scope, " / ".join(sorted(metrics)), hib, latency, points, {})


def _mark(points: list[ParetoPoint], attr: str, name: str, higher_is_better: bool) -> None:
    have = [p for p in points if getattr(p, attr) is not None]
    sign = 1.0 if higher_is_better else -1.0
    verdicts = pareto_frontier([FrontierPoint(getattr(p, attr), sign * p.quality) for p in have])
    for p, beaten_by in zip(have, verdicts, strict=True):
        setattr(p, f"on_{name}_frontier", beaten_by is None)
        setattr(p, f"{name}_dominated_by", None if beaten_by is None else have[beaten_by].run_id)


def _quality_text(p: ParetoPoint) -> str:
    ci = f" [{p.ci_low:.3f}, {p.ci_high:.3f}]" if p.ci_low is not None and p.ci_high is not None else ""
    return f"{p.quality:.4f}{ci}"


def print_pareto(result: ParetoResult, console: Console) -> None:
    by_id = {p.run_id: p for p in result.points}
    direction = "" if result.higher_is_better else " (lower is better)"
    what = result.scope or "mean of the top-level tasks"
    for name, attr, axis in (
        ("cost", "cost_per_1k_items", "$ per 1k items"),
        ("latency", "latency_s", f"latency {result.latency}"),
    ):
        have = sorted((p for p in result.points if getattr(p, attr) is not None), key=lambda p: getattr(p, attr))
        table = Table(title=f"quality vs {name}: {what}, {result.metric}{direction}")
        # The run id leads: it heads each record when the table is too wide for the console.
        for col in ("run", "frontier", "model", "quality [95% CI]", axis, "cost", "score/$", "dominated by"):
            table.add_column(col, justify="left" if col in ("frontier", "run", "model", "dominated by") else "right")
        for p in have:
            beaten = getattr(p, f"{name}_dominated_by")
            x = getattr(p, attr)
            table.add_row(
                p.run_id,
                "★" if beaten is None else "",
                p.label,
                _quality_text(p),
                fmt_usd(x) if name == "cost" else fmt_seconds(x),
                fmt_usd(p.cost_usd),
                "-" if p.score_per_dollar is None else f"{p.score_per_dollar:,.3g}",
                by_id[beaten].label if beaten else "",
            )
        print_table(console, table)
        missing = [p.label for p in result.points if getattr(p, attr) is None]
        if missing:
            hint = ("no cost: give --gpu_hour_cost (local models) or --prices" if name == "cost"
                    else f"no {result.latency} latency measured")
            console.print(f"not on this frontier ({hint}): {', '.join(missing)}")
    for kind, path in result.files.items():
        console.print(f"{kind}: {path}")


def _panels(result: ParetoResult) -> list[Panel]:
    def panel(title: str, attr: str, name: str, x_label: str) -> Panel:
        pts = []
        for p in result.points:
            x = getattr(p, attr)
            if x is None:
                continue
            hover = (f"{p.label} ({p.run_id})<br>quality {_quality_text(p)}<br>"
                     f"cost {fmt_usd(p.cost_usd)} ({fmt_usd(p.cost_per_1k_items)}/1k items)<br>"
                     f"latency {fmt_seconds(p.latency_s)}")
            pts.append(PanelPoint(p.label, x, p.quality, p.ci_low, p.ci_high,
                                  bool(getattr(p, f"on_{name}_frontier")), hover))
        return Panel(title, x_label, pts)

    return [
        panel("quality vs cost", "cost_per_1k_items", "cost", "$ per 1k items"),
        panel("quality vs latency", "latency_s", "latency", f"latency {result.latency} (s)"),
    ]


def run_pareto(
    refs: Sequence[str],
    *,
    db: str | None = None,
    task: str | None = None,
    metric: str | None = None,
    latency: str = "p50",
    out: Path = Path("pareto"),
    gpu_hour_cost: float | None = None,
    prices: Path | None = None,
    console: Console | None = None,
    notes: Console | None = None,
) -> ParetoResult:
    result = collect(refs, db=db, task=task, metric=metric, latency=latency,
                     gpu_hour_cost=gpu_hour_cost, prices=prices, notes=notes)
    out.mkdir(parents=True, exist_ok=True)
    title = f"gapmeter pareto: {result.scope or 'mean of top-level tasks'} ({result.metric})"
    y_label = result.metric + ("" if result.higher_is_better else " (lower is better)")
    panels = _panels(result)
    html_path, png_path, json_path = out / "pareto.html", out / "pareto.png", out / "pareto.json"
    atomic_write(html_path, html_figure(title, y_label, panels))
    tmp_png = png_path.with_name(f".{png_path.name}.tmp")
    write_png(tmp_png, title, y_label, panels)
    tmp_png.replace(png_path)
    atomic_write(json_path, json.dumps(result.to_json(), indent=2))
    result.files = {"html": str(html_path), "png": str(png_path), "json": str(json_path)}
    if console is not None:
        print_pareto(result, console)
    return result
