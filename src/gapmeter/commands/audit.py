"""``gapmeter audit``: run the contamination detectors on a model and tasks; store and print verdicts.

Tasks are resolved like ``gapmeter run`` (groups expand to their tasks). Each task is audited
against a reference set of unseen items when one is given (``--reference TASK=REF``) or registered
(``TASK_fresh``); detectors that need one are skipped otherwise, with that reason. All items are
planned before the model loads, responses go through the response cache (an interrupted audit
resumes), and results land in the store (``audit_verdicts``, ``audit_results``) and in
``OUTPUT/audit.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import delete

from gapmeter.audit.adjusted import BaselineScores
from gapmeter.audit.config import AuditConfig
from gapmeter.audit.items import build_audit_set, item_scores
from gapmeter.audit.progress import RichMeter
from gapmeter.audit.responses import RequestRunner
from gapmeter.audit.result import TaskAudit
from gapmeter.audit.runner import AuditPair, adjust_for_difficulty, audit_tasks, select_detectors
from gapmeter.engine.cache import ResponseCache
from gapmeter.engine.plan import resolve_tasks
from gapmeter.errors import ConfigError
from gapmeter.models.registry import check_backend, load_model
from gapmeter.notices import notice
from gapmeter.render import print_table
from gapmeter.store.db import open_store, resolve_db_url
from gapmeter.store.models import AuditDetectorResult, AuditVerdict
from gapmeter.store.results_json import atomic_write
from gapmeter.store.runs import finite
from gapmeter.tasks.registry import TaskRegistry


@dataclass(frozen=True)
class AuditOptions:
    model: str
    model_args: str
    tasks: tuple[str, ...]
    references: tuple[tuple[str, str], ...] = ()
    detectors: str = "all"
    limit: int | None = None
    # Unlike `gapmeter run` (lm-eval's default of 1), the audit has no parity to keep and
    # thousands of generations: batch 1 made decoding steps thin matmuls (issue 18).
    batch_size: str = "auto"
    device: str | None = None
    output_path: Path | None = None
    db: str | None = None
    data_dir: Path | None = None
    include_path: tuple[Path, ...] = ()
    # models believed clean, (backend, model_args) each: the difficulty adjustment of inflation
    baselines: tuple[tuple[str, str], ...] = ()


@dataclass
class AuditOutcome:
    audit_id: str
    audits: list[TaskAudit]
    model_info: dict[str, Any]
    db_url: str
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per (task, detector)


def parse_references(text: str | None) -> tuple[tuple[str, str], ...]:
    """``arc_easy=arc_easy_fresh,gsm8k=gsm8k_fresh`` → pairs."""
    out = []
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        if "=" not in part:
            raise ConfigError(f"--reference: {part!r} is not TASK=REFERENCE_TASK")
        a, b = part.split("=", 1)
        out.append((a.strip(), b.strip()))
    return tuple(out)


def parse_baselines(models: list[str] | None, model_args: list[str] | None) -> tuple[tuple[str, str], ...]:
    """``--baseline_model`` i takes the i-th ``--baseline_model_args`` (all may be left out)."""
    models, model_args = list(models or []), list(model_args or [])
    if model_args and len(model_args) != len(models):
        raise ConfigError(
            f"--baseline_model_args: given {len(model_args)} times for {len(models)} --baseline_model; "
            "give one per baseline model, in the same order (or none)"
        )
    if not models and model_args:
        raise ConfigError("--baseline_model_args needs --baseline_model")
    return tuple(zip(models, model_args or [""] * len(models), strict=True))


def baseline_scores(opts: AuditOptions, pairs: list[AuditPair], sessions: Any, console: Console) -> list[list[BaselineScores]]:
    """Per pair, each baseline model's per-item scores on its public and reference items."""
    out: list[list[BaselineScores]] = [[] for _ in pairs]
    for name, args in opts.baselines:
        backend = load_model(name, args, device=opts.device, batch_size=opts.batch_size)
        runner = RequestRunner(backend, ResponseCache(sessions, backend.fingerprint()))
        label = f"{name}:{args}" if args else name
        for i, pair in enumerate(pairs):
            if pair.reference is None:
                continue
            console.print(f"[dim]baseline {label}: scoring {pair.candidate.name} and {pair.reference.name}[/]", highlight=False)
            public = item_scores(pair.candidate.task, [it.doc for it in pair.candidate.items], runner)
            reference = item_scores(pair.reference.task, [it.doc for it in pair.reference.items], runner)
            out[i].append(BaselineScores(label, public, reference))
        del backend, runner
    return out


def run_audit(
    opts: AuditOptions, config: AuditConfig, console: Console | None = None, *, backend: Any = None,
    progress_console: Console | None = None,
) -> AuditOutcome:
    """``progress_console``: where the progress bars go (default stderr, so stdout stays clean)."""
    console = console or Console()
    check_backend(opts.model)
    for name, _ in opts.baselines:
        check_backend(name)
    detectors = select_detectors(opts.detectors)
    if opts.data_dir is not None:
        os.environ["GAPMETER_DATA_DIR"] = str(opts.data_dir)
    registry = TaskRegistry.load(list(opts.include_path))
    plan = resolve_tasks(registry, list(opts.tasks), num_fewshot=0, data_dir=opts.data_dir)
    refs = dict(opts.references)
    unknown = [t for t in refs if t not in plan.leaves]
    if unknown:
        raise ConfigError(f"--reference: {unknown[0]!r} is not one of the audited tasks ({', '.join(plan.leaves)})")
    pairs: list[AuditPair] = []
    for name, leaf in plan.leaves.items():
        ref_name = refs.get(name) or (f"{name}_fresh" if f"{name}_fresh" in registry.tasks else None)
        reference = None
        if ref_name is not None:
            ref_plan = resolve_tasks(registry, [ref_name], num_fewshot=0, data_dir=opts.data_dir)
            if len(ref_plan.leaves) != 1:
                raise ConfigError(f"--reference {name}={ref_name}: the reference must be one task, not a group")
            ref_task = next(iter(ref_plan.leaves.values())).task
            reference = build_audit_set(ref_task, limit=opts.limit, name=ref_name)
        pairs.append(AuditPair(build_audit_set(leaf.task, limit=opts.limit, name=name), reference))

    if backend is None:
        backend = load_model(opts.model, opts.model_args, device=opts.device, batch_size=opts.batch_size)
    fingerprint = backend.fingerprint()
    model_info = backend.describe()
    db_url = resolve_db_url(opts.db, opts.output_path)
    sessions = open_store(db_url)
    runner = RequestRunner(backend, ResponseCache(sessions, fingerprint))
    audit_id = _audit_id(fingerprint, opts, config, pairs)
    with RichMeter(progress_console or Console(stderr=True)) as meter:
        audits = audit_tasks(backend, pairs, config=config, runner=runner, detectors=detectors, meter=meter)
    if opts.baselines:
        del backend, runner  # one model in memory at a time (the caller may still hold its own)
        no_ref = [p.candidate.name for p in pairs if p.reference is None]
        if no_ref:
            notice(f"--baseline_model: {', '.join(no_ref)} has no reference set, so its inflation is not difficulty-adjusted")
        for audit, scores in zip(audits, baseline_scores(opts, pairs, sessions, console), strict=True):
            if scores:
                adjust_for_difficulty(audit, scores, seed=config.seed)
    _store(sessions, audit_id, opts, fingerprint, pairs, audits, config)
    outcome = AuditOutcome(audit_id, audits, model_info, db_url, meter.seconds)
    if opts.output_path is not None:
        _write_json(opts.output_path / "audit.json", outcome, opts, config)
    return outcome


def _audit_id(fingerprint: str, opts: AuditOptions, config: AuditConfig, pairs: list[AuditPair]) -> str:
    payload = {
        "fingerprint": fingerprint,
        "tasks": [p.candidate.name for p in pairs],
        "references": [p.reference.name if p.reference else None for p in pairs],
        "limit": opts.limit,
        "detectors": opts.detectors,
        "baselines": [list(b) for b in opts.baselines],
        "config": asdict(config),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


def _store(sessions: Any, audit_id: str, opts: AuditOptions, fingerprint: str, pairs: list[AuditPair], audits: list[TaskAudit], config: AuditConfig) -> None:
    """Replace this audit's rows in one transaction."""
    with sessions() as s:
        s.execute(delete(AuditVerdict).where(AuditVerdict.audit_id == audit_id))
        s.execute(delete(AuditDetectorResult).where(AuditDetectorResult.audit_id == audit_id))
        for pair, a in zip(pairs, audits, strict=True):
            inf = a.inflation
            s.add(AuditVerdict(
                audit_id=audit_id, model=opts.model, model_args=opts.model_args, model_fingerprint=fingerprint,
                task=a.task, reference=pair.reference.name if pair.reference else None,
                verdict=a.verdict, reason=a.reason,
                inflation=finite(inf.estimate) if inf else None,
                inflation_ci_low=finite(inf.ci_low) if inf else None,
                inflation_ci_high=finite(inf.ci_high) if inf else None,
                inflation_source=inf.source if inf else None,
                public_score=finite(inf.public_score) if inf else None,
                equivalent_score=finite(inf.equivalent_score) if inf else None,
                # the extras have no columns of their own (no schema migration): kept beside the settings
                config={**asdict(config), "inflation_detail": inf.to_json() if inf else None,
                        "clean_items_score": a.clean_items_score, "items": a.items},
            ))
            for d in a.detectors:
                s.add(AuditDetectorResult(
                    audit_id=audit_id, model_fingerprint=fingerprint, task=a.task, detector=d.detector,
                    needs=list(d.needs), statistic=finite(d.statistic), p_value=finite(d.p_value),
                    p_holm=finite(d.p_holm), effect=finite(d.effect), effect_name=d.effect_name,
                    n=d.n, n_reference=d.n_reference, skipped=d.skipped, details=json.loads(json.dumps(d.details, default=str)),
                ))
        s.commit()


def audit_document(outcome: AuditOutcome, opts: AuditOptions, config: AuditConfig) -> dict[str, Any]:
    """What ``audit.json`` holds (and ``gapmeter audit --json`` prints)."""
    return {
        "audit_id": outcome.audit_id,
        "model": opts.model,
        "model_args": opts.model_args,
        "model_info": outcome.model_info,
        "config": asdict(config),
        "tasks": [a.to_json() for a in outcome.audits],
    }


def _write_json(path: Path, outcome: AuditOutcome, opts: AuditOptions, config: AuditConfig) -> None:
    atomic_write(path, json.dumps(audit_document(outcome, opts, config), indent=2, default=str))


def _fmt(x: float | None, spec: str = ".3g") -> str:
    return "—" if x is None else format(x, spec)


def _clean(c: dict[str, Any] | None) -> str:
    if not c or c.get("score") is None:
        return "—"
    return f"{c['score']:.3f} (n={c['n']} of {c['n_public']})"


def print_audit(outcome: AuditOutcome, console: Console) -> None:
    table = Table(title=f"gapmeter audit {outcome.audit_id[:12]} (one-sided tests; Holm over all rows that ran)")
    for col in ("task", "detector", "needs", "statistic", "p", "p (Holm)", "effect", "n", "note"):
        table.add_column(col, justify="right" if col in {"statistic", "p", "p (Holm)", "effect", "n"} else "left")
    for a in outcome.audits:
        for d in a.detectors:
            effect = "" if d.effect is None else f"{d.effect:+.3f} {d.effect_name}"
            table.add_row(
                a.task, d.detector, ",".join(d.needs), _fmt(d.statistic), _fmt(d.p_value), _fmt(d.p_holm),
                effect, str(d.n) + (f" vs {d.n_reference}" if d.n_reference else ""),
                f"skipped: {d.skipped}" if d.skipped else "",
            )
    print_table(console, table)
    verdicts = Table(title="verdicts (inflation = public score − score on unseen/perturbed equivalents, 95% CI; "
                           "adjusted: minus the difficulty gap the baseline models show)")
    for col in ("task", "verdict", "inflation", "95% CI", "public", "equivalent", "likely-clean items", "source", "reason"):
        verdicts.add_column(col)
    colours = {"clean": "green", "suspicious": "yellow", "contaminated": "bold red", "untested": "dim"}
    for a in outcome.audits:
        inf = a.inflation
        verdicts.add_row(
            a.task, f"[{colours[a.verdict]}]{a.verdict}[/]",
            f"{inf.estimate:+.3f}" if inf else "—",
            f"[{inf.ci_low:+.3f}, {inf.ci_high:+.3f}]" if inf else "—",
            f"{inf.public_score:.3f}" if inf else "—",
            f"{inf.equivalent_score:.3f}" if inf else "—",
            _clean(a.clean_items_score),
            (inf.source if inf.difficulty_adjusted else f"{inf.source} (not difficulty-adjusted)") if inf else "—",
            a.reason,
        )
    print_table(console, verdicts)
