"""Tables printed to the terminal: a run's scores with CIs, and the stored runs."""

from __future__ import annotations

from typing import Any

from rich.console import Console, JustifyMethod
from rich.table import Table
from sqlalchemy import select

from gapmeter.efficiency.report import print_efficiency
from gapmeter.efficiency.run import RunEfficiency
from gapmeter.outcomes import MetricResult, RunOutcome
from gapmeter.render import print_table, redact_url
from gapmeter.store.db import open_store
from gapmeter.store.models import MetricValue, Run


def fmt_metric(m: MetricResult) -> tuple[str, str, str]:
    value = f"{m.value:.4f}"
    se = "N/A" if m.stderr is None else f"{m.stderr:.4f}"
    if m.clustered_stderr is not None:
        se += f" (clustered {m.clustered_stderr:.4f}, {m.n_clusters} clusters)"
    ci = m.ci95
    ci_text = "" if ci is None else f"[{ci[0]:.4f}, {ci[1]:.4f}]"
    return value, se, ci_text


def print_run_summary(outcome: RunOutcome, console: Console) -> None:
    table = Table(title=f"run {outcome.run_id} — {outcome.spec.model} {outcome.spec.model_args}")
    columns: list[tuple[str, JustifyMethod]] = [
        ("task", "left"), ("shots", "right"), ("metric", "left"), ("filter", "left"),
        ("value", "right"), ("stderr", "right"), ("95% CI", "right"), ("n", "right")]
    for col, justify in columns:
        table.add_column(col, justify=justify)
    for m in outcome.groups:
        v, se, ci = fmt_metric(m)
        table.add_row(f"[bold]{m.task}[/]", "", m.metric, m.filter, v, se, ci, str(m.n))
    for name, task in outcome.tasks.items():
        for m in task.metrics:
            v, se, ci = fmt_metric(m)
            table.add_row(name, str(task.num_fewshot), m.metric, m.filter, v, se, ci, str(m.n))
    print_table(console, table)
    if isinstance(outcome.efficiency, RunEfficiency):  # the engine's; None before it is measured
        print_efficiency(outcome.efficiency, console)
    where = f"results: {outcome.output_path}/results.json; " if outcome.output_path else ""
    console.print(
        f"{where}store: {outcome.db_url}; {outcome.computed_requests} requests computed, "
        f"{outcome.cached_requests} from cache; {outcome.wall_seconds:.1f}s"
    )


def stored_runs(db_url: str) -> list[dict[str, Any]]:
    """Every run in the store, oldest first, with all its stored metric values."""
    sessions = open_store(db_url)
    out: list[dict[str, Any]] = []
    with sessions() as s:
        for run in s.scalars(select(Run).order_by(Run.created_at)).all():
            metrics = s.scalars(select(MetricValue).where(MetricValue.run_id == run.id).order_by(MetricValue.id)).all()
            out.append({
                "id": run.id,
                "status": run.status,
                "model": run.model,
                "model_args": run.model_args,
                "tasks": list(run.tasks),
                "created_at": run.created_at.isoformat(timespec="seconds") if run.created_at else None,
                "finished_at": run.finished_at.isoformat(timespec="seconds") if run.finished_at else None,
                "wall_seconds": run.wall_seconds,
                "metrics": [{"task": m.task, "metric": m.metric, "filter": m.filter, "value": m.value,
                             "stderr": m.stderr} for m in metrics],
            })
    return out


def print_runs(db_url: str, console: Console) -> None:
    runs = stored_runs(db_url)
    if not runs:
        console.print(f"no runs stored in {redact_url(db_url)}", soft_wrap=True)
        return
    table = Table(title=f"runs in {redact_url(db_url)}")
    for col in ("run", "status", "model", "tasks", "main scores", "finished", "seconds"):
        table.add_column(col)
    for run in runs:
        main = ", ".join(
            f"{m['task']} {m['metric']}={m['value']:.3f}±{(m['stderr'] or 0):.3f}"
            for m in run["metrics"][:4]
            if m["value"] is not None
        )
        table.add_row(
            run["id"], run["status"], f"{run['model']} {run['model_args']}", ",".join(run["tasks"]), main,
            run["finished_at"] or "", f"{run['wall_seconds']:.1f}" if run["wall_seconds"] else "",
        )
    print_table(console, table)
