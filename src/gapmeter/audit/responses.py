"""Running the audit's requests through a backend, deduplicated and (optionally) cached.

The audit asks ordinary requests (loglikelihood, rolling loglikelihood, generation) wherever it
can, so every backend that ``gapmeter run`` supports runs them, and the response cache makes an
interrupted audit resumable and a repeated one free.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gapmeter.audit.progress import Meter, NullMeter
from gapmeter.engine.cache import ResponseCache
from gapmeter.models.base import ModelBackend, RequestStats
from gapmeter.requests import (
    GenerateRequest,
    LoglikelihoodRequest,
    Request,
    RequestKind,
    RollingLoglikelihoodRequest,
    request_hash,
)


class RequestRunner:
    def __init__(self, backend: ModelBackend, cache: ResponseCache | None = None) -> None:
        self.backend = backend
        self.cache = cache
        self._memo: dict[str, Any] = {}
        self.computed = 0
        self.meter: Meter = NullMeter()

    def run(self, requests: Sequence[Request]) -> list[Any]:
        unique: dict[str, Request] = {}
        for r in requests:
            unique.setdefault(request_hash(r), r)
        missing = [h for h in unique if h not in self._memo]
        if missing and self.cache is not None:
            self._memo.update(self.cache.get_many(missing))
            missing = [h for h in missing if h not in self._memo]
        self.meter.add(len(missing))
        kinds: tuple[RequestKind, ...] = ("loglikelihood", "loglikelihood_rolling", "generate_until")
        for kind in kinds:
            todo = [h for h in missing if unique[h].kind == kind]
            if todo:
                self._compute(kind, todo, unique)
        return [self._memo[request_hash(r)] for r in requests]

    def _compute(self, kind: RequestKind, hashes: list[str], unique: dict[str, Request]) -> None:
        reqs = [unique[h] for h in hashes]

        def on_done(positions: list[int], results: list[Any], stats: list[RequestStats] | None = None) -> None:
            items: list[tuple[str, RequestKind, Any]] = [(hashes[i], kind, r) for i, r in zip(positions, results, strict=True)]
            if self.cache is not None:
                self.cache.put_many(items)
            for h, _, r in items:
                self._memo[h] = r
            self.computed += len(items)
            self.meter.advance(len(items))

        # One kind per call (``run`` groups them), so each list narrows to its request type.
        if kind == "loglikelihood":
            self.backend.loglikelihood([r for r in reqs if isinstance(r, LoglikelihoodRequest)], on_done)
        elif kind == "loglikelihood_rolling":
            self.backend.loglikelihood_rolling([r for r in reqs if isinstance(r, RollingLoglikelihoodRequest)], on_done)
        else:
            self.backend.generate([r for r in reqs if isinstance(r, GenerateRequest)], on_done)
        lost = [h for h in hashes if h not in self._memo]
        if lost:
            raise RuntimeError(f"backend {self.backend.name} returned no response for {len(lost)} {kind} requests")
