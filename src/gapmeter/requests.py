"""The three request primitives, the same as lm-evaluation-harness so numbers can match.

A request is a frozen value with a stable content hash. The hash is the key for the response
cache, for resuming a killed run and for re-scoring: two tasks that ask the same question of
the same model share one computation.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal, cast

RequestKind = Literal["loglikelihood", "loglikelihood_rolling", "generate_until"]


@dataclass(frozen=True)
class LoglikelihoodRequest:
    """log P(continuation | context), and whether greedy decoding would produce it."""

    context: str
    continuation: str
    kind: RequestKind = field(default="loglikelihood", init=False)

    def args(self) -> tuple[str, str]:
        return (self.context, self.continuation)


@dataclass(frozen=True)
class RollingLoglikelihoodRequest:
    """log P(text) over the whole text, in disjoint max-length windows (perplexity tasks)."""

    text: str
    kind: RequestKind = field(default="loglikelihood_rolling", init=False)

    def args(self) -> tuple[str]:
        return (self.text,)


@dataclass(frozen=True)
class GenerateRequest:
    """Greedy (or sampled) continuation of ``context`` until a stop string or ``max_gen_toks``."""

    context: str
    until: tuple[str, ...]
    max_gen_toks: int = 256
    # Remaining generation options (do_sample, temperature, ...), sorted for a stable hash.
    options: tuple[tuple[str, Any], ...] = ()
    kind: RequestKind = field(default="generate_until", init=False)
    # The generation options lm-eval lists in this request's logged arguments, in its order (those
    # the task YAML and --gen_kwargs set, or lm-eval's defaults): how the request is *shown*
    # (samples files), not what it is, so it is neither compared nor hashed. None: all of them.
    shown: tuple[str, ...] | None = field(default=None, compare=False)

    def args(self) -> tuple[str, dict[str, Any]]:
        gen_kwargs: dict[str, Any] = {"until": list(self.until), "max_gen_toks": self.max_gen_toks}
        gen_kwargs.update(dict(self.options))
        if self.shown is not None:
            gen_kwargs = {k: gen_kwargs[k] for k in self.shown if k in gen_kwargs}
        return (self.context, gen_kwargs)


Request = LoglikelihoodRequest | RollingLoglikelihoodRequest | GenerateRequest

# Responses: loglikelihood -> (logprob, is_greedy); rolling -> logprob; generate -> text.
Response = tuple[float, bool] | float | str


def request_hash(request: Request) -> str:
    """A stable sha256 of the request's kind and arguments (independent of Python's hash seed)."""
    # vars(), not dataclasses.asdict (a deep copy, twice the cost): the fields are strings,
    # numbers and tuples, which json writes the same either way. ``kind`` is a class default,
    # not in vars. The hashes are pinned by tests/test_request_hash.py: caches depend on them.
    fields = {k: v for k, v in vars(request).items() if k != "shown"}  # shown: presentation only
    payload = json.dumps({**fields, "kind": request.kind}, sort_keys=True, ensure_ascii=False, default=list)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def doc_hash(doc: dict[str, Any]) -> str:
    """A stable sha256 of a doc (sorted-key JSON): stored with every per-doc record, it pairs the
    same item across runs, submissions, private splits and decontamination. Pinned by
    tests/test_request_hash.py."""
    return hashlib.sha256(json.dumps(doc, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


def response_to_json(kind: RequestKind, response: Response) -> Any:
    if kind == "loglikelihood":
        ll, greedy = cast(tuple[float, bool], response)
        return [float(ll), bool(greedy)]
    if kind == "loglikelihood_rolling":
        return float(cast(float, response))
    return str(response)


def response_from_json(kind: RequestKind, value: Any) -> Response:
    if kind == "loglikelihood":
        return (float(value[0]), bool(value[1]))
    if kind == "loglikelihood_rolling":
        return float(value)
    return str(value)
