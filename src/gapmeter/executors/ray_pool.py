"""``--executor ray``: a run's missing requests sharded across Ray actors, one model replica each.

``RayReplicas`` stands in for the model backend in ``engine.evaluate``: the engine plans, dedupes
by request hash and hands it only the missing requests with its ``on_done`` callback, exactly as
for a local backend. The requests are cut into shards; each replica actor answers a shard at a
time (``depth`` in flight per replica) and the driver calls ``on_done`` as each shard comes back,
so responses stream into the store as they finish and the driver stays its only writer.

Faults: a replica that dies (killed, its node lost) or becomes unreachable fails its in-flight
shards; the driver kills it for certain, starts
a replacement and puts those shards back at the head of the queue. A shard's responses are
delivered once: positions already handed to ``on_done`` are never handed again, so nothing is
counted twice (the cache is keyed by request hash as well). A killed driver loses nothing
stored: the same command resumes from the cache.

The replicas are started lazily, at the first ``fingerprint()``, which the engine asks for only
after every doc was planned: bad data still fails before any model loads.
"""

from __future__ import annotations

import dataclasses
import os
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gapmeter.errors import GapmeterError
from gapmeter.executors.ray_import import NAMESPACE, connect, import_ray
from gapmeter.executors.replica import Replica
from gapmeter.models.base import OnDone, RequestStats
from gapmeter.requests import (
    GenerateRequest,
    LoglikelihoodRequest,
    Request,
    RequestKind,
    RollingLoglikelihoodRequest,
)


@dataclass(frozen=True)
class RayOptions:
    """How the replicas are placed (execution only: never part of a run's identity)."""

    address: str | None = None
    replicas: int = 1
    num_gpus_per_replica: float = 0.0
    num_cpus_per_replica: float = 1.0
    shard_size: int = 32
    depth: int = 2  # shards in flight per replica: the next one waits in the actor's queue
    max_replacements: int | None = None  # replicas restarted after a death (default 2 × replicas)

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise GapmeterError("--ray_replicas must be >= 1")
        if self.num_gpus_per_replica < 0 or self.num_cpus_per_replica < 0:
            raise GapmeterError("--ray_num_gpus_per_replica / --ray_num_cpus_per_replica must be >= 0")
        if self.shard_size < 1:
            raise GapmeterError("--ray_shard_size must be >= 1")


@dataclass
class _Slot:
    """A replica actor and what it is computing now."""

    index: int
    actor: Any
    inflight: int = 0
    generation: int = 0


class RayReplicas:
    """A ``ModelBackend`` whose requests run on ``options.replicas`` Ray actors."""

    def __init__(self, model: str, model_args: str, *, device: str | None, batch_size: str,
                 options: RayOptions, rate_limits: tuple[float | None, float | None] = (None, None)) -> None:
        self.name = model
        self._load_args = (model, model_args, device, batch_size)
        self.options = options
        self._rate_limits = rate_limits
        self._slots: list[_Slot] = []
        self._identity: tuple[str, dict[str, Any]] | None = None
        self._connected = False
        self._limiter: Any = None
        self.replacements = 0  # replicas started again after one died (read by tests, reports)
        self.resubmitted_shards = 0

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> RayReplicas:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self) -> None:
        if self._slots:
            return
        import_ray()
        self._connected = connect(self.options.address)
        if any(self._rate_limits):
            from gapmeter.executors.shared_limits import shared_limiter

            self._limiter = shared_limiter(*self._rate_limits)
        self._slots = [_Slot(i, self._new_actor(i, 0)) for i in range(self.options.replicas)]
        identities = self._call_all(lambda a: a.identity.remote())
        fingerprints = {fp for fp, _ in identities}
        if len(fingerprints) != 1:
            raise GapmeterError(f"the {len(identities)} replicas loaded different models ({sorted(fingerprints)})")
        fingerprint, described = identities[0]
        nodes = set(self._call_all(lambda a: a.node.remote()))
        self._identity = (fingerprint, {**described, "executor": "ray", "ray_replicas": self.options.replicas,
                                        "ray_replica_nodes": len(nodes)})

    def _call_all(self, call: Any) -> list[Any]:
        ray = import_ray()
        try:
            return list(ray.get([call(s.actor) for s in self._slots]))
        except ray.exceptions.RayActorError as err:
            raise GapmeterError(f"a replica failed to start: {_cause(err)}") from None

    def _new_actor(self, index: int, generation: int) -> Any:
        ray = import_ray()
        actor_class = ray.remote(Replica)
        o = self.options
        name = f"replica-{os.getpid()}-{index}-{generation}"
        return actor_class.options(
            name=name, namespace=NAMESPACE, num_cpus=o.num_cpus_per_replica, num_gpus=o.num_gpus_per_replica,
            scheduling_strategy="SPREAD",  # replicas on different nodes where they fit: one lost node, one replica
        ).remote(*self._load_args, rate_limiter=self._limiter)

    def actor_names(self) -> list[str]:
        """Names of the live replica actors (namespace ``gapmeter``), e.g. for ``ray.get_actor``."""
        return [f"replica-{os.getpid()}-{s.index}-{s.generation}" for s in self._slots]

    def close(self) -> None:
        if not self._slots and not self._connected:
            return
        ray = import_ray()
        for s in self._slots:
            _kill_quietly(ray, s.actor)
        self._slots = []
        if self._connected:
            ray.shutdown()
            self._connected = False

    # -- the backend interface ---------------------------------------------------------------

    def fingerprint(self) -> str:
        self._start()
        assert self._identity is not None
        return self._identity[0]

    def describe(self) -> dict[str, Any]:
        self._start()
        assert self._identity is not None
        return dict(self._identity[1])

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest], on_done: OnDone) -> None:
        self._dispatch("loglikelihood", list(requests), on_done)

    def loglikelihood_rolling(self, requests: Sequence[RollingLoglikelihoodRequest], on_done: OnDone) -> None:
        self._dispatch("loglikelihood_rolling", list(requests), on_done)

    def generate(self, requests: Sequence[GenerateRequest], on_done: OnDone) -> None:
        self._dispatch("generate_until", list(requests), on_done)

    # -- sharding ----------------------------------------------------------------------------

    def _dispatch(self, kind: RequestKind, requests: list[Request], on_done: OnDone) -> None:
        self._start()
        ray = import_ray()
        size = self.options.shard_size
        queue: deque[range] = deque(range(i, min(i + size, len(requests))) for i in range(0, len(requests), size))
        inflight: dict[Any, tuple[_Slot, int, range]] = {}  # ref -> (slot, its generation, shard)
        delivered: set[int] = set()
        limit = self.options.max_replacements
        limit = 2 * self.options.replicas if limit is None else limit
        while queue or inflight:
            for slot in self._slots:
                while queue and slot.inflight < self.options.depth:
                    shard = queue.popleft()
                    ref = slot.actor.answer.remote(kind, [requests[i] for i in shard])
                    inflight[ref] = (slot, slot.generation, shard)
                    slot.inflight += 1
            ready, _ = ray.wait(list(inflight), num_returns=1)
            slot, generation, shard = inflight.pop(ready[0])
            try:
                results, stats = ray.get(ready[0])
            except ray.exceptions.RayActorError as err:  # dead, or unreachable (ActorUnavailableError)
                # The replica died with this shard (and maybe others) in it: answer it elsewhere.
                queue.appendleft(shard)
                self.resubmitted_shards += 1
                if slot.generation == generation:  # the first of its failed shards: replace it
                    if self.replacements >= limit:
                        raise GapmeterError(
                            f"replicas died {self.replacements + 1} times (last: {_cause(err)}); the responses "
                            "computed so far are stored: run the same command again to resume") from None
                    self.replacements += 1
                    slot.generation += 1
                    slot.inflight = 0
                    _kill_quietly(ray, slot.actor)  # unreachable may not mean dead: make sure
                    slot.actor = self._new_actor(slot.index, slot.generation)
                continue
            except ray.exceptions.RayTaskError as err:
                raise GapmeterError(f"a replica failed on {kind} requests: {_cause(err)}") from None
            if slot.generation == generation:
                slot.inflight -= 1
            fresh = [j for j, i in enumerate(shard) if i not in delivered]
            if not fresh:
                continue
            delivered.update(shard[j] for j in fresh)
            on_done([shard[j] for j in fresh], [results[j] for j in fresh],
                    [_driver_stats(stats[j]) for j in fresh])


def _kill_quietly(ray: Any, actor: Any) -> None:
    try:
        ray.kill(actor)
    except Exception:  # noqa: BLE001 - already gone
        pass


def _driver_stats(stats: RequestStats | None) -> RequestStats:
    """A replica's measurement as the driver records it: its ``finished_at`` is another
    process's clock, so the driver's hand-off time places the request instead."""
    if stats is None:
        return RequestStats()
    return dataclasses.replace(stats, finished_at=None)


def _cause(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[-1] if text else type(err).__name__
