"""Asking the judge: any backend (``hf``, ``openai``, ...) through its ``generate``, every prompt
once, the unreadable ones once more, with each request's ``RequestStats`` kept for the judge's
own latency, tokens and cost."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from gapmeter.cost.estimate import Pricing
from gapmeter.judge.prompts import retry_prompt
from gapmeter.models.base import ModelBackend, RequestStats
from gapmeter.requests import GenerateRequest


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

    def _generate(self, prompts: Sequence[str]) -> list[str]:
        requests = [GenerateRequest(p, until=(), max_gen_toks=self.max_tokens,
                                    options=(("do_sample", False), ("temperature", 0.0))) for p in prompts]
        out: list[str | None] = [None] * len(requests)

        def on_done(positions: list[int], responses: list[Any], stats: list[RequestStats] | None = None) -> None:
            for i, (pos, resp) in enumerate(zip(positions, responses, strict=True)):
                failed = bool(stats and stats[i].failed)
                # A request that failed after the backend's retries has no reply: unparseable.
                out[pos] = f"(request failed: {stats[i].error})" if failed and stats else str(resp)
                if stats:
                    self.stats.append(stats[i])

        if requests:
            self.backend.generate(requests, on_done)
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

    def cost_report(self, n_items: int) -> dict[str, Any]:
        """The judge's requests as a run's efficiency block reports them: latency, tokens, cost."""
        lat = sorted(s.latency_s for s in self.stats if s.latency_s is not None)
        prompt = [s.prompt_tokens for s in self.stats]
        completion = [s.completion_tokens for s in self.stats]
        p_tok = sum(p for p in prompt if p is not None) if prompt and None not in prompt else None
        c_tok = sum(c for c in completion if c is not None) if completion and None not in completion else None

        def pct(q: float) -> float | None:
            return lat[min(len(lat) - 1, int(q * len(lat)))] if lat else None

        pricing = Pricing.resolve(self.model, self.model_args)
        cost = pricing.estimate(compute_seconds=sum(lat) if lat else None, prompt_tokens=p_tok,
                                completion_tokens=c_tok, n_items=n_items, complete=True)
        return {
            "requests": len(self.stats), "failed": sum(s.failed for s in self.stats),
            "retries": sum(s.retries for s in self.stats),
            "latency_s": {"sum": sum(lat) if lat else None, "p50": pct(0.5), "p90": pct(0.9), "p99": pct(0.99)},
            "prompt_tokens": p_tok, "completion_tokens": c_tok,
            "cost": cost.to_json() if cost else None, "pricing": pricing.to_json(),
        }
