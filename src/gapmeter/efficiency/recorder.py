"""The engine's per-request measurements, written to the store with each response.

The engine calls :meth:`RequestRecorder.record` for every call a backend makes to ``on_done``.
For each answered request the recorder stores one :class:`~gapmeter.store.models.RequestTiming` row:

* timing from the backend's :class:`~gapmeter.models.base.RequestStats` when it reports a
  latency (``timing_source="backend"``; the interval ends at ``finished_at`` when the backend
  says when the response was complete, else at the callback); otherwise the engine's own clock: the time from the end
  of the previous callback (or the start of the backend call) to this one, shared by the requests
  it delivers (``timing_source="engine"``). The engine's own work in the callback (writing the
  responses) is outside every measured interval;
* tokens as reported by the backend (``token_source="provider"`` when they are the provider's
  usage numbers, ``"backend"`` otherwise), else counted with the backend's tokenizer
  (``"tokenizer"``), else unknown;
* the process's peak host memory and peak GPU memory at that moment.

The engine writes (upserts) the rows in the same transaction as the responses they measure, so
every cached response has exactly one row, from the computation that produced it; a response
computed again (a run killed before its commit) replaces its row.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker

from gapmeter.efficiency.memory import peak_gpu_bytes, peak_host_bytes, reset_peak_gpu
from gapmeter.efficiency.tokens import TokenCounter
from gapmeter.models.base import RequestStats
from gapmeter.requests import Request, RequestKind
from gapmeter.store.models import RequestTiming


class RequestRecorder:
    def __init__(self, sessions: sessionmaker[Session], model_fingerprint: str, model: Any) -> None:
        self.sessions = sessions
        self.fingerprint = model_fingerprint
        self.tokens = TokenCounter.for_backend(model)
        # perf_counter for durations, converted once to unix time so intervals from different
        # processes (a run killed and resumed) lie on one timeline.
        self._epoch = time.time() - time.perf_counter()
        self.recorded = 0
        self.failed = 0
        reset_peak_gpu()

    def record(
        self,
        kind: RequestKind,
        hashes: Sequence[str],
        requests: Sequence[Request],
        positions: list[int],
        results: list[Any],
        stats: list[RequestStats] | None,
        *,
        since: float,
        now: float,
        session: Session | None = None,
    ) -> None:
        """Store one row per answered request of this ``on_done`` call; ``since``..``now`` is the
        engine's interval for backends that report no latency. Given a ``session``, the rows are
        written in it and the caller commits."""
        if stats is not None and len(stats) != len(positions):
            raise RuntimeError(f"backend reported {len(stats)} RequestStats for {len(positions)} responses")
        interval = now - since
        finished = self._epoch + now
        host, gpu = peak_host_bytes(), peak_gpu_bytes()
        rows: list[dict[str, Any]] = []
        for j, (pos, result) in enumerate(zip(positions, results, strict=True)):
            st = stats[j] if stats is not None else None
            if st is not None and st.failed:
                self.failed += 1  # no response is stored; it is asked again on resume
                continue
            request = requests[pos]
            end = finished
            if st is not None and st.latency_s is not None:
                latency, timing_source = float(st.latency_s), "backend"
                if st.finished_at is not None and st.finished_at <= now:
                    end = self._epoch + st.finished_at
            else:
                latency, timing_source = interval, "engine"
            prompt = st.prompt_tokens if st is not None else None
            completion = st.completion_tokens if st is not None else None
            if prompt is not None or completion is not None:
                token_source = "provider" if st is not None and st.usage_reported else "backend"
            else:
                token_source = None
            if self.tokens is not None:
                if prompt is None:
                    prompt = self.tokens.prompt(request)
                if completion is None:
                    completion = self.tokens.completion(request, result)
                token_source = token_source or "tokenizer"
            rows.append(
                {
                    "model_fingerprint": self.fingerprint,
                    "request_hash": hashes[pos],
                    "kind": kind,
                    "started_at": end - latency,
                    "finished_at": end,
                    "latency_s": latency,
                    "ttft_s": st.ttft_s if st is not None else None,
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "token_source": token_source,
                    "timing_source": timing_source,
                    "batch_size": st.batch_size if st is not None else len(positions),
                    "retries": st.retries if st is not None else 0,
                    "peak_host_bytes": host,
                    "peak_gpu_bytes": gpu,
                }
            )
        if rows and session is not None:
            self._upsert(session, rows)
        elif rows:
            with self.sessions() as s:
                self._upsert(s, rows)
                s.commit()
        self.recorded += len(rows)

    def _upsert(self, s: Session, rows: list[dict[str, Any]]) -> None:
        dialect = s.bind.dialect.name if s.bind is not None else ""
        if dialect in ("sqlite", "postgresql"):
            # A parameter list (executemany), not .values(rows): one compiled statement however
            # many rows, and no limit on bound parameters.
            s.execute(_upsert_statement(dialect), rows)
        else:
            s.execute(
                delete(RequestTiming).where(
                    RequestTiming.model_fingerprint == self.fingerprint,
                    RequestTiming.request_hash.in_([r["request_hash"] for r in rows]),
                )
            )
            s.add_all(RequestTiming(**r) for r in rows)


@functools.cache
def _upsert_statement(dialect: str) -> Any:
    """Built once: building it (the ``excluded`` columns) cost more than executing it, once a
    second on an API run."""
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        from sqlalchemy.dialects.postgresql import insert
    stmt = insert(RequestTiming)
    keys = ("model_fingerprint", "request_hash")
    # Every measured column is replaced; created_at stays that of the first write.
    replace = {c.name: stmt.excluded[c.name] for c in RequestTiming.__table__.columns
               if c.name not in (*keys, "created_at")}
    return stmt.on_conflict_do_update(index_elements=list(keys), set_=replace)
