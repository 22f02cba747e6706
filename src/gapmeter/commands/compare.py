"""``gapmeter compare RUN_A RUN_B [RUN...]``: which differences between runs are real.

Two runs: one row per task with the paired difference, its CI, the Holm-adjusted p-value, the
minimum detectable difference and a verdict. More runs: standings (score, CI, n and rank with
ties per task), then each run against the first. Runs that contain prompt variants also get a
prompt-sensitivity table.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console, JustifyMethod
from rich.table import Table

from gapmeter.compare.report import ComparisonReport, compare_stored
from gapmeter.compare.runs import StoredRun, open_run
from gapmeter.compare.sensitivity import SensitivityReport, prompt_sensitivity
from gapmeter.compare.standings import Standings, rank_stored
from gapmeter.errors import ConfigError
from gapmeter.render import emit_json, print_table

__all__ = [
    "open_labelled",
    "print_comparison",
    "print_run_sensitivity",
    "print_sensitivity",
    "print_standings",
    "run_compare",
]


def open_labelled(refs: Sequence[str], db: str | None) -> list[StoredRun]:
    """Open runs and make their labels unique (model name, then ``@id`` where names repeat)."""
    runs = [open_run(ref, db) for ref in refs]
    counts: dict[str, int] = {}
    for r in runs:
        counts[r.label] = counts.get(r.label, 0) + 1
    for r in runs:
        if counts[r.label] > 1:
            r.label = f"{r.label}@{r.id[:6]}"
    return runs


def _unit_name(name: str, metric: str, filter_name: str) -> tuple[str, str]:
    return name, metric if filter_name == "none" else f"{metric} [{filter_name}]"


def print_comparison(report: ComparisonReport, console: Console) -> None:
    a, b = report.run_a.label, report.run_b.label
    pct = round(report.level * 100)
    table = Table(title=f"{a} vs {b}: paired differences on shared items ({pct}% CI, Holm across rows)")
    columns: list[tuple[str, JustifyMethod]] = [
        ("task", "left"), ("metric", "left"), ("n", "right"), (a, "right"), (b, "right"),
        (f"Δ {a}−{b} [{pct}% CI]", "right"), ("p (Holm)", "right"), ("test", "left"),
        ("MDE 80%", "right"), ("verdict", "left")]
    for col, justify in columns:
        table.add_column(col, justify=justify)
    for row in report.rows:
        r = row.result
        rank_a = 2 if row.verdict == "worse" else 1
        rank_b = 2 if row.verdict == "better" else 1
        task, metric = _unit_name(row.unit.name, row.unit.metric, row.unit.filter)
        n = str(r.n) + (f" ({r.n_clusters} clusters)" if r.n_clusters else "")
        if row.only_a or row.only_b:
            n += f" +{row.only_a}/{row.only_b} unpaired"
        verdict = {"better": f"[green]{a} better[/]", "worse": f"[red]{a} worse[/]"}.get(
            row.verdict, "no detectable difference")
        counts = f" ({r.a_only}/{r.b_only})" if r.a_only is not None and r.test == "mcnemar-midp" else ""
        table.add_row(
            task, metric, n, f"{r.score_a:.4f} #{rank_a}", f"{r.score_b:.4f} #{rank_b}",
            f"{r.diff:+.4f} [{r.ci_low:+.4f}, {r.ci_high:+.4f}]",
            f"{row.p_holm:.3g} ({r.p_value:.3g})", r.test + counts,
            "—" if row.mde is None else f"{row.mde:.4f}", verdict,
        )
    print_table(console, table)
    console.print(
        f"p: Holm-adjusted (raw in brackets) over {len(report.rows)} rows, alpha {report.alpha}; "
        "#rank: 1 + runs significantly better; MDE: smallest true |Δ| detected with 80% power at this n; "
        "mcnemar counts: items only A / only B got right. Methods: docs/statistics.md"
    )
    for note in report.notes:
        console.print(f"note: {note}")


def print_standings(standings: list[Standings], console: Console) -> None:
    if not standings:
        return
    runs = [e.run for e in standings[0].entries]
    table = Table(title="standings (95% CI; #rank = 1 + runs significantly better, paired tests)")
    table.add_column("task")
    table.add_column("metric")
    for r in runs:
        table.add_column(r.label, justify="right")
    for st in standings:
        cells = []
        for e in st.entries:
            if e.value is None:
                cells.append("—")
                continue
            ci = f" [{e.ci[0]:.3f}, {e.ci[1]:.3f}]" if e.ci else ""
            cells.append(f"{e.value:.4f}{ci} n={e.n} #{e.rank}")
        table.add_row(*_unit_name(st.unit.name, st.unit.metric, st.unit.filter), *cells)
    print_table(console, table)


def run_compare(refs: Sequence[str], *, db: str | None, metric: str | None, subtasks: bool,
                alpha: float, iters: int, seed: int, console: Console, as_json: bool = False) -> None:
    if len(refs) < 2:
        raise ConfigError("compare needs at least two runs (ids, id prefixes or output directories)")
    if not 0 < alpha < 1:
        raise ConfigError(f"--alpha {alpha}: must be between 0 and 1")
    runs = open_labelled(refs, db)
    # Everything is computed before anything is printed: an error leaves no half table.
    reports = [compare_stored(runs[0], other, metric=metric, subtasks=subtasks, alpha=alpha,
                              iters=iters, seed=seed) for other in runs[1:]]
    standings = rank_stored(runs, metric=metric, subtasks=subtasks, alpha=alpha, iters=iters,
                            seed=seed) if len(runs) > 2 else []
    sensitivity = prompt_sensitivity(runs, alpha=alpha, iters=iters, seed=seed)
    if as_json:
        emit_json({"comparisons": reports, "standings": standings, "prompt_sensitivity": sensitivity})
        return
    if standings:
        print_standings(standings, console)
    for report in reports:
        print_comparison(report, console)
    if sensitivity:
        print_sensitivity(sensitivity, console)


def print_sensitivity(reports: list[SensitivityReport], console: Console) -> None:
    for rep in reports:
        multi = len(rep.models) > 1
        table = Table(title=f"prompt sensitivity: {rep.base} under {len(rep.formats)} formats "
                      "(default = the task's own prompt, lm-eval 0.4.13's for built-ins)")
        table.add_column("model")
        for fmt in rep.formats:
            table.add_column(fmt, justify="right")
        for col in ("mean", "min", "max", "spread (best−worst, p)"):
            table.add_column(col, justify="right")
        for m in rep.models:
            by_format = {s.format: s for s in m.scores}
            cells = []
            for fmt in rep.formats:
                sc = by_format.get(fmt)
                if sc is None:
                    cells.append("—")
                    continue
                ci = f" [{sc.ci[0]:.3f}, {sc.ci[1]:.3f}]" if sc.ci else ""
                rank = f" #{sc.rank}" if multi else ""
                cells.append(f"{sc.value:.3f}{ci} n={sc.n}{rank}")
            p = f" (p={m.spread_test.p_value:.3g})" if m.spread_test is not None else ""
            table.add_row(m.run.label, *cells, f"{m.mean:.3f}", f"{m.min:.3f}", f"{m.max:.3f}",
                          f"{m.spread:.3f}{p}")
        print_table(console, table)
        if multi:
            verdict = "yes" if rep.ranking_changes else "no"
            order = "changes" if rep.order_changes else "is the same"
            console.print(f"{rep.base}: ranking (with ties) changes across formats: {verdict}; "
                          f"the order of point estimates {order} across formats")


def print_run_sensitivity(run_id: str, db_url: str, console: Console) -> None:
    """After ``gapmeter run --prompt_variants``: the spread of this one model across formats."""
    run = open_run(run_id, db_url)
    print_sensitivity(prompt_sensitivity([run]), console)
