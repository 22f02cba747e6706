"""``gapmeter profile RUN...``: per-dimension scores with CIs, ranks with ties, radar chart.

Writes ``profile.html`` (plotly, self-contained), ``profile.png`` (matplotlib) and
``profile.json`` (the numbers) to ``--output_path``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from rich.console import Console
from rich.table import Table

from gapmeter.commands.compare import open_labelled
from gapmeter.compare.ranking import Score, rank_with_ties
from gapmeter.errors import ConfigError
from gapmeter.profile.dimensions import RunProfile, run_profile_of
from gapmeter.profile.radar import radar_axes, write_radar_html, write_radar_png
from gapmeter.render import emit_json, print_table
from gapmeter.store.results_json import atomic_write

__all__ = ["dimension_ranks", "print_profiles", "run_profile"]


def dimension_ranks(profiles: Sequence[RunProfile], dimension: str) -> dict[str, int]:
    """Run id -> rank with ties on one dimension (z-test on the dimension scores)."""
    present = [p for p in profiles if dimension in p.dimensions]
    scores = [Score(p.run_id, p.dimensions[dimension].value, p.dimensions[dimension].stderr) for p in present]
    return {r.score.name: r.rank for r in rank_with_ties(scores)}


def print_profiles(profiles: Sequence[RunProfile], console: Console) -> None:
    axes = radar_axes(profiles)
    table = Table(title="capability profile (mean of task scores, 95% CI; #rank = 1 + runs significantly better)")
    table.add_column("dimension")
    for p in profiles:
        table.add_column(p.label, justify="right")
    table.add_column("tasks")
    for dim in axes:
        ranks = dimension_ranks(profiles, dim) if len(profiles) > 1 else {}
        cells = []
        tasks: list[str] = []
        for p in profiles:
            s = p.dimensions.get(dim)
            if s is None:
                cells.append("—")
                continue
            ci = f" [{s.ci[0]:.3f}, {s.ci[1]:.3f}]" if s.ci else ""
            rank = f" #{ranks[p.run_id]}" if p.run_id in ranks else ""
            rescaled = " (rescaled)" if any(t.rescaled_from for t in s.tasks) else ""
            cells.append(f"{s.value:.3f}{ci} n={s.n_items}{rank}{rescaled}")
            tasks.extend(t.unit.name for t in s.tasks if t.unit.name not in tasks)
        table.add_row(dim, *cells, ", ".join(tasks))
    print_table(console, table)
    for p in profiles:
        for note in p.notes:
            console.print(f"note ({p.label}): {note}")


def run_profile(refs: Sequence[str], *, db: str | None, output_path: Path, console: Console,
                as_json: bool = False, metric: str | None = None) -> list[RunProfile]:
    if not refs:
        raise ConfigError("profile needs at least one run (id, id prefix or output directory)")
    runs = open_labelled(refs, db)
    profiles = [run_profile_of(r, metric=metric) for r in runs]
    if not any(p.dimensions for p in profiles):
        raise ConfigError("no task of these runs has a dimension and a 0-1 score (or a higher-is-better metric of "
                          "declared range, such as judge_score); declare `dimension:` in the task YAML")
    title = "capability profile: " + ", ".join(p.label for p in profiles)
    rescaled = sorted({t.unit.metric for p in profiles for d in p.dimensions.values() for t in d.tasks if t.rescaled_from})
    if rescaled:
        title += f" ({', '.join(rescaled)} rescaled to 0-1)"
    if not as_json:
        print_profiles(profiles, console)
    write_radar_html(profiles, output_path / "profile.html", title)
    write_radar_png(profiles, output_path / "profile.png", title)
    atomic_write(output_path / "profile.json", json.dumps([asdict(p) for p in profiles], indent=2, default=str))
    files = {"html": str(output_path / "profile.html"), "png": str(output_path / "profile.png"),
             "json": str(output_path / "profile.json")}
    if as_json:
        emit_json({"profiles": profiles, "files": files})
    else:
        console.print(f"radar chart: {files['html']}, {files['png']}; numbers: {files['json']}")
    return profiles
