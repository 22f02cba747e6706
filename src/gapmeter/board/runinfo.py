"""A stored run as the board reads it: its identity, where it came from, and its metric rows
(``Score``, with the interval the ranking uses). Shared by the snapshot (``readmodel``) and the
cost/latency/audit columns (``dimensions``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from gapmeter.compare.ranking import Interval


@dataclass(frozen=True)
class Score:
    task: str
    metric: str
    filter: str
    value: float | None
    stderr: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    run_id: str
    is_group: bool = False

    @property
    def interval(self) -> Interval | None:
        if self.value is None:
            return None
        if self.ci_low is None or self.ci_high is None:
            return Interval(self.value, self.value, self.value)
        return Interval(self.value, self.ci_low, self.ci_high)

    @property
    def key(self) -> str:
        return f"{self.metric},{self.filter}"

    def as_json(self) -> dict[str, Any]:
        return {
            "task": self.task, "metric": self.metric, "filter": self.filter, "value": self.value,
            "stderr": self.stderr, "ci95": [self.ci_low, self.ci_high] if self.ci_low is not None else None,
            "n": self.n, "run_id": self.run_id, "is_group": self.is_group,
        }


@dataclass
class RunInfo:
    id: str
    model_name: str
    backend: str
    model_args: str
    created_at: datetime | None
    finished_at: datetime | None
    wall_seconds: float | None
    top_tasks: list[str]
    fingerprint: str = ""
    source: str = "local"
    submitter: str | None = None
    hidden: bool = False
    hidden_reason: str = ""
    scores: dict[str, list[Score]] = field(default_factory=dict)  # task -> every metric row

    # RunInfo objects are reused by later snapshots while their run is unchanged (SnapshotCache),
    # so what is derived from their scores is computed once.
    @cached_property
    def n_items(self) -> int:
        return sum(_leaf_n(rows) for rows in self.scores.values() if rows and not rows[0].is_group)

    @cached_property
    def value_keys(self) -> tuple[tuple[str, str], ...]:
        """(task, "metric,filter") of every metric row with a value."""
        return tuple((task, s.key) for task, rows in self.scores.items() for s in rows if s.value is not None)


def _leaf_n(rows: list[Score]) -> int:
    return max((r.n for r in rows), default=0)
