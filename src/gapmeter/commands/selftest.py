"""``gapmeter selftest contamination``: run the planted-contamination self-test and print its tables.

Prints (and writes to ``OUTPUT/selftest.md``, next to the full ``selftest.json``) the power of
every detector and of the combined verdict per arm and contamination level k, the false-positive
rate on the negative controls, and the estimated vs true inflation, without a baseline and with each
baseline of the difficulty adjustment (the placebo twin, the plant-free model).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.console import Console

from gapmeter.audit.runner import DETECTORS
from gapmeter.errors import ConfigError
from gapmeter.selftest.design import PRESETS, preset
from gapmeter.selftest.train import SIZES
from gapmeter.tasks import sources

SHORT = {
    "oren_exchangeability": "Oren",
    "min_k": "Min-K%",
    "min_k_plus_plus": "Min-K%++",
    "perturbation_gap": "perturb.",
    "ts_guessing": "TS-Guess",
    "guided_vs_general": "guided/general",
    "oren_t_test": "Oren (t-test, before issue 20)",
}


def run_selftest_command(
    output_path: Path, *, preset: str = "cpu", benchmark: str | None = None, seeds: str | None = None,
    size: str | None = None, device: str = "cpu", console: Console | None = None,
) -> dict[str, Any]:
    from gapmeter.selftest.run import run_selftest

    console = console or Console()
    if preset == "oren":
        return run_oren_check_command(output_path, seeds=seeds, device=device, console=console)
    if preset not in PRESETS:
        raise ConfigError(f"--preset {preset!r}: choose one of {', '.join(PRESETS)}")
    if size is not None and size not in SIZES:
        raise ConfigError(f"--size {size!r}: choose one of {', '.join(SIZES)}")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"--device {device}: CUDA is not available on this machine")
    seed_tuple = None
    if seeds:
        try:
            seed_tuple = tuple(int(s) for s in seeds.split(",") if s.strip())
        except ValueError:
            raise ConfigError(f"--seeds {seeds!r}: expected integers like 0,1,2") from None
    p = _preset(preset, benchmark=benchmark, seeds=seed_tuple, size=size)
    t0 = time.perf_counter()
    result = run_selftest(p, output_path, sources.data_dir(), device=device, threads=1 if device == "cpu" else None,
                          log=lambda m: console.print(m, highlight=False))
    md = markdown_tables(result)
    (output_path / "selftest.md").write_text(md)
    console.print(md, highlight=False, markup=False)
    console.print(f"done in {time.perf_counter() - t0:.0f}s; rows: {output_path / 'selftest.json'}")
    return result


def run_oren_check_command(output_path: Path, *, seeds: str | None = None, device: str = "cpu",
                           console: Console | None = None) -> dict[str, Any]:
    """``--preset oren``: Oren's test on random orders tested as canonical (true nulls; no planting).

    Trains nothing but a one-epoch tiny model, then reports the rejection rates of the audit's
    randomization test and of Oren et al.'s t-test at α = 0.01/0.05/0.1 per shard size
    (``selftest/oren_null.py``; docs/audit.md). A few minutes on 2 CPU cores.
    """
    from gapmeter.selftest.oren_null import run_check

    console = console or Console()
    seed = int(seeds.split(",")[0]) if seeds else 0
    result = run_check(output_path, sources.data_dir(), seed=seed, device=device,
                       threads=1 if device == "cpu" else None, log=lambda m: console.print(m, highlight=False))
    console.print((output_path / "oren_null.md").read_text(), highlight=False, markup=False)
    console.print(f"done in {result['seconds']:.0f}s; rows: {output_path / 'oren_null.json'}")
    return result


def merge_selftest_command(dirs: list[Path], output_path: Path, *, console: Console | None = None) -> dict[str, Any]:
    """One table from self-test runs made separately (e.g. one seed per process or machine)."""
    import json

    from gapmeter.audit.config import AuditConfig
    from gapmeter.selftest.run import summarise

    console = console or Console()
    results = []
    for d in dirs:
        path = d / "selftest.json"
        if not path.is_file():
            raise ConfigError(f"{path}: no selftest.json there (run `gapmeter selftest contamination` first)")
        results.append(json.loads(path.read_text()))
    keys = ("benchmark", "size", "epochs", "group_size", "reference_size", "levels", "arms", "replicates")
    first = results[0]["preset"]
    for d, r in zip(dirs, results, strict=True):
        diff = [k for k in keys if r["preset"].get(k) != first.get(k)]
        if diff:
            raise ConfigError(f"{d}: preset differs from {dirs[0]} in {', '.join(diff)}; only runs of one design merge")
    seeds = [s for r in results for s in r["preset"]["seeds"]]
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"seed(s) {sorted({s for s in seeds if seeds.count(s) > 1})} appear in more than one run")
    rows = [_row(row) for r in results for row in r["rows"]]
    merged = {
        "preset": {**first, "seeds": sorted(seeds)},
        "device": ", ".join(sorted({r["device"] for r in results})),
        "seconds": sum(r["seconds"] for r in results),
        "seeds": [i for r in results for i in r["seeds"]],
        "summary": summarise(rows, AuditConfig().alpha),
        "rows": [row for r in results for row in r["rows"]],
        "merged_from": [str(d) for d in dirs],
    }
    output_path.mkdir(parents=True, exist_ok=True)
    (output_path / "selftest.json").write_text(json.dumps(merged, indent=2, default=str))
    md = markdown_tables(merged)
    (output_path / "selftest.md").write_text(md)
    console.print(md, highlight=False, markup=False)
    return merged


def _row(row: dict[str, Any]) -> Any:
    """A ``selftest.json`` row back as a ``Row`` (JSON made its pairs lists; older runs lack the
    adjusted columns, which then stay empty)."""
    from gapmeter.selftest.run import Row

    pairs = {k: {name: tuple(v) for name, v in row.get(k, {}).items()} for k in ("inflation_adjusted_ci", "mean_scores")}
    return Row(**{**row, **pairs, "inflation_ci": tuple(row["inflation_ci"]) if row["inflation_ci"] else None})


def _preset(name: str, **overrides: Any):  # noqa: ANN202
    return preset(name, **overrides)


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.0f}%"


def markdown_tables(result: dict[str, Any]) -> str:
    s = result["summary"]
    p = result["preset"]
    dets = list(DETECTORS)
    if any(e.get("oren_t_test") is not None for e in [*s["power"], *s["controls"].values()]):
        dets.insert(1, "oren_t_test")
    head = ["arm", "k", "tests", *[SHORT[d] for d in dets], "verdict: contaminated", "≥ suspicious"]
    lines = [
        f"Self-test: benchmark {p['benchmark']}, seeds {p['seeds']}, model {p['size']}, {p['epochs']} epochs, "
        f"groups of {p['group_size']} items, reference {p['reference_size']} items, device {result['device']}, "
        f"{result['seconds']:.0f}s. Rejection rates at α = {s['alpha']} (detector columns: uncorrected; "
        "verdict: Holm over the detectors of the audit).",
        "",
        "Power (share of planted groups flagged):",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for e in s["power"]:
        cells = [e["arm"], str(e["k"]), str(e["n_tests"]), *[_pct(e.get(d)) for d in dets], _pct(e["verdict"]), _pct(e["suspicious_or_worse"])]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "False-positive rate on negative controls:", "", "| controls | tests | " + " | ".join(SHORT[d] for d in dets) + " | verdict: contaminated | ≥ suspicious |", "|" + "---|" * (len(dets) + 4)]
    for label, e in s["controls"].items():
        lines.append(f"| {label} | {e['n_tests']} | " + " | ".join(_pct(e.get(d)) for d in dets) + f" | {_pct(e['verdict'])} | {_pct(e['suspicious_or_worse'])} |")
    lines += ["", "Inflation (accuracy points; true = contaminated − clean twin on the same items; estimate = group − reference):", "",
              "| arm | k | true gain | estimated | mean abs error | 95% CI covers truth |", "|---|---|---|---|---|---|"]
    for e in s["power"]:
        if "true_gain" in e:
            lines.append(f"| {e['arm']} | {e['k']} | {100 * e['true_gain']:+.1f} | {100 * e['estimated_inflation']:+.1f} | {100 * e['mean_abs_error']:.1f} | {_pct(e['ci_covers_truth'])} |")
    for label, e in s["controls"].items():
        if "true_gain" in e:
            lines.append(f"| {label} | 0 | {100 * e['true_gain']:+.1f} | {100 * e['estimated_inflation']:+.1f} | {100 * e['mean_abs_error']:.1f} | |")
    lines += _baseline_tables(s)
    errs = s.get("inflation_error", {})
    if errs:
        lines += ["", "Inflation error pooled over groups (estimate − true gain, points; 95% t interval):", "",
                  "| groups | n | mean error | 95% CI | mean abs error |", "|---|---|---|---|---|"]
        for label, e in errs.items():
            if e.get("n_groups"):
                lo, hi = e["ci"]
                lines.append(f"| {label} | {e['n_groups']} | {100 * e['mean_error']:+.1f} | [{100 * lo:+.1f}, {100 * hi:+.1f}] | {100 * e['mean_abs_error']:.1f} |")
    return "\n".join(lines) + "\n"


def _baseline_tables(s: dict[str, Any]) -> list[str]:
    """Inflation error with and without a baseline (the difficulty adjustment), per cell and pooled."""
    cells = [(f"{e['arm']} | {e['k']}", e["inflation_by_baseline"]) for e in s["power"] if e.get("inflation_by_baseline")]
    cells += [(f"{label} | 0", e["inflation_by_baseline"]) for label, e in s["controls"].items() if e.get("inflation_by_baseline")]
    names = list(dict.fromkeys(n for _, by in cells for n in by))
    if len(names) < 2:  # no baseline ran (older runs, or no twin to measure the truth against)
        return []
    lines = ["", "Inflation error with and without a baseline (estimate − true gain, points; CI: the estimate's 95% "
             "interval covers the true gain; baselines: `gapmeter audit --baseline_model`'s adjustment, one baseline each):", "",
             "| arm | k | groups | " + " | ".join(f"{n}: mean error | {n}: mean abs error | {n}: CI covers" for n in names) + " |",
             "|" + "---|" * (3 + 3 * len(names))]
    for head, by in cells:
        n_groups = max(e["n_groups"] for e in by.values())
        parts = []
        for n in names:
            e = by.get(n)
            parts += ["—"] * 3 if e is None else [f"{100 * e['mean_error']:+.1f}", f"{100 * e['mean_abs_error']:.1f}", _pct(e["ci_covers_truth"])]
        lines.append(f"| {head} | {n_groups} | " + " | ".join(parts) + " |")
    pooled = s.get("inflation_error_by_baseline", {})
    if pooled:
        lines += ["", "Pooled over groups, with and without a baseline (95% t interval of the mean error over groups, "
                  "which treats groups as independent; the groups of one seed share its reference items, so the "
                  "mean error per seed is given too):", "",
                  "| estimate | groups | n | mean error | 95% CI | mean abs error | CI covers truth | mean error per seed |",
                  "|---|---|---|---|---|---|---|---|"]
        for n in names:
            for label, e in pooled.get(n, {}).items():
                if e.get("n_groups"):
                    lo, hi = e["ci"]
                    per_seed = ", ".join(f"{seed}: {100 * x:+.1f}" for seed, x in e.get("mean_error_by_seed", {}).items())
                    lines.append(f"| {n} | {label} | {e['n_groups']} | {100 * e['mean_error']:+.1f} | [{100 * lo:+.1f}, {100 * hi:+.1f}] | "
                                 f"{100 * e['mean_abs_error']:.1f} | {_pct(e['ci_covers_truth'])} | {per_seed} |")
    return lines
