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
from gapmeter.models.base import ModelBackend
from gapmeter.requests import Request, request_hash


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
        for kind in ("loglikelihood", "loglikelihood_rolling", "generate_until"):
            todo = [h for h in missing if unique[h].kind == kind]
            if todo:
                self._compute(kind, todo, unique)
        return [self._memo[request_hash(r)] for r in requests]

    def _compute(self, kind: str, hashes: list[str], unique: dict[str, Request]) -> None:
        reqs = [unique[h] for h in hashes]

        def on_done(positions: list[int], results: list[Any], stats: list[Any] | None = None) -> None:
            items = [(hashes[i], kind, r) for i, r in zip(positions, results, strict=True)]
            if self.cache is not None:
                self.cache.put_many(items)  # type: ignore[arg-type]
            for h, _, r in items:
                self._memo[h] = r
            self.computed += len(items)
            self.meter.advance(len(items))

        if kind == "loglikelihood":
            self.backend.loglikelihood(reqs, on_done)  # type: ignore[arg-type]
        elif kind == "loglikelihood_rolling":
            self.backend.loglikelihood_rolling(reqs, on_done)  # type: ignore[arg-type]
        else:
            self.backend.generate(reqs, on_done)  # type: ignore[arg-type]
        lost = [h for h in hashes if h not in self._memo]
        if lost:
            raise RuntimeError(f"backend {self.backend.name} returned no response for {len(lost)} {kind} requests")
