"""rpm/tpm limits that hold for the whole cluster: one named Ray actor keeps the token buckets
(``models.rate_limit``) and every replica asks it for a permit before each API request.

Per-replica buckets would let N replicas send N times the limit; here the buckets exist once,
in the ``rate-limits`` actor, and a replica's ``acquire`` waits until that actor grants it.
"""

from __future__ import annotations

from typing import Any

from gapmeter.executors.ray_import import NAMESPACE, import_ray
from gapmeter.models.rate_limit import RateLimiter


class LimitKeeper:
    """The cluster's buckets (an async Ray actor: waiting callers do not block one another)."""

    def __init__(self, rpm: float | None, tpm: float | None) -> None:
        self.limiter = RateLimiter(rpm, tpm)

    async def acquire(self, estimated_tokens: int) -> float:
        return await self.limiter.acquire(estimated_tokens)


def shared_limiter(rpm: float | None, tpm: float | None) -> Any:
    """A new keeper actor for this run (a handle replicas receive as a constructor argument)."""
    ray = import_ray()
    return ray.remote(LimitKeeper).options(namespace=NAMESPACE, num_cpus=0, max_concurrency=1000).remote(rpm, tpm)


class ClusterRateLimiter(RateLimiter):
    """A replica's side: the ``RateLimiter`` interface, answered by the keeper actor."""

    def __init__(self, keeper: Any) -> None:
        super().__init__()
        self.keeper = keeper

    @property
    def active(self) -> bool:
        return True

    async def acquire(self, estimated_tokens: int) -> float:
        waited: float = await self.keeper.acquire.remote(estimated_tokens)
        return waited


def share_limits(backend: Any, keeper: Any) -> None:
    """Make ``backend`` (an API backend with ``shared_rate_limiter``) take permits from ``keeper``."""
    if not hasattr(backend, "shared_rate_limiter"):
        return
    backend.shared_rate_limiter = ClusterRateLimiter(keeper)
