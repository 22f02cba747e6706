"""From a task's responses to per-doc scores (filters, then metrics), as lm-eval 0.4.13 does."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gapmeter.errors import ConfigError
from gapmeter.scoring.filters import build_pipeline
from gapmeter.scoring.registry import ChoiceDoc, GenerationDoc, LoglikelihoodDoc, RollingDoc
from gapmeter.tasks.task import DocPlan, DocScore, Task


def _pipelines(task: Task) -> list[tuple[str, Any]]:
    cfg = task.config
    if not cfg.filter_list:
        return [("none", build_pipeline("none", [{"function": "take_first"}]))]
    try:
        return [
            (p.name, build_pipeline(p.name, [{"function": s.function, **s.params} for s in p.filter]))
            for p in cfg.filter_list
        ]
    except (KeyError, TypeError) as err:
        raise ConfigError(f"task {task.name}: filter_list: {err}") from None


def score_task(task: Task, plans: Sequence[DocPlan], responses: Sequence[list[Any]]) -> list[DocScore]:
    """One DocScore per plan; ``responses[i]`` are the responses to ``plans[i].requests``.

    Every metric comes from the task's resolved metric list (``Task.metrics``, built from the
    registry when the task loaded); only a ``process_results`` hook computes metrics of its own.
    """
    cfg = task.config
    if cfg.output_type == "generate_until":
        return _score_generation(task, plans, responses)
    scores = []
    for plan, resp in zip(plans, responses, strict=True):
        doc = plan.doc
        if cfg.process_results:
            metrics = dict(task._hook(cfg.process_results, "process_results")(doc, resp))
            target: Any = task.doc_to_target(doc)
        else:
            doc_input, target = _doc_input(task, doc, resp)
            metrics = {m.name: m.spec.compute(cfg.output_type, doc_input, m.options) for m in task.metrics}
        scores.append(DocScore(plan.doc_id, target, list(resp), {"none": list(resp)}, {"none": metrics}))
    return scores


def _doc_input(task: Task, doc: dict[str, Any], resp: list[Any]) -> tuple[Any, Any]:
    """What the output type's metrics receive for one doc, and the doc's logged target."""
    cfg = task.config
    if cfg.output_type == "multiple_choice":
        choices = task.doc_to_choice(doc)
        lls = [float(r[0]) for r in resp]
        greedy = [bool(r[1]) for r in resp]
        gold = task.doc_to_text(doc) if cfg.multiple_input else task.doc_to_target(doc)
        unconditional = None
        if task.needs_unconditional:  # the ("", choice) requests come after the conditional ones
            unconditional, lls, greedy = lls[len(choices) :], lls[: len(choices)], greedy[: len(choices)]
        return ChoiceDoc(lls, greedy, choices, gold, unconditional), gold
    if cfg.output_type == "loglikelihood":
        ll, greedy_hit = resp[0]
        target = task.doc_to_target(doc)
        return LoglikelihoodDoc(ll, bool(greedy_hit), target), target
    target = str(task.doc_to_target(doc))  # loglikelihood_rolling
    return RollingDoc(resp[0], target), target


def _score_generation(task: Task, plans: Sequence[DocPlan], responses: Sequence[list[Any]]) -> list[DocScore]:
    cfg = task.config
    docs = [p.doc for p in plans]
    pipelines = _pipelines(task)
    filtered = {name: pipe.apply([list(r) for r in responses], docs) for name, pipe in pipelines}
    hook = task._hook(cfg.process_results, "process_results") if cfg.process_results else None
    scores = []
    for i, plan in enumerate(plans):
        gold = task.doc_to_target(plan.doc)
        if cfg.doc_to_choice is not None:
            gold = task.doc_to_choice(plan.doc)[gold]
        references = tuple(str(g) for g in gold) if isinstance(gold, list) else (str(gold),)
        per_filter: dict[str, dict[str, Any]] = {}
        for name, _ in pipelines:
            pred = filtered[name][i]
            if hook is not None:
                per_filter[name] = dict(hook(plan.doc, [pred]))
                continue
            doc_input = GenerationDoc(str(pred), references, isinstance(gold, list), plan.doc)
            per_filter[name] = {m.name: m.spec.compute("generate_until", doc_input, m.options) for m in task.metrics}
        scores.append(
            DocScore(plan.doc_id, gold, list(responses[i]), {n: filtered[n][i] for n, _ in pipelines}, per_filter)
        )
    return scores
