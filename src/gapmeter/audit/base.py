"""What every detector shares: its needs, the context it runs in, and how it says it cannot run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from gapmeter.audit.config import AuditConfig
from gapmeter.audit.items import AuditSet, item_scores
from gapmeter.audit.responses import RequestRunner
from gapmeter.audit.result import DetectorResult
from gapmeter.audit.tokens import TokenScorer, TokenStats


@dataclass
class AuditContext:
    """One (model, task) under audit, with memoised per-item results the detectors share."""

    backend: Any
    runner: RequestRunner
    capabilities: frozenset[str]
    token_scorer: TokenScorer | None
    candidate: AuditSet
    reference: AuditSet | None
    config: AuditConfig
    _scores: dict[str, list[float]] = field(default_factory=dict)
    _tokens: dict[str, list[TokenStats]] = field(default_factory=dict)

    def scores(self, which: str) -> list[float]:
        """Primary-metric value per item of the candidate or reference set (computed once)."""
        if which not in self._scores:
            s = self.candidate if which == "candidate" else self.reference
            assert s is not None
            self._scores[which] = item_scores(s.task, [it.doc for it in s.items], self.runner)
        return self._scores[which]

    def token_stats(self, which: str) -> list[TokenStats]:
        if which not in self._tokens:
            s = self.candidate if which == "candidate" else self.reference
            assert s is not None and self.token_scorer is not None
            meter = self.runner.meter
            meter.add(len(s.items))
            self._tokens[which] = self.token_scorer.token_stats(s.texts(), meter.advance)
        return self._tokens[which]


class Detector:
    name: ClassVar[str]
    needs: ClassVar[tuple[str, ...]]
    # What else it needs besides backend capabilities, stated for the user.
    requires: ClassVar[str] = ""

    def result(self, ctx: AuditContext, **kwargs: Any) -> DetectorResult:
        return DetectorResult(detector=self.name, task=ctx.candidate.name, needs=list(self.needs), **kwargs)

    def skip(self, ctx: AuditContext, reason: str) -> DetectorResult:
        return self.result(ctx, skipped=reason, n=len(ctx.candidate.items))

    def missing_capability(self, ctx: AuditContext) -> str | None:
        lacking = [c for c in self.needs if c not in ctx.capabilities]
        if lacking:
            name = getattr(ctx.backend, "name", type(ctx.backend).__name__)
            return f"needs {', '.join(lacking)}, which backend {name!r} does not provide"
        return None

    def run(self, ctx: AuditContext) -> DetectorResult:
        missing = self.missing_capability(ctx)
        if missing:
            return self.skip(ctx, missing)
        if len(ctx.candidate.items) < ctx.config.min_items:
            return self.skip(ctx, f"needs at least {ctx.config.min_items} items, the task has {len(ctx.candidate.items)}")
        return self.detect(ctx)

    def detect(self, ctx: AuditContext) -> DetectorResult:  # pragma: no cover - abstract
        raise NotImplementedError
