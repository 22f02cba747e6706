"""Running the self-test: build corpora, train the models, audit every group, tabulate.

For each seed: one contaminated model (all groups planted at their k) and its clean twin. Every
group is audited on its own, as a user audits one benchmark (Holm over that audit's detectors),
against the seed's reference set, with the same code as ``gapmeter audit``. Results are written to
``OUTPUT/selftest.json`` (one row per model × group) and summarised as power per k, false-positive
rate on the negative controls, and estimated vs true inflation.

Every contaminated-model row also carries the difficulty-adjusted inflation with a baseline, by
the code ``gapmeter audit --baseline_model`` runs (``audit.runner.adjust_for_difficulty``), once
per baseline believed clean: the placebo twin (``TWIN``) and a plant-free model trained with
another seed (``UNPLANTED``). With the twin as baseline the group's own sampling noise cancels
(the true gain is measured against the twin), so its error is the two models' difference on the
reference items, one number per seed; the plant-free model is the baseline a user would have.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gapmeter.audit.adjusted import BaselineScores
from gapmeter.audit.config import AuditConfig
from gapmeter.audit.items import AuditSet, build_audit_set, item_scores
from gapmeter.audit.responses import RequestRunner
from gapmeter.audit.result import TaskAudit
from gapmeter.audit.runner import DETECTORS, AuditPair, adjust_for_difficulty, audit_tasks
from gapmeter.engine.cache import ResponseCache
from gapmeter.models.hf import load_hf
from gapmeter.selftest.corpus import (
    ITEM_TEMPLATE,
    Benchmark,
    base_documents,
    corpus,
    load_benchmark,
    planted_documents,
)
from gapmeter.selftest.design import Assignment, Preset, assign
from gapmeter.selftest.train import train_lm
from gapmeter.store.db import open_store
from gapmeter.tasks.registry import TaskRegistry
from gapmeter.tasks.task import Task

Log = Callable[[str], None]
OREN = "oren_exchangeability"
OREN_T = "oren_t_test"  # summary column: Oren et al.'s t-test, kept to compare with the randomization test
TWIN = "placebo twin"
UNPLANTED = "unplanted model"
UNADJUSTED = "no baseline"
#: the plant-free baseline's training seed is the run's seed plus this (another init and order)
UNPLANTED_SEED_OFFSET = 1000


@dataclass
class Row:
    seed: int
    model: str  # contaminated | clean
    group: str
    arm: str
    k: int  # copies planted in *this* model (0 for every group of the clean twin)
    n: int
    verdict: str
    detectors: dict[str, dict[str, Any]]  # name -> {p, p_holm, effect, skipped}
    inflation: float | None
    inflation_ci: tuple[float, float] | None
    true_gain: float | None  # contaminated model only: acc(model) − acc(clean twin) on the group
    # contaminated model only, per baseline (TWIN, UNPLANTED): the difficulty-adjusted inflation
    inflation_adjusted: dict[str, float] = field(default_factory=dict)
    inflation_adjusted_ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    # mean scores behind the estimates: "model" (the audited one) and each baseline, [group, reference]
    mean_scores: dict[str, tuple[float, float]] = field(default_factory=dict)


def write_tasks(bench: Benchmark, a: Assignment, out: Path) -> dict[str, Task]:
    """The groups and the reference as ordinary task YAML + JSONL (hub schema) under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    docs: list[dict[str, Any]] = []
    sets = {"selftest_reference": a.reference, **{f"selftest_{g.name}": g.items for g in a.groups}}
    for name, idx in sets.items():
        (out / f"{name}.jsonl").write_text("".join(json.dumps(bench.test[i]) + "\n" for i in idx))
        docs.append({
            "task": name,
            "source": {"local": {"format": "hf_jsonl", "files": {"test": f"{name}.jsonl"}},
                       "hub": {"path": "allenai/ai2_arc", "name": bench.label.split("(")[-1].rstrip(")")}},
            "test_split": "test",
            "output_type": "multiple_choice",
            "doc_to_text": ITEM_TEMPLATE,
            "doc_to_target": "{{choices.label.index(answerKey)}}",
            "doc_to_choice": "{{choices.label}}",
            "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
        })
    path = out / "selftest_tasks.yaml"
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    reg = TaskRegistry()
    reg.add_path(path)
    return {name: Task(e.config, yaml_dir=out, data_dir=out) for name, e in reg.tasks.items()}


def run_seed(bench: Benchmark, p: Preset, seed: int, out: Path, data_dir: Path, *, device: str, threads: int | None, log: Log) -> tuple[list[Row], dict[str, Any]]:
    a = assign(len(bench.test), p, seed)
    seed_dir = out / f"seed{seed}"
    tasks = write_tasks(bench, a, seed_dir / "tasks")
    base = base_documents(bench, p, data_dir, seed)
    planted = planted_documents(bench, a)
    info: dict[str, Any] = {"seed": seed, "base_documents": len(base), "planted_documents": len(planted)}
    models: dict[str, Path] = {}
    twin_docs = planted_documents(bench, a, placebo=True)
    info["placebo_documents"] = len(twin_docs)
    # (kind, directory, documents, training seed); the twin's directory names its design (a twin
    # without placebo plants is not reused)
    kinds = [("contaminated", "model_contaminated", corpus(base, planted, seed), seed)]
    if p.clean_twin:
        kinds.append(("clean", "model_placebo_twin", corpus(base, twin_docs, seed), seed))
    if p.unplanted_baseline:
        other = seed + UNPLANTED_SEED_OFFSET
        kinds.append(("unplanted", "model_unplanted_baseline", corpus(base, [], other), other))
    for kind, dirname, docs, train_seed in kinds:
        path = seed_dir / dirname
        if not (path / "gapmeter_train.json").exists():
            log(f"seed {seed}: training the {kind} model ({len(docs)} documents, {p.size}, {p.epochs} epochs on {device})")
            rep = train_lm(path, documents=docs, tokenizer_texts=base, size=p.size, epochs=p.epochs, seed=train_seed, device=device, threads=threads)
            log(f"  {rep.parameters:,} parameters, {rep.tokens_per_epoch:,} tokens/epoch, loss {rep.final_loss:.3f}, {rep.seconds:.0f}s")
        info[f"train_{kind}"] = json.loads((path / "gapmeter_train.json").read_text())
        models[kind] = path

    config = AuditConfig(oren_permutations=p.oren_permutations, seed=seed)
    sessions = open_store(f"sqlite:///{(out / 'selftest.sqlite').resolve()}")
    reference = build_audit_set(tasks["selftest_reference"], name="selftest_reference")
    candidates = {g.name: build_audit_set(tasks[f"selftest_{g.name}"], name=g.name) for g in a.groups}
    scores: dict[str, dict[str, list[float]]] = {}
    baselines: dict[str, dict[str, BaselineScores]] = {}  # baseline label -> group -> its scores
    rows: list[Row] = []
    # the plant-free baseline is only scored; the clean twin before the contaminated model: true
    # gains and the twin baseline need its scores
    for kind in sorted(models, key=lambda k: ("unplanted", "clean", "contaminated").index(k)):
        backend = load_hf({"pretrained": str(models[kind]), "dtype": "float32"}, device=device, batch_size="auto" if device != "cpu" else 32)
        runner = RequestRunner(backend, ResponseCache(sessions, backend.fingerprint()))
        scores[kind] = {name: _scores(cand, runner) for name, cand in candidates.items()}
        if kind in ("unplanted", "clean"):
            label = UNPLANTED if kind == "unplanted" else TWIN
            ref_scores = _scores(reference, runner)
            baselines[label] = {name: BaselineScores(label, scores[kind][name], ref_scores) for name in candidates}
        if kind == "unplanted":
            continue
        t0 = time.perf_counter()
        for g in a.groups:
            (res,) = audit_tasks(backend, [AuditPair(candidates[g.name], reference)], config=config, runner=runner)
            planted_k = g.k if kind == "contaminated" else 0
            true_gain = None
            if kind == "contaminated" and "clean" in scores:
                c, t = scores["contaminated"][g.name], scores["clean"][g.name]
                true_gain = (sum(c) - sum(t)) / len(c)
            inf = res.inflation
            row = Row(
                seed, kind, g.name, g.arm, planted_k, len(g.items), res.verdict,
                {d.detector: {"p": d.p_value, "p_holm": d.p_holm, "effect": d.effect, "skipped": d.skipped,
                              # Oren's original t-test on the same shard differences (issue 20: before/after)
                              **({"p_t_test": d.details["p_t_test"]} if "p_t_test" in d.details else {})}
                 for d in res.detectors},
                inf.estimate if inf else None, (inf.ci_low, inf.ci_high) if inf else None, true_gain,
            )
            if kind == "contaminated":
                _adjust(row, res, {label: per_group[g.name] for label, per_group in baselines.items()}, seed=config.seed)
            rows.append(row)
        log(f"seed {seed}: audited the {kind} model on {len(a.groups)} groups in {time.perf_counter() - t0:.0f}s")
    return rows, info


def _scores(s: AuditSet, runner: RequestRunner) -> list[float]:
    """Per-item scores as ``gapmeter audit`` scores a baseline model (commands/audit.py)."""
    return item_scores(s.task, [it.doc for it in s.items], runner)


def _adjust(row: Row, res: TaskAudit, baselines: dict[str, BaselineScores], *, seed: int) -> None:
    """Each baseline on its own, through the audit's own adjustment; ``res.inflation`` ends adjusted."""
    public, reference = res.scores("test"), res.scores("reference")
    row.mean_scores["model"] = (sum(public) / len(public), sum(reference) / len(reference))
    for label, b in baselines.items():
        row.mean_scores[label] = (sum(b.public) / len(b.public), sum(b.reference) / len(b.reference))
        adjust_for_difficulty(res, [b], seed=seed)
        inf = res.inflation
        assert inf is not None and inf.difficulty_adjusted
        row.inflation_adjusted[label] = inf.estimate
        row.inflation_adjusted_ci[label] = (inf.ci_low, inf.ci_high)


def summarise(rows: list[Row], alpha: float) -> dict[str, Any]:
    """Power per (arm, k), FPR on the controls, inflation error; the numbers docs/audit.md shows."""
    detectors = list(DETECTORS)

    def rate(sel: list[Row], det: str | None) -> tuple[float | None, int]:
        if det is None:
            vals = [r.verdict == "contaminated" for r in sel]
        else:
            vals = [r.detectors[det]["p"] is not None and r.detectors[det]["p"] < alpha for r in sel if det in r.detectors and r.detectors[det].get("skipped") is None]
        return (sum(vals) / len(vals) if vals else None), len(vals)

    def cell(sel: list[Row]) -> dict[str, Any]:
        entry: dict[str, Any] = {"n_tests": len(sel)}
        for det in detectors:
            entry[det] = rate(sel, det)[0]
        # Oren's t-test (the pre-issue-20 p-value) on the same shards, where the rows carry it
        t_vals = [r.detectors[OREN]["p_t_test"] < alpha for r in sel
                  if r.detectors.get(OREN, {}).get("p_t_test") is not None]
        entry[OREN_T] = sum(t_vals) / len(t_vals) if t_vals else None
        entry["verdict"] = rate(sel, None)[0]
        entry["suspicious_or_worse"] = sum(r.verdict != "clean" for r in sel) / len(sel)
        pairs = [(r.true_gain, r.inflation) for r in sel if r.true_gain is not None and r.inflation is not None]
        if pairs:
            entry["true_gain"] = sum(t for t, _ in pairs) / len(pairs)
            entry["estimated_inflation"] = sum(i for _, i in pairs) / len(pairs)
            entry["mean_abs_error"] = sum(abs(i - t) for t, i in pairs) / len(pairs)
        return entry

    power = []
    for arm in sorted({r.arm for r in rows}):
        for k in sorted({r.k for r in rows if r.k > 0}):
            sel = [r for r in rows if r.model == "contaminated" and r.arm == arm and r.k == k]
            if not sel:
                continue
            entry = {"arm": arm, "k": k, **cell(sel)}
            gains = [r for r in sel if r.true_gain is not None and r.inflation is not None]
            if gains:
                covered = [ci[0] <= t <= ci[1] for r in gains if (ci := r.inflation_ci) is not None and (t := r.true_gain) is not None]
                entry["ci_covers_truth"] = sum(covered) / len(gains)
            entry["inflation_by_baseline"] = _by_estimator(sel)
            power.append(entry)
    controls = {}
    for label, sel in (
        ("k=0 groups, contaminated models", [r for r in rows if r.model == "contaminated" and r.k == 0]),
        ("all groups, clean twins", [r for r in rows if r.model == "clean"]),
    ):
        if sel:
            controls[label] = cell(sel)
            if label.startswith("k=0"):
                controls[label]["inflation_by_baseline"] = _by_estimator(sel)
    errors = {}
    by_estimator: dict[str, dict[str, Any]] = {}
    for label, sel in (
        ("planted groups (k ≥ 1)", [r for r in rows if r.model == "contaminated" and r.k > 0]),
        ("never-planted groups (k = 0)", [r for r in rows if r.model == "contaminated" and r.k == 0]),
    ):
        errors[label] = _mean_error([r.inflation - r.true_gain for r in sel if r.inflation is not None and r.true_gain is not None])
        for name, e in _by_estimator(sel, pooled=True).items():
            by_estimator.setdefault(name, {})[label] = e
    return {"alpha": alpha, "power": power, "controls": controls, "inflation_error": errors,
            "inflation_error_by_baseline": by_estimator}


def _estimates(r: Row) -> dict[str, tuple[float, tuple[float, float] | None]]:
    """Every inflation estimate of a row: without a baseline, then with each baseline."""
    out: dict[str, tuple[float, tuple[float, float] | None]] = {}
    if r.inflation is not None:
        out[UNADJUSTED] = (r.inflation, r.inflation_ci)
    for name, est in r.inflation_adjusted.items():
        out[name] = (est, r.inflation_adjusted_ci.get(name))
    return out


def _by_estimator(sel: list[Row], *, pooled: bool = False) -> dict[str, dict[str, Any]]:
    """Per estimator (no baseline, each baseline): error against the true gain and CI coverage.

    ``pooled``: also the mean error's 95% t interval over groups (``_mean_error``) and the mean
    error per seed: the groups of one seed share its reference items (and, with the twin as
    baseline, one error: the two models' difference there), so they are not independent.
    """
    per: dict[str, list[tuple[float, float, tuple[float, float] | None]]] = {}
    seeds: dict[str, dict[int, list[float]]] = {}
    for r in sel:
        if r.true_gain is None:
            continue
        for name, (est, ci) in _estimates(r).items():
            per.setdefault(name, []).append((r.true_gain, est, ci))
            seeds.setdefault(name, {}).setdefault(r.seed, []).append(est - r.true_gain)
    out: dict[str, dict[str, Any]] = {}
    for name, vals in per.items():
        errs = [e - t for t, e, _ in vals]
        cis = [(t, ci) for t, _, ci in vals if ci is not None]
        entry = _mean_error(errs) if pooled else {
            "n_groups": len(errs), "mean_error": sum(errs) / len(errs), "mean_abs_error": sum(abs(x) for x in errs) / len(errs)}
        entry["estimate"] = sum(e for _, e, _ in vals) / len(vals)
        entry["ci_covers_truth"] = sum(lo <= t <= hi for t, (lo, hi) in cis) / len(cis) if cis else None
        if pooled:
            entry["mean_error_by_seed"] = {seed: sum(x) / len(x) for seed, x in sorted(seeds[name].items())}
        out[name] = entry
    return out


def _mean_error(diffs: list[float]) -> dict[str, Any]:
    """Mean signed error (estimate − truth) over groups, its 95% t interval, and the mean |error|.

    Each group's error carries the sampling noise of ``group_size`` items twice (estimate and
    truth), so single groups are far off; the pooled mean says whether the estimator is biased.
    """
    import numpy as np
    from scipy import stats

    n = len(diffs)
    if n == 0:
        return {"n_groups": 0}
    x = np.asarray(diffs, dtype=float)
    mean = float(x.mean())
    half = float(stats.t.ppf(0.975, n - 1) * x.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    return {"n_groups": n, "mean_error": mean, "ci": (mean - half, mean + half), "mean_abs_error": float(np.abs(x).mean())}


def run_selftest(p: Preset, out: Path, data_dir: Path, *, device: str = "cpu", threads: int | None = 1, log: Log = print) -> dict[str, Any]:
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    bench = load_benchmark(p.benchmark, data_dir)
    rows: list[Row] = []
    infos = []
    for seed in p.seeds:
        r, info = run_seed(bench, p, seed, out, data_dir, device=device, threads=threads, log=log)
        rows.extend(r)
        infos.append(info)
    alpha = AuditConfig().alpha
    summary = summarise(rows, alpha)
    result = {
        "preset": {**asdict(p), "seeds": list(p.seeds), "levels": list(p.levels), "arms": list(p.arms)},
        "device": device,
        "seconds": time.perf_counter() - started,
        "seeds": infos,
        "summary": summary,
        "rows": [asdict(r) for r in rows],
    }
    tmp = out / "selftest.json.tmp"
    tmp.write_text(json.dumps(result, indent=2, default=str))
    tmp.replace(out / "selftest.json")
    return result
