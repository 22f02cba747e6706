"""Single-answer grading: each answer of a stored run judged against its reference and a rubric.

The verdicts become a metric of the run (``judge_score``: mean 1–10 rating, or ``judge_pass``:
pass rate) with a standard error and CI per task and per group, so ``compare``, ``profile`` and
the board treat it like any score. Unparseable verdicts (after one retry) are left out of the
metric and counted; items with a human label give the judge's agreement with it.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gapmeter.compare.runs import StoredRun
from gapmeter.judge.agreement import agreement, human_value
from gapmeter.judge.asking import Asked, Judge
from gapmeter.judge.items import Item
from gapmeter.judge.prompts import Scale, parse_single, single_prompt
from gapmeter.outcomes import MetricResult
from gapmeter.scoring import stats

METRIC_OF_SCALE = {"1-10": "judge_score", "pass_fail": "judge_pass"}


@dataclass
class SingleResult:
    metric: str
    scale: str
    items: list[Item]
    asked: list[Asked]
    metrics: list[MetricResult] = field(default_factory=list)
    unparseable: int = 0
    retried: int = 0
    calibration: dict[str, Any] = field(default_factory=dict)
    judge: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "metric": self.metric, "scale": self.scale, "judge": self.judge, "n_items": len(self.items),
            "unparseable": self.unparseable, "unparseable_rate": self.unparseable / len(self.items) if self.items else 0.0,
            "retried": self.retried, "calibration": self.calibration,
            "metrics": {m.task: {"value": m.value, "stderr": m.stderr, "ci95": list(m.ci95) if m.ci95 else None,
                                 "n": m.n, "is_group": m.is_group} for m in self.metrics},
        }


def rubric_id(rubric: str) -> str:
    return hashlib.sha256(rubric.encode("utf-8")).hexdigest()[:12]


def _metric(task: str, metric: str, values: Sequence[float], *, group: bool) -> MetricResult:
    n = len(values)
    value = sum(values) / n if n else math.nan
    stderr = stats.mean_stderr(values) if n >= 2 else None
    return MetricResult(task, metric, "none", value, stderr, n, is_group=group)


def aggregates(run: StoredRun, metric: str, values: dict[str, list[float]]) -> list[MetricResult]:
    """Per task, then per group of the run over all its judged items (a size-weighted mean)."""
    out = [_metric(t, metric, v, group=False) for t, v in values.items()]
    for name, info in run.tasks.items():
        if info.kind != "group":
            continue
        pooled = [x for leaf in run.leaves_under(name) for x in values.get(leaf, [])]
        if pooled:
            out.append(_metric(name, metric, pooled, group=True))
    return out


def grade(run: StoredRun, items: list[Item], judge: Judge, *, rubric: str, scale: Scale,
          judge_info: dict[str, Any]) -> SingleResult:
    prompts = [single_prompt(i.question, i.reference, i.answer, rubric=rubric, scale=scale) for i in items]
    asked = judge.ask(prompts, lambda reply: parse_single(reply, scale), scale)
    metric = METRIC_OF_SCALE[scale]
    result = SingleResult(metric, scale, items, asked, judge={**judge_info, "rubric_sha": rubric_id(rubric)})
    values: dict[str, list[float]] = {}
    for item, a in zip(items, asked, strict=True):
        if a.verdict is None:
            result.unparseable += 1
            continue
        values.setdefault(item.task, []).append(float(a.verdict))
    result.retried = sum(len(a.replies) > 1 for a in asked)
    result.metrics = aggregates(run, metric, values)
    result.calibration = calibrate(items, judge, rubric=rubric, scale=scale)
    return result


def calibrate(items: list[Item], judge: Judge, *, rubric: str, scale: Scale) -> dict[str, Any]:
    """The judge grades the answers humans graded (``graded_answer`` + ``human_label`` columns);
    its agreement with them says how far to trust its verdicts on the run's answers."""
    labelled = [(i, h) for i in items if i.graded_answer and i.human_label is not None
                and (h := human_value(i.human_label, scale)) is not None]
    if not labelled:
        return {}
    prompts = [single_prompt(i.question, i.reference, i.graded_answer or "", rubric=rubric, scale=scale)
               for i, _ in labelled]
    asked = judge.ask(prompts, lambda reply: parse_single(reply, scale), scale)
    pairs = [(float(a.verdict), h) for a, (_, h) in zip(asked, labelled, strict=True) if a.verdict is not None]
    out = agreement([j for j, _ in pairs], [h for _, h in pairs], scale=scale)
    out["unparseable"] = len(labelled) - len(pairs)
    out["items"] = [{"task": i.task, "doc_id": i.doc_id, "human": h, "judge": a.verdict, "raw": a.replies}
                    for a, (i, h) in zip(asked, labelled, strict=True)]
    return out
