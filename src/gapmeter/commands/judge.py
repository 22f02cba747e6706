"""``gapmeter judge``: an LLM judges a stored run's free-form answers (``judge RUN``), or two runs
against each other (``judge --pairwise RUN_A RUN_B``). See docs/scenarios.md."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from gapmeter.compare.runs import StoredRun, open_run
from gapmeter.errors import ConfigError
from gapmeter.judge.asking import Judge
from gapmeter.judge.identity import model_name, self_preference
from gapmeter.judge.items import judged_tasks, run_items
from gapmeter.judge.pairwise import compare_pairwise
from gapmeter.judge.prompts import DEFAULT_RUBRIC, SCALES, Scale
from gapmeter.judge.saving import pairwise_metric, save_pairwise, save_single
from gapmeter.judge.single import grade
from gapmeter.model_source import check_model_source
from gapmeter.store.models import Run
from gapmeter.store.results_json import atomic_write


@dataclass
class JudgeOptions:
    runs: list[str]
    judge_model: str
    judge_model_args: str
    pairwise: bool = False
    rubric: Path | None = None
    scale: str = "1-10"
    tasks: list[str] | None = None
    db: str | None = None
    output: Path | None = None
    device: str | None = None
    batch_size: str = "1"
    max_tokens: int = 256


def _fmt(x: Any) -> str:
    return "—" if x is None else f"{x:.3f}" if isinstance(x, float) else str(x)


def _rubric(path: Path | None) -> str:
    if path is None:
        return DEFAULT_RUBRIC
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except OSError as err:
        raise ConfigError(f"--rubric {path}: cannot read ({err.strerror})") from None
    if not text:
        raise ConfigError(f"--rubric {path}: the file is empty")
    return text


def _fingerprint(run: StoredRun) -> str:
    with run.sessions() as s:
        return s.scalar(select(Run.model_fingerprint).where(Run.id == run.id)) or ""


def _load_judge(opts: JudgeOptions) -> Judge:
    from gapmeter.models.registry import load_model

    check_model_source(opts.judge_model, opts.judge_model_args)
    backend = load_model(opts.judge_model, opts.judge_model_args, device=opts.device, batch_size=opts.batch_size)
    return Judge(backend, opts.judge_model, opts.judge_model_args, max_tokens=opts.max_tokens)


def _warn_self(judge: Judge, run: StoredRun, err_console: Any) -> str | None:
    why = self_preference((judge.model, judge.model_args, judge.backend.fingerprint()),
                          (run.model, run.model_args, _fingerprint(run)))
    if why:
        err_console.print(f"warning: self-preference risk for run {run.id[:12]}: {why}; "
                          "prefer a judge from another family", highlight=False, soft_wrap=True)
    return why


def _scale(text: str) -> Scale:
    if text == "1-10":
        return "1-10"
    if text == "pass_fail":
        return "pass_fail"
    raise ConfigError(f"--scale {text!r}: use one of {', '.join(SCALES)}")


def judge_command(opts: JudgeOptions, console: Any, err_console: Any) -> dict[str, Any]:
    scale = _scale(opts.scale)
    if opts.pairwise and len(opts.runs) != 2:
        raise ConfigError(f"--pairwise compares two runs, got {len(opts.runs)}")
    if not opts.pairwise and not opts.runs:
        raise ConfigError("name a run to judge (id, id prefix or output directory)")
    rubric = _rubric(opts.rubric)
    runs = [open_run(r, opts.db) for r in opts.runs]
    tasks = [judged_tasks(r, opts.tasks) for r in runs]
    judge = _load_judge(opts)
    info = {"name": model_name(judge.model, judge.model_args), "backend": judge.model,
            "fingerprint": judge.backend.fingerprint()}
    warnings = {r.id: w for r in runs if (w := _warn_self(judge, r, err_console))}
    if opts.pairwise:
        return _pairwise(opts, runs, tasks, judge, rubric, info, warnings, console)
    out: dict[str, Any] = {"judge": info, "runs": {}}
    for run, names in zip(runs, tasks, strict=True):
        items = run_items(run, names)
        # The judge's replies and timings go to the judged run's store (resumable, measured).
        judge.sessions, judge.hashes, judge.stats, judge.failed = run.sessions, [], [], 0
        result = grade(run, items, judge, rubric=rubric, scale=scale, judge_info=info)
        result.judge["self_preference"] = warnings.get(run.id)
        result.judge["cost"] = judge.cost_report(len(items))
        if result.metrics:
            path = save_single(run, result)
        else:  # a judge that could not answer must not erase an earlier judgement
            path = None
            err_console.print(f"warning: run {run.id[:12]}: no verdict could be read; nothing stored (an earlier "
                              f"{result.metric} of the run is kept)", highlight=False, soft_wrap=True)
        out["runs"][run.id] = result.summary()
        _print_single(run, result.summary(), path, console)
    return out


def _print_single(run: StoredRun, s: dict[str, Any], path: Path | None, console: Any) -> None:
    console.print(f"run {run.id[:12]} ({run.label}): {s['metric']} by {s['judge']['name']}, {s['n_items']} items",
                  highlight=False)
    for task, m in s["metrics"].items():
        ci = m["ci95"]
        ci_text = f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "—"
        console.print(f"  {task}{' (group)' if m['is_group'] else ''}: {_fmt(m['value'])} ± {_fmt(m['stderr'])} "
                      f"95% CI {ci_text} n={m['n']}", highlight=False)
    console.print(f"  unparseable verdicts: {s['unparseable']} ({s['unparseable_rate']:.1%}; retried once: "
                  f"{s['retried']}) — left out, not scored", highlight=False)
    cal = s["calibration"]
    if cal:
        k_ci = cal.get("kappa_ci95")
        console.print(f"  agreement with human labels (n={cal['n']}): accuracy {_fmt(cal.get('accuracy'))}, "
                      f"Cohen's κ{' (quadratic)' if cal.get('kappa_weights') else ''} {_fmt(cal.get('kappa'))}"
                      f"{f' [{k_ci[0]:.3f}, {k_ci[1]:.3f}]' if k_ci else ''}", highlight=False)
    cost = s["judge"].get("cost") or {}
    lat = cost.get("latency_s") or {}
    usd = (cost.get("cost") or {}).get("usd")
    console.print(f"  judge: {cost.get('requests')} requests, latency p50 {_fmt(lat.get('p50'))}s, tokens "
                  f"{_fmt(cost.get('prompt_tokens'))} in / {_fmt(cost.get('completion_tokens'))} out, cost "
                  f"{'$' + format(usd, '.4f') if usd is not None else 'unpriced'}", highlight=False)
    if path:
        console.print(f"  stored in the run (metric {s['metric']}) and {path}", highlight=False)


def _pairwise(opts: JudgeOptions, runs: list[StoredRun], tasks: list[list[str]], judge: Judge, rubric: str,
              info: dict[str, Any], warnings: dict[str, str], console: Any) -> dict[str, Any]:
    common = [t for t in tasks[0] if t in tasks[1]]
    if not common:
        raise ConfigError(f"runs {runs[0].id[:12]} and {runs[1].id[:12]} share no generation task")
    items_a, items_b = run_items(runs[0], common), run_items(runs[1], common)
    judge.sessions = runs[0].sessions  # replies and timings in run A's store
    result = compare_pairwise(items_a, items_b, judge, rubric=rubric)
    if not result.pairs:
        raise ConfigError("the two runs share no item (same task, doc id and content)")
    s = result.summary
    doc = {"judge": {**info, "cost": judge.cost_report(len(result.pairs)), "self_preference": warnings},
           "run_a": {"id": runs[0].id, "model": runs[0].label}, "run_b": {"id": runs[1].id, "model": runs[1].label},
           "tasks": common, "summary": s, "pairs": [p.to_json() for p in result.pairs]}
    if s["n_scored"]:
        save_pairwise(runs[0], runs[1], result, info["name"])
    out = opts.output or Path(f"judge_pairwise_{runs[0].id[:8]}_{runs[1].id[:8]}.json")
    atomic_write(out, json.dumps(doc, indent=2, ensure_ascii=False))
    ci = s.get("win_rate_a_ci95")
    v = s["verbosity"]
    console.print(f"{runs[0].label} vs {runs[1].label}: {s['n_scored']} pairs judged in both orders by {info['name']}",
                  highlight=False)
    console.print(f"  win rate of A {_fmt(s['win_rate_a'])}{f' [{ci[0]:.3f}, {ci[1]:.3f}]' if ci else ''} "
                  f"(A {s['wins_a']}, B {s['wins_b']}, ties {s['ties']})", highlight=False)
    console.print(f"  position-inconsistent pairs (counted as ties): {s['inconsistent']} "
                  f"({_fmt(s['inconsistent_rate'])}); unparseable: {s['unparseable']} (left out)", highlight=False)
    console.print(f"  length: A {_fmt(v['mean_words_a'])} words, B {_fmt(v['mean_words_b'])} words (A−B "
                  f"{_fmt(v['mean_word_diff_a_minus_b'])}); the longer answer won {v['longer_answer_won']} of "
                  f"{v['decisive_with_length_difference']} decisive pairs", highlight=False)
    stored = (f"; stored in run A as {pairwise_metric(runs[1])} and in run B as {pairwise_metric(runs[0])} "
              "(1 won, 0.5 tie, 0 lost)") if s["n_scored"] else "; no verdict could be read: nothing stored in the runs"
    console.print(f"  prompts and raw judgements: {out}{stored}", highlight=False)
    return doc
