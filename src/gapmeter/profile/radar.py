"""Radar charts of capability profiles: interactive HTML (plotly.js embedded, works offline) and
a PNG (matplotlib, Agg backend: no display, no browser, no kaleido/Chrome needed).

Each run is a closed polygon through its dimension scores; a lighter band shows the 95% CI.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from gapmeter.fsutil import umask_file_mode
from gapmeter.profile.dimensions import RunProfile

__all__ = ["radar_axes", "write_radar_html", "write_radar_png"]

_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]


def radar_axes(profiles: Sequence[RunProfile]) -> list[str]:
    """Dimensions any run has, in the canonical order."""
    from gapmeter.tasks.schema import DIMENSIONS

    return [d for d in DIMENSIONS if any(d in p.dimensions for p in profiles)]


def _series(p: RunProfile, axes: list[str]) -> tuple[list[float], list[float], list[float]]:
    vals, lows, highs = [], [], []
    for d in axes:
        s = p.dimensions.get(d)
        v = s.value if s else 0.0
        lo, hi = (s.ci if s and s.ci else (v, v))
        vals.append(v)
        lows.append(max(0.0, lo))
        highs.append(min(1.0, hi))
    return vals, lows, highs


def write_radar_html(profiles: Sequence[RunProfile], path: Path, title: str) -> None:
    import plotly.graph_objects as go

    from gapmeter.store.results_json import atomic_write

    axes = radar_axes(profiles)
    closed = [*axes, axes[0]]
    fig = go.Figure()
    for i, p in enumerate(profiles):
        color = _COLORS[i % len(_COLORS)]
        vals, lows, highs = _series(p, axes)
        fig.add_trace(go.Scatterpolar(r=[*highs, highs[0]], theta=closed, mode="lines",
                                      line={"width": 0, "color": color}, showlegend=False, hoverinfo="skip"))
        fig.add_trace(go.Scatterpolar(r=[*lows, lows[0]], theta=closed, mode="lines", fill="tonext",
                                      line={"width": 0, "color": color}, opacity=0.25,
                                      name=f"{p.label} 95% CI", hoverinfo="skip"))
        text = [f"{d}: {v:.3f} [{lo:.3f}, {hi:.3f}]" for d, v, lo, hi in zip(axes, vals, lows, highs, strict=True)]
        fig.add_trace(go.Scatterpolar(r=[*vals, vals[0]], theta=closed, mode="lines+markers",
                                      line={"color": color, "width": 2}, name=p.label,
                                      text=[*text, text[0]], hoverinfo="text"))
    fig.update_layout(title=title, polar={"radialaxis": {"range": [0, 1]}}, template="plotly_white")
    atomic_write(path, fig.to_html(include_plotlyjs=True, full_html=True))


def write_radar_png(profiles: Sequence[RunProfile], path: Path, title: str) -> None:
    import math
    import os
    import tempfile

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    axes = radar_axes(profiles)
    angles = [2 * math.pi * i / len(axes) for i in range(len(axes))]
    closed = [*angles, angles[0]]
    fig, ax = plt.subplots(figsize=(6.4, 6.4), subplot_kw={"projection": "polar"})
    for i, p in enumerate(profiles):
        color = _COLORS[i % len(_COLORS)]
        vals, lows, highs = _series(p, axes)
        ax.fill_between(closed, [*lows, lows[0]], [*highs, highs[0]], color=color, alpha=0.2, linewidth=0)
        ax.plot(closed, [*vals, vals[0]], color=color, linewidth=2, marker="o", label=p.label)
    ax.set_xticks(angles)
    ax.set_xticklabels(axes)
    ax.set_ylim(0, 1)
    ax.set_title(title, pad=24)
    ax.legend(loc="upper right", bbox_to_anchor=(1.25, 1.12), fontsize="small")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    os.fchmod(fd, umask_file_mode())  # mkstemp makes 0600; the chart gets the umask's mode
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        Path(tmp).unlink(missing_ok=True)
