"""``gapmeter demo``: two small models trained here in seconds, evaluated side by side.

Needs no downloads: the models learn 2-digit arithmetic from generated text, the tasks are
generated (``arith_mc`` by loglikelihood, ``arith_gen`` by generation), and any benchmark whose
files are in the data dir is added with a small limit. Both runs land in one store, so
``gapmeter runs`` lists them afterwards; running the demo again reuses the trained models and the
cached responses.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from gapmeter.demo.train import torch_threads
from gapmeter.engine.evaluate import RunOutcome, evaluate
from gapmeter.engine.progress import Reporter
from gapmeter.errors import GapmeterError
from gapmeter.spec import RunSpec
from gapmeter.tasks import sources

if TYPE_CHECKING:
    from gapmeter.compare.report import ComparisonRow
    from gapmeter.tasks.task import Task

DEMO_SIZES = ("small", "large")
# The README's benchmarks; the demo scores each one whose files are in the data dir.
BENCHMARKS = (
    "arc_easy", "arc_challenge", "hellaswag", "mmlu", "truthfulqa_mc1", "truthfulqa_mc2",
    "winogrande", "gsm8k", "piqa", "boolq", "openbookqa", "agieval_en",
)
# Docs per benchmark task (per subject for MMLU's 57, per set for AGIEval's 8): enough to show
# the pipeline and both models near chance on English (they only know digits), small enough to
# keep the whole demo within a minute on 2 cores.
BENCHMARK_LIMIT = 4


@dataclass
class DemoModel:
    size: str
    path: Path
    train_seconds: float
    parameters: int


def _train(out: Path, size: str, seed: int, console: Console) -> DemoModel:
    from gapmeter.demo.train import train_arith_lm

    path = out / "models" / size
    marker = path / "config.json"
    if marker.exists():
        import json

        cfg = json.loads(marker.read_text())
        console.print(f"model [bold]{size}[/] already trained at {path} (reusing)")
        params = int(cfg.get("gapmeter_num_parameters", 0))
        return DemoModel(size, path, 0.0, params)
    t0 = time.perf_counter()
    with Progress(
        TextColumn(f"training the [bold]{size}[/] model"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("train", total=None, loss="-")

        def progress(step: int, total: int, loss: float) -> None:
            bar.update(task, completed=step, total=total, loss=f"{loss:.3f}")

        report = train_arith_lm(path, size=size, seed=seed, progress=progress)
    return DemoModel(size, path, time.perf_counter() - t0, int(report.parameters))


def benchmarks_found(root: Path) -> list[str]:
    """The benchmarks of ``BENCHMARKS`` whose every task has its local files under ``root``."""
    from gapmeter.engine.plan import resolve_tasks
    from gapmeter.tasks.registry import TaskRegistry

    registry = TaskRegistry.load()
    found = []
    for name in BENCHMARKS:
        plan = resolve_tasks(registry, [name], num_fewshot=None, data_dir=root)
        if all(_has_local_files(leaf.task, leaf.num_fewshot, root) for leaf in plan.leaves.values()):
            found.append(name)
    return found


def _has_local_files(task: Task, shots: int, root: Path) -> bool:
    """Whether one local layout of ``task`` has every file its evaluation needs (cheap: no
    file is read, so a 57-subject benchmark costs 57 ``stat`` calls)."""
    splits = {task.config.eval_split}
    if shots:
        splits.add(task._fewshot_split_name())  # noqa: SLF001 - lm-eval's rule, kept in one place
    for layout in task.config.source.local_layouts():
        rels = [layout.files.get(s) for s in splits]
        if all(r is not None for r in rels) and all(
            (root / p).exists() for r in rels for p in ([r] if isinstance(r, str) else r)
        ):
            return True
    return False


def run_demo(out: Path, *, seed: int = 0, device: str = "cpu", console: Console | None = None) -> list[RunOutcome]:
    console = console or Console()
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    models = [_train(out, size, seed, console) for size in DEMO_SIZES]
    tasks = ["arith_mc", "arith_gen"]
    root = sources.data_dir()
    extras = benchmarks_found(root) if root.is_dir() else []
    if not extras:
        console.print(f"no benchmark files under {root}: generated tasks only (set GAPMETER_DATA_DIR)")
    db = f"sqlite:///{(out / 'gapmeter.sqlite').resolve()}"
    outcomes = []
    # Same reason as in training: these models are tiny, so a second thread adds contention, not speed.
    with torch_threads(1):
        for m in models:
            spec = RunSpec(
                model="hf",
                model_args=f"pretrained={m.path},dtype=float32",
                tasks=tuple(tasks),
                batch_size="auto",
                device=device,
                output_path=out / "results" / m.size,
                log_samples=True,
                db=db,
            )
            console.print(f"evaluating [bold]{m.size}[/] on {', '.join(tasks)}")
            outcomes.append(evaluate(spec, reporter=Reporter(enabled=True)))
            if extras:
                spec_extra = RunSpec(
                    model="hf",
                    model_args=f"pretrained={m.path},dtype=float32",
                    tasks=tuple(extras),
                    limit=BENCHMARK_LIMIT,
                    batch_size="auto",
                    device=device,
                    output_path=out / "results" / f"{m.size}-benchmarks",
                    log_samples=True,
                    db=db,
                )
                console.print(
                    f"evaluating [bold]{m.size}[/] on the benchmarks found in {root}: {', '.join(extras)} "
                    f"(first {BENCHMARK_LIMIT} docs of each task)"
                )
                outcomes.append(evaluate(spec_extra, reporter=Reporter(enabled=True)))
    _print_comparison(models, outcomes, console)
    console.print(
        f"done in {time.perf_counter() - started:.1f}s. Results: {out / 'results'}/*/results.json; "
        f"store: {db} (`gapmeter runs --db {out / 'gapmeter.sqlite'}`)"
    )
    return outcomes


def _paired_gaps(outcomes: list[RunOutcome]) -> dict[tuple[str, str, str], ComparisonRow]:
    """Paired tests (large vs small on the same items, Holm across tasks) per (task, metric, filter)."""
    from gapmeter.compare.report import compare_stored
    from gapmeter.compare.runs import open_run

    by_tasks: dict[tuple[str, ...], list[RunOutcome]] = {}
    for o in outcomes:
        by_tasks.setdefault(tuple(o.spec.tasks), []).append(o)
    gaps: dict[tuple[str, str, str], ComparisonRow] = {}
    for pair in by_tasks.values():
        if len(pair) != 2:
            continue
        small, large = (open_run(o.run_id, o.db_url) for o in pair)
        metrics = {m.metric for o in pair for t in o.tasks.values() for m in t.metrics}
        for metric in sorted(metrics):
            try:
                report = compare_stored(large, small, metric=metric, seed=0)
            except GapmeterError:
                continue  # a metric only some tasks have
            for row in report.rows:
                gaps[(row.unit.name, row.unit.metric, row.unit.filter)] = row
    return gaps


def _top_level_metrics(o: RunOutcome) -> dict[tuple[str, str, str], Any]:
    """One entry per (top-level task or group, metric, filter): a benchmark group such as MMLU is
    one row with its aggregate (the leaves are in results.json), not 57."""
    out: dict[tuple[str, str, str], Any] = {}
    for name in o.plan.top:
        if name in o.tasks:
            metrics = list(o.tasks[name].metrics)
        else:
            metrics = [g for g in o.groups if g.task == name]
            if not metrics:  # a group without an aggregate: its leaves
                metrics = [m for leaf in o.plan.leaves_under(name) for m in o.tasks[leaf].metrics]
        for m in metrics:
            out[(m.task, m.metric, m.filter)] = m
    return out


def _print_comparison(models: list[DemoModel], outcomes: list[RunOutcome], console: Console) -> None:
    by_model: dict[str, dict[tuple[str, str, str], Any]] = {}
    seconds: dict[str, float] = {}
    gaps = _paired_gaps(outcomes)
    for o in outcomes:
        size = Path(o.spec.model_args.split("pretrained=")[1].split(",")[0]).name
        seconds[size] = seconds.get(size, 0.0) + o.wall_seconds
        by_model.setdefault(size, {}).update(_top_level_metrics(o))
    table = Table(title="gapmeter demo: small vs large (95% CI, #rank with ties; gap: paired test, Holm)")
    table.add_column("task metric (n)")
    for m in models:
        table.add_column(f"{m.size} ({m.parameters:,} params)", justify="right")
    table.add_column("gap (large − small)", justify="right")
    for key in by_model.get(models[0].size, {}):
        row = gaps.get(key)
        # rank with ties: 1 + the number of models significantly better (paired test, Holm)
        rank = {"small": 2 if row and row.verdict == "better" else 1,
                "large": 2 if row and row.verdict == "worse" else 1}
        cells = []
        n = ""
        for m in models:
            r = by_model.get(m.size, {}).get(key)
            if r is None:
                cells.append("—")
                continue
            ci = r.ci95
            n = str(r.n)
            text = f"{r.value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else f"{r.value:.3f}"
            cells.append(f"{text} #{rank.get(m.size, 1)}")
        gap = ""
        if row is not None:
            res = row.result
            verdict = {"better": "large better", "worse": "large worse"}.get(row.verdict, "no detectable difference")
            gap = f"{res.diff:+.3f} [{res.ci_low:+.3f}, {res.ci_high:+.3f}] p={row.p_holm:.2g} ({verdict})"
        metric = f"{key[1]} [{key[2]}]" if key[2] != "none" else key[1]
        # escape: "[strict-match]" is a filter name, not rich markup
        table.add_row(*(escape(c) for c in (f"{key[0]} {metric} ({n})", *cells, gap)))
    console.print(table)
    timing = ", ".join(f"{m.size}: train {m.train_seconds:.1f}s + eval {seconds.get(m.size, 0.0):.1f}s" for m in models)
    console.print(f"time: {timing}")
