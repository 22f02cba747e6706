"""One model replica, held by a Ray actor: the backend is loaded in the actor's process (with the
CPUs/GPUs the actor asked for) and answers one shard of requests per call.

A plain class: ``ray_pool`` wraps it with ``ray.remote`` at run time, so importing this module
needs no Ray.
"""

from __future__ import annotations

from typing import Any

from gapmeter.models.base import ModelBackend, RequestStats
from gapmeter.models.registry import load_model
from gapmeter.requests import (
    GenerateRequest,
    LoglikelihoodRequest,
    Request,
    RequestKind,
    RollingLoglikelihoodRequest,
)


class Replica:
    def __init__(self, model: str, model_args: str, device: str | None, batch_size: str,
                 rate_limiter: Any = None) -> None:
        self.backend: ModelBackend = load_model(model, model_args, device=device, batch_size=batch_size)
        if rate_limiter is not None:
            from gapmeter.executors.shared_limits import share_limits

            share_limits(self.backend, rate_limiter)

    def identity(self) -> tuple[str, dict[str, Any]]:
        """The backend's fingerprint (the cache key and part of the run id) and description."""
        return self.backend.fingerprint(), self.backend.describe()

    def node(self) -> str:
        """The id of the Ray node this replica runs on."""
        import ray

        return str(ray.get_runtime_context().get_node_id())

    def answer(self, kind: RequestKind, requests: list[Request]) -> tuple[list[Any], list[RequestStats | None]]:
        """Every request of the shard answered (or marked failed in its stats), in input order."""
        if any(r.kind != kind for r in requests):
            raise AssertionError(f"a {kind} shard holds requests of another kind")
        results: list[Any] = [None] * len(requests)
        stats: list[RequestStats | None] = [None] * len(requests)
        seen = [False] * len(requests)

        def on_done(positions: list[int], answers: list[Any], measured: list[RequestStats] | None = None) -> None:
            for j, i in enumerate(positions):
                results[i] = answers[j]
                stats[i] = measured[j] if measured is not None else None
                seen[i] = True

        backend = self.backend
        if kind == "loglikelihood":
            backend.loglikelihood([r for r in requests if isinstance(r, LoglikelihoodRequest)], on_done)
        elif kind == "loglikelihood_rolling":
            backend.loglikelihood_rolling(
                [r for r in requests if isinstance(r, RollingLoglikelihoodRequest)], on_done)
        else:
            backend.generate([r for r in requests if isinstance(r, GenerateRequest)], on_done)
        if not all(seen):
            raise RuntimeError(f"backend {backend.name} returned no response for {seen.count(False)} requests")
        return results, stats
