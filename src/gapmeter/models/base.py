"""The backend protocol, and ``--model_args``: parsing the text and validating it per backend."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Protocol, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

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


_TRUE, _FALSE = {"true", "1", "yes"}, {"false", "0", "no"}


def _flag(value: object) -> object:
    """``true``/``false`` (also 1/0, yes/no; any case), as ``--model_args`` has always read them."""
    if isinstance(value, str):
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise ValueError("not true/false")
    return value


def auto_is_none(value: object) -> object:
    """``auto`` → None (the backend decides), for options that are on, off or auto."""
    return None if value == "auto" else value


#: A ``--model_args`` boolean: ``true``/``false``/``1``/``0``/``yes``/``no`` in any case, nothing else
#: (pydantic's own bool would also take ``on``/``off``/``t``/``y``).
Flag = Annotated[bool, BeforeValidator(_flag)]


class BackendArgs(BaseModel):
    """A backend's ``--model_args``, declared as typed fields: unknown keys and bad values refused.

    Each backend subclasses this next to its loader and registers both
    (``@register_backend(name, args=TheArgs)``); ``models.registry.load_model`` validates the
    parsed ``key=value`` pairs with :meth:`parse` before the loader runs, so every refusal is one
    ``ConfigError`` line naming the key, and no backend keeps its own list of allowed keys. A
    required field's ``examples[0]`` is the placeholder its message shows (``pretrained=PATH``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    backend: ClassVar[str]

    @classmethod
    def refuse(cls, args: Mapping[str, str]) -> None:
        """Checks on the raw keys that come before validation (e.g. secrets); none by default."""

    @classmethod
    def parse(cls, args: Mapping[str, str] | BackendArgs) -> Self:
        """``args`` validated (an instance of this class is returned as it is)."""
        if isinstance(args, cls):
            return args
        if isinstance(args, BackendArgs):
            raise ConfigError(f"--model {cls.backend} got {type(args).__name__}, not {cls.__name__}")
        cls.refuse(args)
        try:
            return cls.model_validate(dict(args))
        except ValidationError as err:
            raise ConfigError(cls._one_line(err, args)) from None

    @classmethod
    def _one_line(cls, err: ValidationError, args: Mapping[str, str]) -> str:
        errors = err.errors()
        unknown = sorted(str(e["loc"][0]) for e in errors if e["type"] == "extra_forbidden")
        if unknown:
            known = ", ".join(sorted(cls.model_fields))
            return f"--model_args: unknown key(s) for {cls.backend}: {', '.join(unknown)} (known: {known})"
        first = errors[0]
        key = str(first["loc"][0]) if first["loc"] else "?"
        if first["type"] == "missing":
            examples = cls.model_fields[key].examples or ["VALUE"]
            return f"--model_args needs {key}={examples[0]} for --model {cls.backend}"
        return f"--model_args {key}={args.get(key)!r}: {_reason(first)}"


def _reason(error: Any) -> str:
    """pydantic's error as the few words a ``--model_args`` message needs."""
    ctx = error.get("ctx") or {}
    kind = error["type"]
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return "not an integer"
    if kind in ("float_parsing", "float_type"):
        return "not a number"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        sign = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}[kind]
        bound = next(iter(ctx.values()))
        return f"must be {sign} {bound}"
    if kind == "literal_error":
        return f"use {ctx.get('expected', '')}"
    return str(error["msg"])
