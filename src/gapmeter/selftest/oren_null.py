"""Calibration check of Oren's sharded test: random orders tested as if canonical (true nulls).

No training is needed: whatever the model, if the "canonical" order handed to the test is a
uniformly random order of the items, the null hypothesis (the canonical order is not special)
holds exactly, so the share of such tests with p < α estimates the test's false-positive rate.

Reuse of computation (the model's log-likelihood of a shard under an ordering is the expensive
part): for each *partition* (a random subset of N items in random order, cut into shards by the
audit's own rule) the log-likelihood of ``pool`` distinct orderings of every shard is computed
once, ``pool`` = the audit's permutations + 1 (all orderings when a shard has fewer). Every null
then picks, independently per shard, which pool member plays "canonical"; the rest play the
shuffled copies. A pool is a uniform random set of distinct orderings, so each null is
distributed exactly as an audit of a random order (the audit's pool is the canonical ordering
plus distinct random others). Nulls of one partition share the pool, so they are correlated for
a test whose rejection rate depends on the pool (the t-test); the interval therefore uses the
design effect estimated from the spread between partitions (Kish's effective sample size),
never less than the binomial one.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats as st

from gapmeter.audit.config import AuditConfig
from gapmeter.audit.oren import SEPARATOR, TESTS, orderings, shard_indices, shard_test
from gapmeter.audit.responses import RequestRunner
from gapmeter.requests import RollingLoglikelihoodRequest

ALPHAS = (0.01, 0.05, 0.1)
Log = Callable[[str], None]


@dataclass(frozen=True)
class Setting:
    """N items in ``shards`` shards (the audit's rule: ``min(shards, N // 2)``)."""

    items: int
    shards: int

    @property
    def label(self) -> str:
        sizes = sorted({len(s) for s in shard_indices(self.items, self.shards, 2)})
        return f"{self.items} items, {len(shard_indices(self.items, self.shards, 2))} shards of {'/'.join(map(str, sizes))}"

    @property
    def items_per_shard(self) -> int:
        return max(len(s) for s in shard_indices(self.items, self.shards, 2))


#: Shard sizes 2, 5, 10, 40. 2-item shards at the audit's 50 shards: (100, 50) is `--limit 100`,
#: (137, 50) mixes 2- and 3-item shards, (20, 50) is a 20-item task (10 shards). Larger shards
#: with fewer of them ((50, 10), (100, 10), (200, 5)): a 50-shard pool of 5- to 40-item shards
#: costs many minutes on 2 cores, and fewer shards is the harder case for a t-test (fewer
#: degrees of freedom), while the randomization test is exact at any count.
DEFAULT_SETTINGS: tuple[Setting, ...] = (
    Setting(20, 50), Setting(100, 50), Setting(137, 50), Setting(50, 10), Setting(100, 10), Setting(200, 5),
)
DEFAULT_TASKS: tuple[str, ...] = ("arc_easy", "arc_challenge", "openbookqa", "gsm8k", "mmlu_high_school_biology")


@dataclass
class Cell:
    setting: str
    items_per_shard: int
    test: str
    nulls: int = 0
    partitions: int = 0
    rejections: dict[str, int] = field(default_factory=dict)
    per_partition: dict[str, list[tuple[int, int]]] = field(default_factory=dict)  # alpha -> (hits, n)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"setting": self.setting, "items_per_shard": self.items_per_shard, "test": self.test,
                               "nulls": self.nulls, "partitions": self.partitions}
        for a in ALPHAS:
            out[f"alpha={a}"] = rate_interval(self.per_partition.get(str(a), []))
        return out


def rate_interval(parts: Sequence[tuple[int, int]]) -> dict[str, Any]:
    """Pooled rejection rate with a Clopper-Pearson 95% interval on Kish's effective n.

    The design effect is the between-partition variance of the rate over the binomial one
    (clamped at 1: nulls are never treated as more informative than independent ones).
    """
    hits = sum(h for h, _ in parts)
    n = sum(m for _, m in parts)
    if n == 0:
        return {"rate": None, "hits": 0, "n": 0}
    rate = hits / n
    deff = 1.0
    if len(parts) > 1 and 0 < rate < 1:
        # ratio-estimator variance across partitions vs the binomial variance of n independent nulls
        resid = np.array([h - rate * m for h, m in parts], dtype=float)
        var_cluster = len(parts) / (len(parts) - 1) * float(np.sum(resid**2)) / n**2
        deff = max(1.0, var_cluster / (rate * (1 - rate) / n))
    n_eff = max(1, round(n / deff))
    ci = st.binomtest(round(rate * n_eff), n_eff).proportion_ci(confidence_level=0.95, method="exact")
    return {"rate": rate, "hits": hits, "n": n, "design_effect": deff, "n_eff": n_eff, "ci95": (float(ci.low), float(ci.high))}


def shard_pools(texts: Sequence[str], setting: Setting, config: AuditConfig, runner: RequestRunner, rng: random.Random) -> list[list[float]]:
    """Log-likelihoods of a pool of distinct orderings per shard of a random N-item order."""
    chosen = rng.sample(range(len(texts)), setting.items)  # random subset in random order
    shards = [[chosen[i] for i in s] for s in shard_indices(setting.items, setting.shards, config.oren_min_items_per_shard)]
    pools = [orderings(s, config.oren_permutations, rng) for s in shards]
    lls = runner.run([RollingLoglikelihoodRequest(SEPARATOR.join(texts[i] for i in o)) for p in pools for o in p])
    out, pos = [], 0
    for p in pools:
        out.append([float(x) for x in lls[pos : pos + len(p)]])
        pos += len(p)
    return out


def null_draws(pools: Sequence[Sequence[float]], draws: int, rng: np.random.Generator) -> list[list[list[float]]]:
    """``draws`` nulls: per shard a uniformly chosen pool member moved first (the "canonical")."""
    out = []
    for _ in range(draws):
        null = []
        for p in pools:
            u = int(rng.integers(len(p)))
            null.append([p[u], *p[:u], *p[u + 1 :]])
        out.append(null)
    return out


def run_oren_null(
    task_texts: dict[str, list[str]],
    runner: RequestRunner,
    *,
    settings: Sequence[Setting] = DEFAULT_SETTINGS,
    partitions: int = 4,
    draws: int = 50,
    config: AuditConfig | None = None,
    tests: Sequence[str] = TESTS,
    seed: int = 0,
    log: Log = lambda m: None,
) -> dict[str, Any]:
    """Rejection rates of each test on ``len(tasks) × partitions × draws`` nulls per setting."""
    config = config or AuditConfig()
    started = time.perf_counter()
    cells: dict[tuple[str, str], Cell] = {}
    for setting in settings:
        t0 = time.perf_counter()
        for task, texts in task_texts.items():
            if len(texts) < setting.items:
                log(f"  {task}: {len(texts)} items < {setting.items}, skipped for {setting.label}")
                continue
            for part in range(partitions):
                rng = random.Random(f"oren-null/{seed}/{task}/{setting.items}/{setting.shards}/{part}")
                pools = shard_pools(texts, setting, config, runner, rng)
                nrng = np.random.default_rng(rng.getrandbits(64))
                nulls = null_draws(pools, draws, nrng)
                for test in tests:
                    cell = cells.setdefault((setting.label, test), Cell(setting.label, setting.items_per_shard, test))
                    ps = [shard_test(n, test, n_resamples=config.oren_resamples, seed=f"{task}/{part}/{i}").p_value
                          for i, n in enumerate(nulls)]
                    cell.nulls += len(ps)
                    cell.partitions += 1
                    for a in ALPHAS:
                        cell.per_partition.setdefault(str(a), []).append((sum(p < a for p in ps), len(ps)))
        log(f"{setting.label}: {time.perf_counter() - t0:.0f}s")
    return {
        "settings": [asdict(s) | {"label": s.label} for s in settings],
        "tasks": {t: len(x) for t, x in task_texts.items()},
        "partitions": partitions,
        "draws": draws,
        "permutations": config.oren_permutations,
        "resamples": config.oren_resamples,
        "seconds": time.perf_counter() - started,
        "cells": [c.summary() for c in cells.values()],
    }


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"Oren calibration check: random orders tested as canonical (true nulls); tasks "
        f"{', '.join(f'{t} ({n})' for t, n in result['tasks'].items())}; {result['partitions']} partitions per task "
        f"and setting, {result['draws']} nulls each; {result['permutations']} permutations per shard, "
        f"{result['resamples']} randomization resamples; {result['seconds']:.0f}s. Rejection rate (Clopper-Pearson "
        "95% interval on the design-effect-adjusted n):",
        "",
        "| setting | test | nulls | α = 0.01 | α = 0.05 | α = 0.1 |",
        "|---|---|---|---|---|---|",
    ]
    for c in result["cells"]:
        cols = []
        for a in ALPHAS:
            e = c[f"alpha={a}"]
            cols.append("—" if e["rate"] is None else f"{100 * e['rate']:.1f}% [{100 * e['ci95'][0]:.1f}, {100 * e['ci95'][1]:.1f}]")
        lines.append(f"| {c['setting']} | {c['test']} | {c['nulls']} | " + " | ".join(cols) + " |")
    return "\n".join(lines) + "\n"


def task_texts(names: Sequence[str], max_items: int, data_dir: Path | None = None) -> dict[str, list[str]]:
    """Verbalised items (as the audit scores them) of registered tasks, in file order."""
    from gapmeter.audit.items import build_audit_set
    from gapmeter.engine.plan import resolve_tasks
    from gapmeter.tasks.registry import TaskRegistry

    registry = TaskRegistry.load([])
    out = {}
    for name in names:
        plan = resolve_tasks(registry, [name], num_fewshot=0, data_dir=data_dir)
        for leaf_name, leaf in plan.leaves.items():
            out[leaf_name] = build_audit_set(leaf.task, limit=max_items, name=leaf_name).texts()
    return out




def quick_model(out: Path, data_dir: Path, *, seed: int, device: str, threads: int | None) -> Path:
    """A tiny GPT-2 trained for one epoch on ARC-Easy *train* items and GSM8K train problems
    (about a minute on 2 cores): any model gives true nulls; a trained one has the order
    effects (an item is likelier after a similar one) that make shard differences heavy-tailed."""
    from gapmeter.selftest.corpus import load_benchmark, other_text, render
    from gapmeter.selftest.train import train_lm

    if not (out / "gapmeter_train.json").exists():
        bench = load_benchmark("arc_easy", data_dir)
        docs = [render(d) for d in random.Random(seed).sample(bench.train, min(600, len(bench.train)))]
        docs += other_text(data_dir, 200, seed)
        train_lm(out, documents=docs, tokenizer_texts=docs, size="tiny", epochs=1, seed=seed, device=device, threads=threads)
    return out


def run_check(
    out: Path, data_dir: Path, *, model: Path | None = None, seed: int = 0, device: str = "cpu",
    threads: int | None = 1, tasks: Sequence[str] = DEFAULT_TASKS, settings: Sequence[Setting] = DEFAULT_SETTINGS,
    partitions: int = 2, draws: int = 100, config: AuditConfig | None = None, log: Log = print,
) -> dict[str, Any]:
    """The whole check: model (given or quickly trained), items, nulls; writes oren_null.json/.md."""
    import json

    from gapmeter.models.hf import load_hf

    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    if model is None:
        log("training the check's tiny model (1 epoch)")
        model = quick_model(out / "model", data_dir, seed=seed, device=device, threads=threads)
    backend = load_hf({"pretrained": str(model), "dtype": "float32"}, device=device, batch_size=64)
    texts = task_texts(tasks, max(s.items for s in settings), data_dir)
    config = config or AuditConfig(oren_permutations=20)
    result = run_oren_null(texts, RequestRunner(backend), settings=settings, partitions=partitions, draws=draws,
                           config=config, seed=seed, log=log)
    result["model"] = str(model)
    result["seconds"] = time.perf_counter() - started
    (out / "oren_null.json").write_text(json.dumps(result, indent=2, default=str))
    md = markdown(result)
    (out / "oren_null.md").write_text(md)
    return result
