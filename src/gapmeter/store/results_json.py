"""A run's outputs in lm-evaluation-harness 0.4.13's layout, written atomically.

``<output_path>/<model_name_sanitized>/results_<date_id>.json`` has every key lm-eval writes
(``results[task]["acc,none"]``, ``"acc_stderr,none"``, ``configs``, ``versions``, ``n-shot``,
``n-samples``, ``higher_is_better``, ``config``, ``task_hashes``, the environment, tokenizer and
chat-template keys...), plus gapmeter's extras under keys lm-eval does not use
(``"acc_ci95,none"``, ``"acc_clustered_stderr,none"``, ``gapmeter``). With ``--log_samples``,
``samples_<task>_<date_id>.jsonl`` beside it has lm-eval's lines (``store/lm_eval_layout.py``).
``<output_path>/results.json`` is the same document under a fixed name (what ``compare``,
``submit`` and scripts open).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

import gapmeter
from gapmeter.fsutil import umask_file_mode
from gapmeter.requests import RequestKind, doc_hash
from gapmeter.store import lm_eval_layout as layout
from gapmeter.tasks.task import DocPlan, DocScore

if TYPE_CHECKING:
    from gapmeter.outcomes import RunOutcome


def _num(x: float | None) -> float | str:
    if x is None:
        return "N/A"
    return float(x) if math.isfinite(x) else str(x)


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
        "prompt_hash": layout.prompt_hash(arguments),
        "target_hash": layout.hash_string(str(score.target)),
    }
    return record


def results_document(outcome: RunOutcome) -> dict[str, Any]:
    """The run's results document: lm-eval's keys in lm-eval's order, then ``gapmeter``."""
    results: dict[str, dict[str, Any]] = {}
    for name, task in outcome.tasks.items():
        entry: dict[str, Any] = {"name": name, "alias": name, "sample_len": len(task.scores)}
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
    # lm-eval's group entries: alias, name; with aggregates also sample_len (its leaves' docs),
    # the metrics and sample_count (docs behind each metric)
    groups: dict[str, dict[str, Any]] = {}
    for m in outcome.groups:
        entry = groups.setdefault(m.task, {"alias": m.task, "name": m.task,
                                           "sample_len": sum(len(outcome.tasks[t].scores)
                                                             for t in _leaves(outcome, m.task))})
        entry.setdefault("sample_count", {})[f"{m.metric},{m.filter}"] = m.n
        entry[f"{m.metric},{m.filter}"] = _num(m.value)
        entry[f"{m.metric}_stderr,{m.filter}"] = _num(m.stderr)
        ci = m.ci95
        if ci:
            entry[f"{m.metric}_ci95,{m.filter}"] = [_num(ci[0]), _num(ci[1])]
        if m.clustered_stderr is not None:
            entry[f"{m.metric}_clustered_stderr,{m.filter}"] = _num(m.clustered_stderr)
    for entry in groups.values():
        entry["sample_count"] = entry.pop("sample_count")  # last, as lm-eval writes it
    results.update(groups)
    results.update({g: {"alias": g, "name": g} for g in outcome.plan.groups if g not in groups})
    configs = {}
    for name, task in outcome.tasks.items():
        leaf = outcome.plan.leaves[name]
        cfg = leaf.task.config.model_dump(mode="json", exclude_none=True)
        cfg["num_fewshot"] = task.num_fewshot
        source = str(leaf.task.yaml_dir) if leaf.task.yaml_dir else "gapmeter"
        configs[name] = layout.task_config(cfg, leaf.task.config.version,
                                           {**layout.model_args_dict(outcome.spec.model_args), "config_source": source})
    doc: dict[str, Any] = {
        "results": results,
        **({"groups": groups} if groups else {}),
        "group_subtasks": {g: node.children for g, node in outcome.plan.groups.items()}
        | {t: [] for t in outcome.tasks if t in outcome.plan.top},
        "configs": configs,
        "versions": {n: outcome.plan.leaves[n].task.config.version for n in outcome.tasks}
        | {g: node.version for g, node in outcome.plan.groups.items()},
        "n-shot": {n: t.num_fewshot for n, t in outcome.tasks.items()},
        "higher_is_better": {n: {m.metric: m.higher_is_better for m in t.metrics} for n, t in outcome.tasks.items()},
        "n-samples": {n: {"original": t.n_docs_total, "effective": len(t.scores)} for n, t in outcome.tasks.items()},
        "config": _config(outcome),
    }
    spec = outcome.spec
    task_hashes = {}
    if spec.log_samples:
        task_hashes = {name: layout.task_hash(layout.task_lines(
                           sample_record(p, s) for p, s in zip(t.plans, t.scores, strict=True)))
                       for name, t in outcome.tasks.items()}
    doc.update({"git_hash": layout.git_hash(), "date": outcome.started_unix or 0.0, **layout.env_info(),
                **outcome.tokenizer_info, "task_hashes": task_hashes})
    # lm-eval's prompt options (--apply_chat_template, ...) at the top level, under its keys
    doc.update(layout.chat_info(spec.model_args, spec.system_instruction, outcome.chat_template,
                                spec.fewshot_as_multiturn, spec.model))
    doc["total_evaluation_time_seconds"] = str(outcome.wall_seconds)
    doc[layout.EXTRA_KEY] = {
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
    }
    return doc


def _leaves(outcome: RunOutcome, group: str) -> list[str]:
    out: list[str] = []
    for child in outcome.plan.groups[group].children if group in outcome.plan.groups else []:
        out += _leaves(outcome, child) if child in outcome.plan.groups else [child] if child in outcome.tasks else []
    return out


def _config(outcome: RunOutcome) -> dict[str, Any]:
    """lm-eval's ``config`` block (model, HFLM's model info, execution) plus gapmeter's."""
    spec, info = outcome.spec, outcome.model_info
    hf_info = {"model_num_parameters": info.get("num_parameters"),
               "model_dtype": f"torch.{info['dtype']}" if info.get("dtype") else None,
               "model_revision": info.get("revision") or "main", "model_sha": info.get("sha", "")}
    return {
        "model": spec.model,
        "model_args": layout.model_args_dict(spec.model_args),
        # HFLM's get_model_info keys, for the backends that load weights
        **(hf_info if "num_parameters" in info else {}),
        "batch_size": layout.batch_size_value(spec.batch_size),
        "batch_sizes": [],
        "device": spec.device,
        "use_cache": None,
        "limit": spec.limit,
        "bootstrap_iters": spec.bootstrap_iters,
        "gen_kwargs": spec.gen_kwargs or None,
        "random_seed": 0,
        "numpy_seed": 1234,
        "torch_seed": 1234,
        "fewshot_seed": spec.fewshot_seed,
        "model_info": info,
        # which scoring path produced the numbers and whether they are lm-eval's bit for bit
        "scoring_path": info.get("scoring_path"),
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


def output_dir(output_path: Path, document: dict[str, Any]) -> Path:
    """lm-eval's folder for a run's files: ``<output_path>/<model_name_sanitized>``."""
    return output_path / str(document.get("model_name_sanitized") or "model")


def samples_path(run_dir: Path, task: str) -> Path | None:
    """A run's newest ``samples_<task>_<date_id>.jsonl`` (via its ``results.json``), else None."""
    document = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    return layout.latest_samples_file(output_dir(run_dir, document), task)


def write_lm_eval_layout(directory: Path, document: dict[str, Any], records: dict[str, list[dict[str, Any]]],
                         date: str) -> Path:
    """``samples_<task>_<date>.jsonl`` per task in ``records`` (stored per-doc records), then
    ``results_<date>.json``; returns the results file."""
    for task, recs in records.items():
        lines = [layout.dumps(line) for line in layout.task_lines(recs)]
        atomic_write(directory / layout.samples_file_name(task, date), "".join(x + "\n" for x in lines))
    path = directory / layout.results_file_name(date)
    atomic_write(path, layout.dumps(document, indent=2))
    return path


def write_outputs(outcome: RunOutcome, document: dict[str, Any] | None = None) -> None:
    assert outcome.output_path is not None
    out = Path(outcome.output_path)
    document = document if document is not None else results_document(outcome)
    records = {}
    if outcome.spec.log_samples:
        records = {name: [sample_record(p, s) for p, s in zip(task.plans, task.scores, strict=True)]
                   for name, task in outcome.tasks.items()}
    write_lm_eval_layout(output_dir(out, document), document, records, layout.date_id())
    # results.json last: its presence means the whole run's outputs are there.
    atomic_write(out / "results.json", layout.dumps(document, indent=2))
