"""``gapmeter sweep SWEEP.yaml``: run a grid of models × tasks × options into one store, then
print each job and the standings (``compare``) of the models on every task and option set."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from rich.console import Console
from rich.table import Table

from gapmeter.commands.compare import open_labelled, print_standings
from gapmeter.compare.standings import rank_stored
from gapmeter.executors.sweep_config import expand, load_sweep
from gapmeter.executors.sweep_run import JobResult, run_jobs
from gapmeter.render import print_table


def run_sweep(path: Path, *, executor: str | None, console: Console) -> list[JobResult]:
    sweep = load_sweep(path)
    chosen = executor or sweep.executor
    if chosen not in ("local", "ray"):
        from gapmeter.errors import ConfigError

        raise ConfigError(f"--executor {chosen!r}: use local or ray")
    if chosen == "ray":
        from gapmeter.executors.ray_import import import_ray

        import_ray()
    jobs = expand(sweep)

    def said(result: JobResult) -> None:
        console.print(f"done {result.label}: run {result.run_id}, {result.computed_requests} requests computed, "
                      f"{result.cached_requests} from cache", highlight=False)

    results = run_jobs(sweep, jobs, executor=chosen, on_result=said)
    table = Table(title=f"sweep {path.name}: {len(jobs)} jobs ({chosen})")
    for col in ("job", "run id", "computed", "cached"):
        table.add_column(col)
    for r in results:
        table.add_row(r.label, r.run_id, str(r.computed_requests), str(r.cached_requests))
    print_table(console, table)

    by_group: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for job, r in zip(jobs, results, strict=True):
        by_group[job.group].append((job.model_name, r.run_id))
    db = jobs[0].spec.db
    for group, members in by_group.items():
        if len(members) < 2:
            continue
        runs = open_labelled([run_id for _, run_id in members], db)
        for run, (name, _) in zip(runs, members, strict=True):
            run.label = name
        console.print(f"[bold]{group}[/]")
        print_standings(rank_stored(runs, iters=1000), console)
    return results
