"""The backend protocol and model_args parsing."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from gapmeter.errors import ConfigError
from gapmeter.requests import GenerateRequest, LoglikelihoodRequest, RollingLoglikelihoodRequest


@dataclass(frozen=True)
class RequestStats:
    """What a backend measured while answering one request (all optional; None = not measured).

    Times are seconds on the monotonic clock. A batched local backend reports the batch's time
    for every request in it and says so with ``batch_size``; an API backend reports each request
    on its own. ``failed`` marks a request that could not be answered after all retries: the
    engine records it, does not score it, and asks again on resume.
    """

    latency_s: float | None = None  # request sent (or batch started) → last byte / batch done
    ttft_s: float | None = None  # request sent → first generated token (streaming only)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    usage_reported: bool = False  # token counts come from the provider, not our tokenizer
    batch_size: int = 1
    retries: int = 0
    failed: bool = False
    error: str | None = None
    # time.perf_counter() when the response was complete. Only needed by a backend that hands
    # responses to the engine later than that (e.g. in timed batches): the engine then places
    # the request's interval exactly instead of ending it at the callback.
    finished_at: float | None = None


# Called by a backend as soon as some responses exist: (positions in the input list, responses,
# one RequestStats per position). The engine writes them to the response cache at once, so a
# killed run loses nothing. (The engine also accepts a call without stats: nothing measured.)
OnDone = Callable[[list[int], list[Any], list[RequestStats]], None]


class ModelBackend(Protocol):
    name: str

    def fingerprint(self) -> str:
        """A stable id of the weights + tokenizer + scoring-relevant options (the cache key)."""
        ...

    def describe(self) -> dict[str, Any]:
        """What to record about the model in results (name, dtype, device, max_length...)."""
        ...

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest], on_done: OnDone) -> None: ...

    def loglikelihood_rolling(
        self, requests: Sequence[RollingLoglikelihoodRequest], on_done: OnDone
    ) -> None: ...

    def generate(self, requests: Sequence[GenerateRequest], on_done: OnDone) -> None: ...


def parse_model_args(text: str | None) -> dict[str, str]:
    """``pretrained=PATH,dtype=float32`` → dict. Values may not contain commas (as in lm-eval)."""
    out: dict[str, str] = {}
    if not text:
        return out
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "=" not in part:
            raise ConfigError(f"--model_args: {part!r} is not key=value")
        key, value = part.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def parse_bool(value: str | bool | None, *, name: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    low = value.lower()
    if low in {"true", "1", "yes"}:
        return True
    if low in {"false", "0", "no"}:
        return False
    raise ConfigError(f"--model_args: {name}={value!r} is not true/false")
