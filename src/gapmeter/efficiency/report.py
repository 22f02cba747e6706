"""The efficiency table printed after a run's scores."""

from __future__ import annotations

from rich.console import Console, JustifyMethod
from rich.table import Table

from gapmeter.efficiency.run import RunEfficiency
from gapmeter.efficiency.summary import EfficiencySummary
from gapmeter.render import print_table


def fmt_seconds(x: float | None) -> str:
    if x is None:
        return "-"
    if x < 1:
        return f"{x * 1000:.1f}ms"
    return f"{x:.2f}s"


def fmt_usd(x: float | None) -> str:
    if x is None:
        return "-"
    return f"${x:.4g}" if x < 1 else f"${x:,.2f}"


def fmt_rate(x: float | None) -> str:
    return "-" if x is None else f"{x:,.1f}"


def fmt_bytes(x: int | None) -> str:
    return "-" if x is None else f"{x / 2**20:,.0f} MiB"


def _row(label: str, s: EfficiencySummary) -> list[str]:
    lat = s.latency
    tokens = "-" if s.prompt_tokens is None else f"{s.prompt_tokens:,}/{s.completion_tokens or 0:,}"
    spd = s.score_per_dollar
    return [
        label,
        str(s.n_items),
        f"{s.n_timed_requests}/{s.n_requests}" if not s.complete else str(s.n_requests),
        fmt_seconds(s.compute_seconds),
        fmt_rate(s.items_per_second),
        " / ".join(fmt_seconds(x) for x in (lat.p50, lat.p90, lat.p99)) if lat.n else "-",
        fmt_seconds(s.ttft.p50),
        tokens,
        fmt_rate(s.output_tokens_per_second),
        fmt_usd(s.cost.usd if s.cost else None),
        fmt_usd(s.cost.per_1k_items if s.cost else None),
        "-" if spd is None else f"{spd:,.3g}",
    ]


def print_efficiency(eff: RunEfficiency, console: Console) -> None:
    table = Table(title="efficiency (definitions: docs/efficiency.md)")
    columns: list[tuple[str, JustifyMethod]] = [("", "left"), ("items", "right"), ("requests", "right"), ("compute", "right"),
               ("items/s", "right"), ("latency p50/p90/p99", "right"), ("TTFT p50", "right"),
               ("tokens in/out", "right"), ("out tok/s", "right"), ("cost", "right"),
               ("$/1k items", "right"), ("score/$", "right")]
    for col, justify in columns:
        table.add_column(col, justify=justify)
    table.add_row(*_row("[bold]run[/]", eff.run))
    for name, s in eff.groups.items():
        table.add_row(*_row(f"[bold]{name}[/]", s))
    for name, s in eff.tasks.items():
        table.add_row(*_row(name, s))
    print_table(console, table)
    run = eff.run
    pricing = eff.pricing
    if pricing.gpu_hour_cost is not None:
        basis = f"cost = compute time × ${pricing.gpu_hour_cost:g}/h"
    elif pricing.price is not None:
        p = pricing.price
        basis = (f"cost = tokens × {p.name} prices (${p.price.input:g}/${p.price.output:g} per 1M in/out, "
                 f"as of {p.as_of or 'unknown'})")
    else:
        basis = "no cost: pass --gpu_hour_cost (local model) or a price for it (--prices)"
    untimed = "" if run.complete else f"; {run.n_requests - run.n_timed_requests} requests have no timing"
    fresh = eff.invocation.get("recorded_requests")
    origin = "" if fresh is None or fresh == run.n_timed_requests else (
        f" (as measured when computed; {fresh} of {run.n_timed_requests} requests in this invocation)")
    console.print(
        f"wall {fmt_seconds(run.wall_seconds)}, compute {fmt_seconds(run.compute_seconds)}{origin}; "
        f"peak memory host {fmt_bytes(run.peak_host_bytes)}, GPU {fmt_bytes(run.peak_gpu_bytes)}; "
        f"{basis}{untimed}"
    )
