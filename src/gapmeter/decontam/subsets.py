"""Scores on the clean vs the dirty subsets of a benchmark, with a significance test.

``gapmeter run --subsets FILE`` (FILE from ``gapmeter decontaminate``) splits each task's
per-doc scores by subset and reports, per rule and metric:

- each subset's size and mean, and Llama 2's statistic (Touvron et al. 2023, app. A.6)
  ``Z = (mean_subset - mean_all) / sigma_n``, where ``sigma_n`` is the standard deviation of
  the mean of ``n`` docs drawn at random without replacement from the task
  (``sd_all / sqrt(n) * sqrt((N - n) / (N - 1))``); Llama 2 calls a dataset affected only when
  clean and not-dirty are below the mean and not-clean and dirty above it, all with |Z| > 2;
- the dirty-minus-clean difference with a percentile-bootstrap 95% CI (resampling docs within
  each subset) and Welch's two-sample t-test p-value;
- GPT-3's relative change of the clean subset's score against the whole set.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import stats

from gapmeter.errors import DataError
from gapmeter.render import print_table

if TYPE_CHECKING:
    from gapmeter.engine.evaluate import RunOutcome

LLAMA2_SUBSETS = ("clean", "not_clean", "not_dirty", "dirty")


@dataclass(frozen=True)
class Membership:
    doc_hash: str
    subsets: frozenset[str]


def read_subsets(path: Path) -> dict[tuple[str, int], Membership]:
    """``{(task, doc_id): Membership}`` from a ``subsets.jsonl`` file."""
    if not path.is_file():
        raise DataError(f"--subsets {path}: no such file (make one with `gapmeter decontaminate`)")
    out: dict[tuple[str, int], Membership] = {}
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                key = (str(row["task"]), int(row["doc_id"]))
                subsets = row["subsets"]
                if not isinstance(subsets, list):
                    raise TypeError("subsets must be a list")
            except (ValueError, KeyError, TypeError) as err:
                raise DataError(f"{path}:{lineno}: expected {{task, doc_id, subsets: [...]}} ({err})") from None
            out[key] = Membership(str(row.get("doc_hash", "")), frozenset(map(str, subsets)))
    return out


@dataclass
class SubsetScore:
    name: str
    n: int
    mean: float
    z: float | None  # Llama 2's Z against the whole task


@dataclass
class SubsetComparison:
    task: str
    rule: str
    metric: str
    filter: str
    n_all: int
    mean_all: float
    subsets: list[SubsetScore]
    diff: float | None = None  # dirty - clean
    diff_ci95: tuple[float, float] | None = None
    p_welch: float | None = None
    clean_vs_all_relative: float | None = None  # GPT-3's "relative difference"
    llama2_affected: bool | None = None
    notes: list[str] = field(default_factory=list)


def compare(
    outcome: RunOutcome,
    membership: dict[tuple[str, int], Membership],
    *,
    bootstrap_iters: int = 10_000,
    seed: int = 1234,
) -> list[SubsetComparison]:
    from gapmeter.requests import doc_hash

    out: list[SubsetComparison] = []
    for name, task in outcome.tasks.items():
        labels: list[frozenset[str] | None] = []
        for plan in task.plans:
            m = membership.get((name, plan.doc_id))
            if m is not None and m.doc_hash and m.doc_hash != doc_hash(plan.doc):
                raise DataError(
                    f"--subsets: task {name} doc {plan.doc_id}: the subsets file was made for a "
                    "different document (doc_hash differs); run `gapmeter decontaminate` again"
                )
            labels.append(None if m is None else m.subsets)
        if all(x is None for x in labels) or not task.scores:
            continue
        rules = sorted({s.split(":", 1)[0] for x in labels if x for s in x if ":" in s})
        for filt, metrics in task.scores[0].metrics.items():
            for metric, first in metrics.items():
                if not isinstance(first, int | float):
                    continue
                values = np.array([float(s.metrics[filt][metric]) for s in task.scores])
                for rule in rules:
                    out.append(_compare_rule(name, rule, metric, filt, values, labels,
                                             bootstrap_iters, seed))
    return out


def _compare_rule(
    task: str, rule: str, metric: str, filt: str, values: np.ndarray,
    labels: list[frozenset[str] | None], iters: int, seed: int,
) -> SubsetComparison:
    labelled = np.array([x is not None and any(s.startswith(rule + ":") for s in x) for x in labels])
    v_all = values[labelled]
    n_all = int(v_all.size)
    mu = float(v_all.mean())
    sd = float(v_all.std(ddof=1)) if n_all > 1 else 0.0
    names = LLAMA2_SUBSETS if rule == "llama2" else ("clean", "dirty")
    comp = SubsetComparison(task, rule, metric, filt, n_all, mu, [])
    if n_all < len(labels):
        comp.notes.append(f"{len(labels) - n_all} docs not in the subsets file were left out")
    groups: dict[str, np.ndarray] = {}
    for sub in names:
        mask = np.array([x is not None and f"{rule}:{sub}" in x for x in labels])
        g = values[mask]
        groups[sub] = g
        comp.subsets.append(SubsetScore(sub, int(g.size), float(g.mean()) if g.size else math.nan,
                                        _llama2_z(float(g.mean()), g.size, mu, sd, n_all) if g.size else None))
    clean, dirty = groups["clean"], groups["dirty"]
    if clean.size and dirty.size:
        comp.diff = float(dirty.mean() - clean.mean())
        comp.diff_ci95 = _bootstrap_diff_ci(clean, dirty, iters, seed)
        if clean.size > 1 and dirty.size > 1 and (clean.var() > 0 or dirty.var() > 0):
            comp.p_welch = float(stats.ttest_ind(dirty, clean, equal_var=False).pvalue)
    else:
        comp.notes.append("no dirty docs" if not dirty.size else "no clean docs")
    if clean.size and mu != 0:
        comp.clean_vs_all_relative = float((clean.mean() - mu) / abs(mu))
    if rule == "llama2":
        z = {s.name: s.z for s in comp.subsets}
        if any(z[k] is None for k in LLAMA2_SUBSETS):
            comp.llama2_affected = False
        else:
            comp.llama2_affected = bool(
                z["clean"] < -2 and z["not_dirty"] < -2 and z["not_clean"] > 2 and z["dirty"] > 2
            )
    return comp


def _llama2_z(mean: float, n: int, mu: float, sd: float, n_all: int) -> float | None:
    if n == 0 or sd == 0 or n_all < 2:
        return None
    sigma_n = sd / math.sqrt(n) * math.sqrt(max(0, n_all - n) / (n_all - 1))
    if sigma_n == 0:
        return None  # the subset is the whole set
    return (mean - mu) / sigma_n


def _bootstrap_diff_ci(clean: np.ndarray, dirty: np.ndarray, iters: int, seed: int) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    diffs = np.empty(iters)
    chunk = max(1, 2_000_000 // max(clean.size, dirty.size, 1))  # bounded memory per step
    for start in range(0, iters, chunk):
        k = min(chunk, iters - start)
        c = clean[rng.integers(0, clean.size, size=(k, clean.size))].mean(axis=1)
        d = dirty[rng.integers(0, dirty.size, size=(k, dirty.size))].mean(axis=1)
        diffs[start : start + k] = d - c
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return float(lo), float(hi)


def to_json(comparisons: list[SubsetComparison]) -> list[dict[str, Any]]:
    return [asdict(c) for c in comparisons]


def write_report(comparisons: list[SubsetComparison], output_path: Path) -> Path:
    path = output_path / "subsets_report.json"
    tmp = path.with_suffix(".partial")
    tmp.write_text(json.dumps(to_json(comparisons), indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def print_report(comparisons: list[SubsetComparison], console: Any) -> None:
    from rich.table import Table

    if not comparisons:
        console.print("--subsets: no task of this run has docs in the subsets file")
        return
    table = Table(title="clean vs dirty subsets")
    for col in ("task", "rule", "metric", "all", "clean", "dirty", "dirty − clean [95% CI]", "p (Welch)", "Llama-2 Z (clean/not clean/not dirty/dirty)"):
        table.add_column(col, justify="left" if col in ("task", "rule", "metric") else "right")
    for c in comparisons:
        by = {s.name: s for s in c.subsets}

        def cell(name: str, by: dict = by) -> str:
            s = by.get(name)
            return "—" if s is None or not s.n else f"{s.mean:.4f} (n={s.n})"

        ci = c.diff_ci95
        diff = "—" if c.diff is None or ci is None else f"{c.diff:+.4f} [{ci[0]:+.4f}, {ci[1]:+.4f}]"
        p = "—" if c.p_welch is None else f"{c.p_welch:.3g}"
        zs = ""
        if c.rule == "llama2":
            zs = " / ".join("—" if by[k].z is None else f"{by[k].z:+.2f}" for k in LLAMA2_SUBSETS)
            zs += "  affected" if c.llama2_affected else ""
        table.add_row(c.task, c.rule, f"{c.metric},{c.filter}", f"{c.mean_all:.4f} (n={c.n_all})",
                      cell("clean"), cell("dirty"), diff, p, zs)
    print_table(console, table)
