"""A run's efficiency: the whole run, each task and each group, priced, stored and serialised."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker

from gapmeter.cost.estimate import Pricing
from gapmeter.efficiency.summary import EfficiencySummary, Score, load_timings, summarise
from gapmeter.requests import request_hash
from gapmeter.store.models import EfficiencyValue

if TYPE_CHECKING:
    from gapmeter.outcomes import MetricResult, RunOutcome

DEFINITIONS = "docs/efficiency.md"


@dataclass
class RunEfficiency:
    run: EfficiencySummary
    tasks: dict[str, EfficiencySummary]
    groups: dict[str, EfficiencySummary]
    pricing: Pricing
    # What this invocation did (not reconstructable after a kill; informative only).
    invocation: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "definitions": DEFINITIONS,
            "pricing": self.pricing.to_json(),
            "run": self.run.to_json(),
            "tasks": {n: s.to_json() for n, s in self.tasks.items()},
            "groups": {n: s.to_json() for n, s in self.groups.items()},
            "this_invocation": self.invocation,
        }

    def summaries(self) -> list[EfficiencySummary]:
        return [self.run, *self.tasks.values(), *self.groups.values()]


def _score(metrics: list[MetricResult]) -> Score | None:
    """The first metric (the task's main one, in metric_list order), if higher is better."""
    if not metrics:
        return None
    m = metrics[0]
    if not m.higher_is_better or m.value is None or not math.isfinite(m.value):
        return None
    return Score(f"{m.metric},{m.filter}", float(m.value))


def measure_run(
    sessions: sessionmaker[Session],
    fingerprint: str,
    outcome: RunOutcome,
    pricing: Pricing,
    invocation: dict[str, Any] | None = None,
) -> RunEfficiency:
    task_hashes = {
        name: list(dict.fromkeys(request_hash(r) for p in task.plans for r in p.requests))
        for name, task in outcome.tasks.items()
    }
    timings = load_timings(sessions, fingerprint, (h for hs in task_hashes.values() for h in hs))
    tasks = {
        name: summarise("task", name, task_hashes[name], len(task.plans), timings, pricing, score=_score(task.metrics))
        for name, task in outcome.tasks.items()
    }
    groups: dict[str, EfficiencySummary] = {}
    for gname in outcome.plan.groups:
        leaves = [leaf for leaf in outcome.plan.leaves_under(gname) if leaf in outcome.tasks]
        groups[gname] = summarise(
            "group",
            gname,
            (h for leaf in leaves for h in task_hashes[leaf]),
            sum(len(outcome.tasks[leaf].plans) for leaf in leaves),
            timings,
            pricing,
            score=_score([m for m in outcome.groups if m.task == gname]),
        )
    top_scores = [groups[n].score if n in groups else tasks[n].score if n in tasks else None for n in outcome.plan.top]
    run_score = None
    if top_scores and all(s is not None for s in top_scores):
        values = [s.value for s in top_scores if s is not None]
        label = top_scores[0].metric if len(top_scores) == 1 and top_scores[0] else "mean of main metrics"
        run_score = Score(label, math.fsum(values) / len(values))
    run = summarise(
        "run",
        "",
        (h for hs in task_hashes.values() for h in hs),
        sum(len(t.plans) for t in outcome.tasks.values()),
        timings,
        pricing,
        score=run_score,
        wall_seconds=outcome.wall_seconds,
    )
    return RunEfficiency(run, tasks, groups, pricing, dict(invocation or {}))


def store_efficiency(sessions: sessionmaker[Session], run_id: str, eff: RunEfficiency) -> None:
    """Replace the run's efficiency rows (one transaction)."""
    with sessions() as s:
        s.execute(delete(EfficiencyValue).where(EfficiencyValue.run_id == run_id))
        for summary in eff.summaries():
            s.add(
                EfficiencyValue(
                    run_id=run_id,
                    scope=summary.scope,
                    task=summary.name,
                    n_items=summary.n_items,
                    n_requests=summary.n_requests,
                    n_timed_requests=summary.n_timed_requests,
                    compute_seconds=summary.compute_seconds,
                    wall_seconds=summary.wall_seconds,
                    prompt_tokens=summary.prompt_tokens,
                    completion_tokens=summary.completion_tokens,
                    latency_p50=summary.latency.p50,
                    latency_p90=summary.latency.p90,
                    latency_p99=summary.latency.p99,
                    ttft_p50=summary.ttft.p50,
                    itl_p50=summary.inter_token_latency.p50,
                    requests_per_second=summary.requests_per_second,
                    items_per_second=summary.items_per_second,
                    output_tokens_per_second=summary.output_tokens_per_second,
                    peak_host_bytes=summary.peak_host_bytes,
                    peak_gpu_bytes=summary.peak_gpu_bytes,
                    cost_usd=summary.cost.usd if summary.cost else None,
                    cost_basis=summary.cost.basis if summary.cost else None,
                    cost_per_1k_items=summary.cost.per_1k_items if summary.cost else None,
                    score=summary.score.value if summary.score else None,
                    score_per_dollar=summary.score_per_dollar,
                    summary=summary.to_json() | {"pricing": eff.pricing.to_json()},
                )
            )
        s.commit()
