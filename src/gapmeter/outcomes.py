"""What a run produced: the plan it ran (leaf tasks, groups), each metric with its stderr and CI,
each task's plans and scores, and the run as a whole.

Plain values below the engine, so that the store (``results.json``, task configs) and the
efficiency summaries read a run's outcome without importing the engine that makes it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from gapmeter.scoring import stats
from gapmeter.spec import RunSpec
from gapmeter.tasks.schema import GroupAggregate
from gapmeter.tasks.task import DocPlan, DocScore, Task


@dataclass
class LeafTask:
    task: Task
    num_fewshot: int


@dataclass
class GroupNode:
    name: str
    children: list[str]  # leaf task names and group names, in order
    aggregates: list[GroupAggregate]
    version: Any = None


@dataclass
class TaskPlan:
    leaves: dict[str, LeafTask] = field(default_factory=dict)
    groups: dict[str, GroupNode] = field(default_factory=dict)
    top: list[str] = field(default_factory=list)

    def leaves_under(self, name: str) -> list[str]:
        if name in self.leaves and name not in self.groups:
            return [name]
        out: list[str] = []
        for child in self.groups[name].children:
            for leaf in self.leaves_under(child):
                if leaf not in out:
                    out.append(leaf)
        return out


@dataclass
class MetricResult:
    task: str
    metric: str
    filter: str
    value: float
    stderr: float | None
    n: int
    clustered_stderr: float | None = None
    n_clusters: int | None = None
    is_group: bool = False
    higher_is_better: bool = True
    # Non-mean aggregations (F1, MCC, BLEU, median...): a seeded percentile bootstrap interval,
    # since the normal interval around such a statistic can be skewed or leave [0, 1].
    bootstrap_ci: tuple[float, float] | None = None

    @property
    def ci95(self) -> tuple[float, float] | None:
        if self.bootstrap_ci is not None:
            return self.bootstrap_ci
        if self.stderr is None or not math.isfinite(self.stderr):
            return None
        se = max(self.stderr, self.clustered_stderr or 0.0)
        return stats.mean_ci(self.value, se)


class EfficiencyReport(Protocol):
    """A run's efficiency summary (``efficiency.run.RunEfficiency``) as results.json needs it."""

    def to_json(self) -> dict[str, Any]: ...


@dataclass
class TaskOutcome:
    name: str
    num_fewshot: int
    n_docs_total: int
    plans: list[DocPlan]
    scores: list[DocScore]
    metrics: list[MetricResult]


@dataclass
class RunOutcome:
    run_id: str
    spec: RunSpec
    model_info: dict[str, Any]
    tasks: dict[str, TaskOutcome]
    groups: list[MetricResult]
    plan: TaskPlan
    wall_seconds: float
    computed_requests: int
    cached_requests: int
    db_url: str
    output_path: Path | None
    timings: dict[str, float] = field(default_factory=dict)
    efficiency: EfficiencyReport | None = None
    # the chat template the prompts were rendered with (--apply_chat_template; "" when a server applied it)
    chat_template: str | None = None
    #: known only while the run is on: its start (unix seconds, lm-eval's ``date``) and lm-eval's
    #: tokenizer keys (``store/lm_eval_layout.tokenizer_info``), for results.json
    started_unix: float | None = None
    tokenizer_info: dict[str, Any] = field(default_factory=dict)
