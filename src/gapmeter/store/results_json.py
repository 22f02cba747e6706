"""Plain JSON results in lm-evaluation-harness's layout, written atomically.

``results.json`` has ``results[task]["acc,none"]``, ``"acc_stderr,none"``, ``configs``,
``versions``, ``n-shot``, ``n-samples`` and ``higher_is_better`` as lm-eval writes them, plus
gapmeter's extras under their own keys (``"acc_ci95,none"``, ``"acc_clustered_stderr,none"``,
``gapmeter``). With ``--log_samples``, ``samples_<task>.jsonl`` has one line per doc.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

import gapmeter
from gapmeter.fsutil import umask_file_mode
from gapmeter.requests import RequestKind, doc_hash
from gapmeter.tasks.task import DocPlan, DocScore

if TYPE_CHECKING:
    from gapmeter.outcomes import RunOutcome


def _num(x: float | None) -> float | str:
    if x is None:
        return "N/A"
    return float(x) if math.isfinite(x) else str(x)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sample_record(plan: DocPlan, score: DocScore) -> dict[str, Any]:
    arguments = {
        f"gen_args_{i}": {f"arg_{j}": a for j, a in enumerate(r.args())} for i, r in enumerate(plan.requests)
    }
    record: dict[str, Any] = {
        "doc_id": plan.doc_id,
        "doc": plan.doc,
        "target": score.target,
        "fewshot_ids": list(plan.fewshot_ids),
        "arguments": arguments,
        "resps": [[list(r) if isinstance(r, tuple) else r] for r in score.responses],
        "filtered_resps": score.filtered,
        "filters": list(score.metrics),
        "metrics": {f"{m},{f}": v for f, ms in score.metrics.items() for m, v in ms.items()},
        "doc_hash": doc_hash(plan.doc),
        "prompt_hash": _sha(json.dumps([list(r.args())[0] for r in plan.requests], ensure_ascii=False, default=str)),
        "target_hash": _sha(str(score.target)),
    }
    return record


def prompt_options(outcome: RunOutcome) -> dict[str, Any]:
    """results.json's ``chat_template``, ``system_instruction`` (each with its sha256, None when
    unset or empty) and ``fewshot_as_multiturn``, as lm-eval's ``log_experiment_args`` records them."""
    template, system = outcome.chat_template, outcome.spec.system_instruction
    return {
        "chat_template": template,
        "chat_template_sha": _sha(template) if template else None,
        "system_instruction": system,
        "system_instruction_sha": _sha(system) if system else None,
        "fewshot_as_multiturn": outcome.spec.fewshot_as_multiturn,
    }


def results_document(outcome: RunOutcome) -> dict[str, Any]:
    results: dict[str, dict[str, Any]] = {}
    for name, task in outcome.tasks.items():
        entry: dict[str, Any] = {"alias": name}
        for m in task.metrics:
            key = f"{m.metric},{m.filter}"
            entry[key] = _num(m.value)
            entry[f"{m.metric}_stderr,{m.filter}"] = _num(m.stderr)
            ci = m.ci95
            if ci:
                entry[f"{m.metric}_ci95,{m.filter}"] = [_num(ci[0]), _num(ci[1])]
            if m.clustered_stderr is not None:
                entry[f"{m.metric}_clustered_stderr,{m.filter}"] = _num(m.clustered_stderr)
        results[name] = entry
    groups: dict[str, dict[str, Any]] = {}
    for m in outcome.groups:
        entry = groups.setdefault(m.task, {"alias": m.task})
        entry[f"{m.metric},{m.filter}"] = _num(m.value)
        entry[f"{m.metric}_stderr,{m.filter}"] = _num(m.stderr)
        ci = m.ci95
        if ci:
            entry[f"{m.metric}_ci95,{m.filter}"] = [_num(ci[0]), _num(ci[1])]
        if m.clustered_stderr is not None:
            entry[f"{m.metric}_clustered_stderr,{m.filter}"] = _num(m.clustered_stderr)
    for name in outcome.plan.groups:
        groups.setdefault(name, {"alias": name})
    results.update(groups)
    configs = {}
    for name, task in outcome.tasks.items():
        leaf = outcome.plan.leaves[name]
        cfg = leaf.task.config.model_dump(mode="json", exclude_none=True)
        cfg["num_fewshot"] = task.num_fewshot
        configs[name] = cfg
    return {
        "results": results,
        "groups": groups,
        "group_subtasks": {g: node.children for g, node in outcome.plan.groups.items()}
        | {t: [] for t in outcome.tasks if t in outcome.plan.top},
        "configs": configs,
        "versions": {n: outcome.plan.leaves[n].task.config.version for n in outcome.tasks}
        | {g: node.version for g, node in outcome.plan.groups.items()},
        "n-shot": {n: t.num_fewshot for n, t in outcome.tasks.items()},
        "higher_is_better": {n: {m.metric: m.higher_is_better for m in t.metrics} for n, t in outcome.tasks.items()},
        "n-samples": {n: {"original": t.n_docs_total, "effective": len(t.scores)} for n, t in outcome.tasks.items()},
        # lm-eval's prompt options, at the top level under lm-eval's keys (EvaluationTracker)
        **prompt_options(outcome),
        "config": {
            "model": outcome.spec.model,
            "model_args": outcome.spec.model_args,
            "model_info": outcome.model_info,
            # which scoring path produced the numbers and whether they are lm-eval's bit for bit
            "scoring_path": outcome.model_info.get("scoring_path"),
            "batch_size": outcome.spec.batch_size,
            "device": outcome.spec.device,
            "limit": outcome.spec.limit,
            "bootstrap_iters": outcome.spec.bootstrap_iters,
            "fewshot_seed": outcome.spec.fewshot_seed,
            "gen_kwargs": outcome.spec.gen_kwargs or None,
        },
        "gapmeter": {
            "version": gapmeter.__version__,
            "run_id": outcome.run_id,
            "db": _redact(outcome.db_url),
            "computed_requests": outcome.computed_requests,
            "cached_requests": outcome.cached_requests,
            "seconds_by_request_type": {k: v for k, v in outcome.timings.items() if k in get_args(RequestKind)},
            # prompts, model_load, each request type, metrics: where the run's time went
            "seconds_by_phase": outcome.timings,
            # Speed, memory, tokens and cost per run/task/group (docs/efficiency.md).
            "efficiency": outcome.efficiency.to_json() if outcome.efficiency is not None else None,
            # Malformed rows of users' tables left out with skip_invalid (docs/scenarios.md).
            "skipped_rows": skipped_rows(outcome),
        },
        "total_evaluation_time_seconds": str(outcome.wall_seconds),
    }


def skipped_rows(outcome: RunOutcome) -> dict[str, dict[str, Any]]:
    """``task -> {count, rows}``: the malformed rows a task's source skipped (``skip_invalid``)."""
    out: dict[str, dict[str, Any]] = {}
    for name in outcome.tasks:
        task = outcome.plan.leaves[name].task
        rows = [r for split in getattr(task, "base", task).skipped_rows.values() for r in split]
        if rows:
            out[name] = {"count": len(rows), "rows": rows}
    return out


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def atomic_write(path: Path, text: str) -> None:
    """Write to a temp file beside ``path`` and rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, umask_file_mode())  # mkstemp makes 0600; the result gets the umask's mode
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_outputs(outcome: RunOutcome) -> None:
    assert outcome.output_path is not None
    out = Path(outcome.output_path)
    if outcome.spec.log_samples:
        for name, task in outcome.tasks.items():
            lines = [
                json.dumps(sample_record(p, s), ensure_ascii=False, default=str)
                for p, s in zip(task.plans, task.scores, strict=True)
            ]
            atomic_write(out / f"samples_{name}.jsonl", "\n".join(lines) + "\n")
    # results.json last: its presence means the whole run's outputs are there.
    atomic_write(out / "results.json", json.dumps(results_document(outcome), indent=2, ensure_ascii=False, default=str))
