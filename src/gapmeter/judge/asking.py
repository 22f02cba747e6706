"""Asking the judge: any backend (``hf``, ``openai``, ...) through its ``generate``, every prompt
once, the unreadable ones once more. With a store (the judged run's), the judge's replies go to
the response cache under the judge's fingerprint and its requests' timings to the same table as a
run's (``efficiency/recorder.py``), in one transaction per batch: a judgement killed half way
resumes without asking again, and the judge's latency, tokens and cost are measured like a run's."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from gapmeter.cost.estimate import Pricing
from gapmeter.efficiency.recorder import RequestRecorder
from gapmeter.efficiency.summary import load_timings
from gapmeter.engine.cache import ResponseCache
from gapmeter.judge.prompts import retry_prompt
from gapmeter.models.base import ModelBackend, RequestStats
from gapmeter.requests import GenerateRequest, request_hash


@dataclass
class Asked:
    """One judgement: the prompt(s) sent, the raw replies, the parsed verdict (None: unparseable)."""

    prompt: str
    replies: list[str] = field(default_factory=list)
    verdict: Any = None

    def to_json(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "raw": self.replies, "verdict": self.verdict,
                "retried": len(self.replies) > 1, "parsed": self.verdict is not None}


@dataclass
class Judge:
    backend: ModelBackend
    model: str
    model_args: str
    max_tokens: int = 256
    stats: list[RequestStats] = field(default_factory=list)
    sessions: sessionmaker[Session] | None = None  # the store for replies and timings
    hashes: list[str] = field(default_factory=list)  # every request asked (cached or not)
    failed: int = 0

    def _generate(self, prompts: Sequence[str]) -> list[str]:
        requests = [GenerateRequest(p, until=(), max_gen_toks=self.max_tokens,
                                    options=(("do_sample", False), ("temperature", 0.0))) for p in prompts]
        hashes = [request_hash(r) for r in requests]
        self.hashes.extend(hashes)
        fingerprint = self.backend.fingerprint()
        cache = ResponseCache(self.sessions, fingerprint) if self.sessions is not None else None
        out: list[str | None] = [None] * len(requests)
        if cache is not None:
            cached = cache.get_many(set(hashes))
            out = [str(cached[h]) if h in cached else None for h in hashes]
        todo = [i for i, r in enumerate(out) if r is None]
        recorder = RequestRecorder(self.sessions, fingerprint, self.backend) if self.sessions is not None else None
        since = time.perf_counter()

        def on_done(positions: list[int], responses: list[Any], stats: list[RequestStats] | None = None) -> None:
            nonlocal since
            now = time.perf_counter()
            kept: list[tuple[str, Any, Any]] = []
            for i, (pos, resp) in enumerate(zip(positions, responses, strict=True)):
                failed = bool(stats and stats[i].failed)
                # A request that failed after the backend's retries has no reply: unparseable.
                out[todo[pos]] = f"(request failed: {stats[i].error})" if failed and stats else str(resp)
                self.failed += failed
                if stats:
                    self.stats.append(stats[i])
                if not failed:
                    kept.append((hashes[todo[pos]], "generate_until", str(resp)))
            if cache is not None and recorder is not None and self.sessions is not None:
                with self.sessions() as s:
                    cache.put_many(kept, session=s)
                    recorder.record("generate_until", [hashes[i] for i in todo], [requests[i] for i in todo],
                                    positions, responses, stats, since=since, now=now, session=s)
                    s.commit()
            since = now

        if todo:
            self.backend.generate([requests[i] for i in todo], on_done)
        missing = sum(r is None for r in out)
        if missing:
            from gapmeter.errors import GapmeterError

            raise GapmeterError(f"judge {self.model}: {missing} of {len(out)} requests got no answer")
        return [r or "" for r in out]

    def ask(self, prompts: Sequence[str], parse: Callable[[str], Any], kind: str) -> list[Asked]:
        """Every prompt asked; a reply ``parse`` cannot read is asked once more (format reminder)."""
        asked = [Asked(p) for p in prompts]
        for a, reply in zip(asked, self._generate(prompts), strict=True):
            a.replies.append(reply)
            a.verdict = parse(reply)
        again = [a for a in asked if a.verdict is None]
        retries = [retry_prompt(a.prompt, a.replies[0], kind) for a in again]
        for a, reply in zip(again, self._generate(retries), strict=True):
            a.replies.append(reply)
            a.verdict = parse(reply)
        return asked

    def cost_report(self, n_items: int, hashes: Sequence[str] | None = None) -> dict[str, Any]:
        """The judge's requests (``hashes``, default all asked) as a run's efficiency block reports
        them: latency, tokens, cost; from the store's timings when there is one (as measured when
        each reply was computed, cached ones included), else from this process's RequestStats."""
        rows: Sequence[Any] = self.stats
        if self.sessions is not None:
            timings = load_timings(self.sessions, self.backend.fingerprint(), set(hashes or self.hashes))
            rows = list(timings.values())
        lat = sorted(s.latency_s for s in rows if s.latency_s is not None)
        prompt = [s.prompt_tokens for s in rows]
        completion = [s.completion_tokens for s in rows]
        p_tok = sum(p for p in prompt if p is not None) if prompt and None not in prompt else None
        c_tok = sum(c for c in completion if c is not None) if completion and None not in completion else None

        def pct(q: float) -> float | None:
            return lat[min(len(lat) - 1, int(q * len(lat)))] if lat else None

        pricing = Pricing.resolve(self.model, self.model_args)
        cost = pricing.estimate(compute_seconds=sum(lat) if lat else None, prompt_tokens=p_tok,
                                completion_tokens=c_tok, n_items=n_items, complete=True)
        return {
            "requests": len(set(hashes or self.hashes)) if self.sessions is not None else len(rows),
            "computed_now": len(self.stats), "failed": self.failed,
            "retries": sum(s.retries for s in rows),
            "latency_s": {"sum": sum(lat) if lat else None, "p50": pct(0.5), "p90": pct(0.9), "p99": pct(0.99)},
            "prompt_tokens": p_tok, "completion_tokens": c_tok,
            "cost": cost.to_json() if cost else None, "pricing": pricing.to_json(),
        }
