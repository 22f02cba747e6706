"""One evaluation run, end to end: plan → requests → cached/computed responses → scores → store.

Responses are committed to the cache as each batch finishes, so a run killed at any point and
started again with the same command recomputes nothing it had stored and ends with the same
numbers. Results (JSON files and the run's rows) are written only once everything is scored.
"""

from __future__ import annotations

import time
from typing import Any, TypeVar

from gapmeter.cost.estimate import Pricing
from gapmeter.efficiency.recorder import RequestRecorder
from gapmeter.efficiency.run import measure_run, store_efficiency
from gapmeter.engine.aggregate import aggregate_groups, aggregate_task
from gapmeter.engine.cache import ResponseCache
from gapmeter.engine.plan import resolve_tasks
from gapmeter.engine.progress import Reporter
from gapmeter.errors import ConfigError, GapmeterError
from gapmeter.models.base import ModelBackend, RequestStats, parse_model_args
from gapmeter.models.chat_template import ChatTemplate
from gapmeter.models.registry import check_backend, load_model
from gapmeter.notices import notice
from gapmeter.outcomes import RunOutcome, TaskOutcome
from gapmeter.requests import (
    GenerateRequest,
    LoglikelihoodRequest,
    Request,
    RequestKind,
    RollingLoglikelihoodRequest,
    request_hash,
)
from gapmeter.spec import RunSpec
from gapmeter.store import lm_eval_layout, results_json
from gapmeter.store.db import open_store, resolve_db_url
from gapmeter.store.runs import finish_run, start_run
from gapmeter.tasks.chat import PromptFormat
from gapmeter.tasks.registry import TaskRegistry
from gapmeter.tasks.scoring import score_task
from gapmeter.tasks.task import DocPlan

REQUEST_KINDS: tuple[RequestKind, ...] = ("loglikelihood", "loglikelihood_rolling", "generate_until")


def evaluate(spec: RunSpec, *, reporter: Reporter | None = None, model: ModelBackend | None = None) -> RunOutcome:
    reporter = reporter or Reporter(enabled=False)
    started = time.perf_counter()
    started_unix = time.time()
    check_backend(spec.model)
    parse_model_args(spec.model_args)
    pricing = Pricing.resolve(spec.model, spec.model_args, gpu_hour_cost=spec.gpu_hour_cost, prices=spec.prices)
    registry = TaskRegistry.load(list(spec.include_path))
    plan = resolve_tasks(registry, list(spec.tasks), num_fewshot=spec.num_fewshot, data_dir=spec.data_dir)

    # Build every doc's prompt and requests before loading the model: bad data fails fast.
    # A chat template is the model's, so with one the model loads first.
    timings: dict[str, float] = {}
    if model is None and spec.apply_chat_template:
        t0 = time.perf_counter()
        model = load_model(spec.model, spec.model_args, device=spec.device, batch_size=spec.batch_size)
        timings["model_load"] = time.perf_counter() - t0
    prompt_format, chat_template = _prompt_format(spec, model)
    t0 = time.perf_counter()
    plans: dict[str, list[DocPlan]] = {}
    for name, leaf in plan.leaves.items():
        plans[name] = leaf.task.plan(num_fewshot=leaf.num_fewshot, limit=spec.limit, seed=spec.fewshot_seed,
                                     prompt_format=prompt_format, gen_kwargs=spec.gen_kwargs or None)

    timings["prompts"] = time.perf_counter() - t0
    if model is None:
        t0 = time.perf_counter()
        model = load_model(spec.model, spec.model_args, device=spec.device, batch_size=spec.batch_size)
        timings["model_load"] = time.perf_counter() - t0
    fingerprint = model.fingerprint()
    run_id = spec.run_id(fingerprint)
    db_url = resolve_db_url(spec.db, spec.output_path)
    sessions = open_store(db_url)
    start_run(sessions, run_id, spec, fingerprint, model.describe())

    unique: dict[str, Request] = {}
    for doc_plans in plans.values():
        for p in doc_plans:
            for r in p.requests:
                unique.setdefault(request_hash(r), r)
    cache = ResponseCache(sessions, fingerprint)
    recorder = RequestRecorder(sessions, fingerprint, model)
    responses = cache.get_many(unique)
    cached = len(responses)
    missing = [h for h in unique if h not in responses]
    with reporter.bar(f"{model.name}: {len(missing)} requests ({cached} cached)", len(missing)) as advance:
        for kind in REQUEST_KINDS:
            todo = [h for h in missing if unique[h].kind == kind]
            if not todo:
                continue
            t0 = time.perf_counter()
            _compute(model, kind, todo, unique, cache, responses, advance, recorder)
            timings[kind] = time.perf_counter() - t0

    t0 = time.perf_counter()
    outcomes: dict[str, TaskOutcome] = {}
    doc_values: dict[str, dict[tuple[str, str], list[float]]] = {}
    for name, leaf in plan.leaves.items():
        doc_plans = plans[name]
        resp = [[responses[request_hash(r)] for r in p.requests] for p in doc_plans]
        scores = score_task(leaf.task, doc_plans, resp)
        metrics = aggregate_task(leaf.task, doc_plans, scores, spec.bootstrap_iters)
        outcomes[name] = TaskOutcome(name, leaf.num_fewshot, len(leaf.task.eval_docs), doc_plans, scores, metrics)
        doc_values[name] = {
            (m, f): [float(s.metrics[f][m]) for s in scores]
            for f in (scores[0].metrics if scores else {})
            for m in scores[0].metrics[f]
            if isinstance(scores[0].metrics[f][m], int | float)
        }
    groups = aggregate_groups(plan, {n: o.metrics for n, o in outcomes.items()}, doc_values)
    timings["metrics"] = time.perf_counter() - t0
    outcome = RunOutcome(
        run_id=run_id,
        spec=spec,
        model_info=model.describe(),
        tasks=outcomes,
        groups=groups,
        plan=plan,
        wall_seconds=time.perf_counter() - started,
        computed_requests=len(missing),
        cached_requests=cached,
        db_url=db_url,
        output_path=spec.output_path,
        timings=timings,
        chat_template=chat_template,
        started_unix=started_unix,
        tokenizer_info=lm_eval_layout.tokenizer_info(model),
    )
    # From the stored per-request timings (docs/efficiency.md), before the run turns complete.
    invocation = {"recorded_requests": recorder.recorded, "failed_requests": recorder.failed,
                  "backend_call_seconds": sum(timings.get(k, 0.0) for k in REQUEST_KINDS)}
    t0 = time.perf_counter()
    efficiency = measure_run(sessions, fingerprint, outcome, pricing, invocation)
    outcome.efficiency = efficiency
    store_efficiency(sessions, run_id, efficiency)
    document = results_json.results_document(outcome)
    finish_run(sessions, outcome, document)
    if spec.output_path is not None:
        results_json.write_outputs(outcome, document)
    timings["store"] = time.perf_counter() - t0
    return outcome


def _prompt_format(spec: RunSpec, model: ModelBackend | None) -> tuple[PromptFormat | None, str | None]:
    """``--system_instruction`` / ``--apply_chat_template`` as the tasks take them, and the chat
    template results.json records (lm-eval's ``chat_template``)."""
    pretrained = parse_model_args(spec.model_args).get("pretrained", "")
    if not spec.apply_chat_template and any(kw in pretrained.lower() for kw in ("inst", "chat")):
        # lm-eval's warning (it looks at all of model_args; the model's name is what it means)
        notice(f"pretrained={pretrained} looks like an instruct or chat model but no chat template "
               "is applied; lm-eval recommends --apply_chat_template (and --fewshot_as_multiturn)")
    if not spec.formats_prompts:
        return None, None
    if not spec.apply_chat_template:
        return PromptFormat(system_instruction=spec.system_instruction), None
    assert model is not None
    chooser = getattr(model, "chat_template", None)
    if chooser is None:
        raise ConfigError(f"--apply_chat_template is not supported by --model {spec.model}")
    name = spec.apply_chat_template if isinstance(spec.apply_chat_template, str) else None
    template: ChatTemplate = chooser(name)
    fmt = PromptFormat(system_instruction=spec.system_instruction, render=template.render,
                       fewshot_as_multiturn=bool(spec.fewshot_as_multiturn))
    return fmt, template.source


def _compute(
    model: ModelBackend,
    kind: RequestKind,
    hashes: list[str],
    unique: dict[str, Request],
    cache: ResponseCache,
    responses: dict[str, Any],
    advance: Any,
    recorder: RequestRecorder | None = None,
) -> None:
    requests = [unique[h] for h in hashes]

    failed: dict[str, str] = {}  # request hash -> error, for requests that failed after retries
    mark = time.perf_counter()  # the engine's clock, for backends that report no latency

    def on_done(positions: list[int], results: list[Any], stats: list[RequestStats] | None = None) -> None:
        nonlocal mark
        now = time.perf_counter()
        items = []
        for j, (i, r) in enumerate(zip(positions, results, strict=True)):
            if stats is not None and stats[j].failed:  # never cached nor scored: asked again on resume
                failed[hashes[i]] = stats[j].error or "failed"
                continue
            items.append((hashes[i], kind, r))
        # One transaction: a response is stored with its measurement or not at all (and one
        # commit, not two, per hand-off: the engine's main per-second cost on an API run).
        with cache.sessions() as s:
            if recorder is not None:
                recorder.record(kind, hashes, requests, positions, results, stats, since=mark, now=now, session=s)
            cache.put_many(items, session=s)
            s.commit()
        for h, _, r in items:
            responses[h] = r
        advance(len(positions))
        mark = time.perf_counter()  # the engine's own work lies outside every measured interval

    if kind == "loglikelihood":
        model.loglikelihood(_all_of(LoglikelihoodRequest, requests), on_done)
    elif kind == "loglikelihood_rolling":
        model.loglikelihood_rolling(_all_of(RollingLoglikelihoodRequest, requests), on_done)
    else:
        model.generate(_all_of(GenerateRequest, requests), on_done)
    if failed:
        raise GapmeterError(
            f"{len(failed)} of {len(hashes)} {kind} requests failed after retries (first: "
            f"{next(iter(failed.values()))}); the {len(hashes) - len(failed)} answered are stored: "
            "run the same command again to resume"
        )
    lost = [h for h in hashes if h not in responses]
    if lost:
        raise RuntimeError(f"backend {model.name} returned no response for {len(lost)} {kind} requests")


R = TypeVar("R", LoglikelihoodRequest, RollingLoglikelihoodRequest, GenerateRequest)


def _all_of(kind: type[R], requests: list[Request]) -> list[R]:
    """The requests of one batch as their one type (``evaluate`` groups them by kind)."""
    typed = [r for r in requests if isinstance(r, kind)]
    if len(typed) != len(requests):
        raise AssertionError(f"a {kind.__name__} batch holds requests of another kind")
    return typed
