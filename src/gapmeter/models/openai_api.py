"""``--model openai``: any OpenAI-compatible HTTP server (vLLM, llama.cpp, Ollama, hosted APIs).

    --model openai --model_args base_url=http://127.0.0.1:8000/v1,model=NAME,api=completions,
        concurrency=16,rpm=600,tpm=200000,timeout=300,max_retries=6[,tokenizer=PATH]

Requests go out concurrently (``concurrency`` in flight, aiohttp), within the rate limits,
with retries (``api_client.py``). Every request reports a ``RequestStats``: latency of the final
attempt, time to first token for streamed generation, provider-reported usage when present,
retries, and ``failed=True`` (with a ``None`` response) when it still failed after all retries.

Loglikelihood uses the completions endpoint with ``echo=true, logprobs=1, max_tokens=0`` (as
lm-evaluation-harness's ``local-completions``): the server returns a log-prob for every prompt
token, the continuation's tokens are those starting at or after the context's end (character
offsets; the context's trailing spaces move to the continuation, as in the ``hf`` backend), and
the continuation is greedy when each of its tokens is the top-1. With ``tokenizer=`` the client
sends token ids split exactly as the ``hf`` backend splits them. Chat APIs give no prompt
log-probs: loglikelihood tasks then fail with a pointer to the ``<task>_gen_letters`` variants.

``--apply_chat_template`` (lm-eval's ``local-completions`` / ``local-chat-completions``): with
``api=completions`` the client renders the chat with the tokenizer's template (``tokenizer=``
is then required) and sends the string; with ``api=chat`` each prompt is the chat's messages as
JSON (lm-eval's ``JsonChatStr``) and they are sent as ``messages`` unrendered: the server applies
its template. Without the option ``api=chat`` sends the prompt as one user message.

The API key comes from ``$OPENAI_API_KEY`` (or ``api_key_env=NAME``); it is never part of
``model_args``, ``describe()``, the fingerprint, a log line or an error message.
``api_key_env=none`` sends no key and reads nothing from the environment: callers that hold a
key of their own (the board, evaluating a submitter's endpoint with the submitter's key) pass
it to :class:`OpenAIBackend` directly and must never fall back to the process's credentials.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import os
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, ClassVar, Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx
from pydantic import Field

from gapmeter.errors import ConfigError, GapmeterError
from gapmeter.models.api_client import (
    ApiClient,
    ApiFatalError,
    ApiReply,
    RequestFailed,
    RetryPolicy,
)
from gapmeter.models.api_tokens import PromptTokenizer
from gapmeter.models.base import BackendArgs, Flag, OnDone, RequestStats
from gapmeter.models.chat_template import ChatTemplate, hf_chat_template
from gapmeter.models.rate_limit import RateLimiter, estimate_tokens
from gapmeter.models.registry import register_backend
from gapmeter.notices import notice
from gapmeter.requests import GenerateRequest, LoglikelihoodRequest, RollingLoglikelihoodRequest

LETTERS_HINT = (
    "use a completions endpoint that supports echo+logprobs (api=completions), or evaluate the "
    "generation-based multiple-choice variant instead: --tasks <task>_gen_letters (a different task, "
    "never mixed with loglikelihood scores)"
)
# Bumped whenever the way a response is derived from the server's answer changes.
PROTOCOL_VERSION = "openai-v1"

# ``api_key_env`` value meaning "no key from the environment" (see the module docstring).
NO_KEY_ENV = "none"

# Generation options passed through to the server as they are (others are rejected).
PASSTHROUGH_OPTIONS = ("top_p", "top_k", "min_p", "presence_penalty", "frequency_penalty",
                       "repetition_penalty", "logit_bias", "n")


@dataclass(frozen=True)
class OpenAIConfig:
    base_url: str  # the API root, e.g. http://127.0.0.1:8000/v1
    model: str
    api: str = "completions"  # completions | chat
    concurrency: int = 8
    rpm: float | None = None
    tpm: float | None = None
    timeout: float = 300.0
    max_retries: int = 6
    backoff: float = 0.5
    max_backoff: float = 30.0
    api_key_env: str = "OPENAI_API_KEY"
    stream: bool = True  # stream generations (measures time to first token)
    tokenizer: str | None = None  # send token ids split by this tokenizer (exact hf parity)
    add_bos_token: bool | None = None
    max_length: int = 2048  # context window for token-mode truncation and rolling windows
    echo_max_tokens: int = 0  # 1 for servers that reject max_tokens=0 with echo
    seed: int = 1234


@dataclass
class _Job:
    position: int
    path: str
    payload: dict[str, Any]
    parse: Callable[[Any], Any]
    estimated_tokens: int
    stream_delta: Callable[[dict[str, Any]], str | None] | None = None
    # result -> (response, prompt tokens counted locally or None)
    finish: Callable[[Any], tuple[Any, int | None]] = field(default=lambda r: (r, None))


@dataclass
class _Echo:
    """What an echo+logprobs reply says about one prompt."""

    token_logprobs: list[float | None]
    top: list[dict[str, float] | None] | None
    offsets: list[int] | None
    text: str


def normalize_base_url(url: str) -> str:
    """Accept the API root (``.../v1``), a bare server (``http://host:port``) or a full endpoint
    URL as lm-eval takes it (``.../v1/completions``); return the API root."""
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"--model_args base_url={url!r}: expected http(s)://host[:port][/v1]")
    path = parts.path
    for suffix in ("/chat/completions", "/completions", "/models"):
        if path.endswith(suffix):
            path = path[: -len(suffix)]
            break
    if path in ("", "/"):
        path = "/v1"
    # Credentials in the URL would end up in results and logs: refuse them.
    if parts.username or parts.password:
        raise ConfigError("--model_args base_url: put credentials in the API key variable, not the URL")
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


class OpenAIBackend:
    name = "openai"
    # Set by a scale-out executor (executors/shared_limits.py): rpm/tpm permits from buckets
    # shared by every replica of the run, instead of this process's own.
    shared_rate_limiter: RateLimiter | None = None

    def __init__(self, config: OpenAIConfig, *, api_key: str | None) -> None:
        self.config = config
        self._api_key = api_key
        self._tokenizer: PromptTokenizer | None = None
        self._chat_messages = False  # prompts are JSON chat messages (--apply_chat_template, api=chat)
        self._chat_rendered = False  # prompts were rendered here with tokenizer='s chat template
        if config.tokenizer:
            self._tokenizer = PromptTokenizer(config.tokenizer, add_bos_token=config.add_bos_token)

    # ------------------------------------------------------------- identity
    def fingerprint(self) -> str:
        c = self.config
        ident = {"base_url": c.base_url, "model": c.model, "api": c.api, "protocol": PROTOCOL_VERSION,
                 "tokenizer": c.tokenizer, "add_bos_token": c.add_bos_token, "max_length": c.max_length}
        return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:32]

    def describe(self) -> dict[str, Any]:
        c = self.config
        return {
            "backend": "openai",
            "base_url": c.base_url,
            "model": c.model,
            "api": c.api,
            "tokenizer": c.tokenizer,
            "concurrency": c.concurrency,
            "rpm": c.rpm,
            "tpm": c.tpm,
            "timeout": c.timeout,
            "max_retries": c.max_retries,
            "api_key_env": c.api_key_env,  # the variable's name, never its value
            "max_length": c.max_length,
        }

    def chat_template(self, name: str | None) -> ChatTemplate:
        """``--apply_chat_template [NAME]``: the server's template (api=chat), or the tokenizer's,
        rendered here (api=completions)."""
        if self.config.api == "chat":
            self._chat_messages = True
            if name is not None:
                notice(f"--apply_chat_template {name}: api=chat sends messages; the server picks its template")
            return ChatTemplate("", lambda messages, _: json.dumps(messages, ensure_ascii=False))
        if self._tokenizer is None:
            raise ConfigError(
                "--apply_chat_template with api=completions renders the chat on the client: add "
                "tokenizer=PATH_OR_HUB_ID to --model_args (or use api=chat to let the server apply it)"
            )
        self._chat_rendered = True
        return hf_chat_template(self._tokenizer.tokenizer, name, where=f"tokenizer={self.config.tokenizer}",
                                retry_without_system=False)

    def _chat(self, context: str) -> list[dict[str, str]]:
        if self._chat_messages:
            messages = json.loads(context)
            if isinstance(messages, list):
                return messages
        return [{"role": "user", "content": context}]

    # ------------------------------------------------------- loglikelihood
    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest], on_done: OnDone) -> None:
        self._require_echo("loglikelihood")
        jobs = [self._loglikelihood_job(i, r) for i, r in enumerate(requests)]
        self._run(jobs, on_done)

    def _echo_payload(self, prompt: str | list[int]) -> dict[str, Any]:
        return {
            "model": self.config.model,
            "prompt": prompt,
            "max_tokens": self.config.echo_max_tokens,
            "temperature": 0,
            "logprobs": 1,
            "echo": True,
            "seed": self.config.seed,
        }

    def _loglikelihood_job(self, position: int, req: LoglikelihoodRequest) -> _Job:
        if self._tokenizer is not None:
            ctx, cont = self._tokenizer.encode_pair(req.context, req.continuation)
            if not cont:
                raise GapmeterError("a loglikelihood request has an empty continuation after tokenising")
            ids = (ctx + cont)[-(self.config.max_length + 1) :]
            n_cont = len(cont)

            def parse_ids(body: Any) -> tuple[float, bool]:
                echo = self._echo(body, None)
                return _score_tail(echo, len(ids), n_cont)

            return _Job(position, "completions", self._echo_payload(ids), parse_ids,
                        len(ids) + 1, finish=partial(_with_count, n=len(ids)))

        context, continuation = req.context, req.continuation
        prompt = context + continuation
        # The hf backend moves the context's trailing whitespace to the continuation.
        boundary = len(context.rstrip())
        end = len(prompt)

        def parse_text(body: Any) -> tuple[tuple[float, bool], int]:
            echo = self._echo(body, prompt)
            assert echo.offsets is not None
            picked = [i for i, off in enumerate(echo.offsets) if boundary <= off < end]
            prompt_tokens = sum(1 for off in echo.offsets if off < end)
            if context == "" and len(picked) > 1 and echo.token_logprobs[picked[0]] is None \
                    and echo.offsets[picked[1]] == echo.offsets[picked[0]]:
                picked = picked[1:]  # a zero-width BOS the server added: it is the context
            if not picked:
                raise GapmeterError(
                    f"the server's tokens give the continuation {continuation[:40]!r} no token of its "
                    "own (it merges with the context); add tokenizer=PATH to --model_args"
                )
            if any(echo.token_logprobs[i] is None for i in picked):
                raise ApiFatalError(
                    "the server gave no log-prob for the continuation's first token (an empty "
                    "context on a tokenizer without BOS); add tokenizer=PATH to --model_args so "
                    "the client can send the prefix token"
                )
            return _sum_and_greedy(echo, picked), prompt_tokens

        return _Job(position, "completions", self._echo_payload(prompt), parse_text,
                    estimate_tokens(len(prompt), 0), finish=lambda r: r)

    def loglikelihood_rolling(self, requests: Sequence[RollingLoglikelihoodRequest], on_done: OnDone) -> None:
        self._require_echo("loglikelihood_rolling")
        if self._tokenizer is None:
            raise ConfigError(
                "loglikelihood_rolling through an API needs the model's tokenizer to build the "
                "same windows as the hf backend: add tokenizer=PATH_OR_HUB_ID to --model_args"
            )
        from gapmeter.models.hf import rolling_windows  # a pure function; hf loads no model here

        tok = self._tokenizer
        jobs: list[_Job] = []
        owner: list[int] = []
        for i, req in enumerate(requests):
            for ctx, pred in rolling_windows(tok.encode(req.text), tok.prefix_token_id, self.config.max_length):
                ids = (ctx + pred)[-(self.config.max_length + 1) :]

                def parse(body: Any, n=len(ids), k=len(pred)) -> tuple[float, bool]:  # noqa: ANN001
                    return _score_tail(self._echo(body, None), n, k)

                jobs.append(_Job(len(jobs), "completions", self._echo_payload(ids), parse, len(ids) + 1,
                                 finish=partial(_with_count, n=len(ids))))
                owner.append(i)
        totals = [0.0] * len(requests)
        remaining = [0] * len(requests)
        for o in owner:
            remaining[o] += 1
        merged: list[RequestStats | None] = [None] * len(requests)

        def collect(positions: list[int], results: list[Any], stats: list[RequestStats]) -> None:
            done_idx: list[int] = []
            done_res: list[Any] = []
            done_stats: list[RequestStats] = []
            for w, res, st in zip(positions, results, stats, strict=True):
                r = owner[w]
                if remaining[r] <= 0:
                    continue  # an earlier window of this text already failed it
                merged[r] = so_far = _merge_stats(merged[r], st)
                if st.failed:
                    remaining[r] = 0
                    done_idx.append(r)
                    done_res.append(None)
                    done_stats.append(so_far)
                    continue
                totals[r] += res[0]
                remaining[r] -= 1
                if remaining[r] == 0:
                    done_idx.append(r)
                    done_res.append(totals[r])
                    done_stats.append(so_far)
            if done_idx:
                on_done(done_idx, done_res, done_stats)

        empty = [i for i, n in enumerate(remaining) if n == 0]
        if empty:
            on_done(empty, [0.0] * len(empty), [RequestStats(latency_s=0.0, prompt_tokens=0) for _ in empty])
        self._run(jobs, collect)

    def _require_echo(self, kind: str) -> None:
        if self.config.api == "chat":
            raise ConfigError(
                f"{kind} requests need prompt log-probs, which chat APIs do not return (api=chat); "
                + LETTERS_HINT
            )

    def _echo(self, body: Any, prompt: str | None) -> _Echo:
        choice = body["choices"][0]
        lp = choice.get("logprobs")
        text = choice.get("text")
        if not isinstance(lp, dict) or lp.get("token_logprobs") is None or \
                (prompt is not None and lp.get("text_offset") is None):
            raise ApiFatalError(
                f"{self.config.base_url}: the completions endpoint returned no prompt log-probs "
                "(echo+logprobs unsupported); " + LETTERS_HINT
            )
        if prompt is not None and not (isinstance(text, str) and text.startswith(prompt)):
            raise ApiFatalError(
                f"{self.config.base_url}: the completions endpoint did not echo the prompt "
                "(echo unsupported); " + LETTERS_HINT
            )
        token_logprobs = list(lp["token_logprobs"])
        offsets = lp.get("text_offset")
        top = lp.get("top_logprobs")
        if offsets is not None and len(offsets) != len(token_logprobs):
            raise ValueError("text_offset and token_logprobs differ in length")
        return _Echo(token_logprobs, top, offsets, text or "")

    # ------------------------------------------------------------ generation
    def generate(self, requests: Sequence[GenerateRequest], on_done: OnDone) -> None:
        jobs = [self._generate_job(i, r) for i, r in enumerate(requests)]
        self._run(jobs, on_done)

    def _generate_job(self, position: int, req: GenerateRequest) -> _Job:
        c = self.config
        options = dict(req.options)
        do_sample = bool(options.pop("do_sample", False))
        temperature = float(options.pop("temperature", 0.0) or 0.0)
        unknown = set(options) - set(PASSTHROUGH_OPTIONS)
        if unknown:
            raise ConfigError(f"generation option(s) {sorted(unknown)} are not supported by --model openai")
        stops = [s for s in req.until if s]
        payload: dict[str, Any] = {
            "model": c.model,
            "max_tokens": req.max_gen_toks,
            "temperature": temperature if do_sample else 0.0,
            "seed": c.seed,
            **options,
        }
        if stops:
            payload["stop"] = stops[:4]  # the OpenAI API takes at most 4; all are cut below
        if c.api == "chat":
            payload["messages"] = self._chat(req.context)
            path = "chat/completions"
        elif self._chat_rendered and self._tokenizer is not None:
            # A rendered chat usually starts with the BOS text: sent as text, a server that adds
            # BOS would double it. lm-eval's local-completions sends token ids, the template's
            # BOS included, adding none (add_bos_token, default False).
            tok = self._tokenizer.tokenizer
            payload["prompt"] = list(tok(req.context, add_special_tokens=bool(c.add_bos_token))["input_ids"])
            path = "completions"
        else:
            payload["prompt"] = req.context
            path = "completions"
        delta: Callable[[dict[str, Any]], str | None] | None = None
        if c.stream:
            payload["stream"] = True
            payload["stream_options"] = {"include_usage": True}
            delta = _chat_delta if c.api == "chat" else _completion_delta

            def parse(body: Any) -> str:
                return cut_at_stops(str(body), stops)
        else:
            def parse(body: Any) -> str:
                choice = body["choices"][0]
                text = choice["message"].get("content") if c.api == "chat" else choice["text"]
                return cut_at_stops(text or "", stops)
        return _Job(position, path, payload, parse, estimate_tokens(len(req.context), req.max_gen_toks), delta)

    # -------------------------------------------------------------- running
    def _run(self, jobs: list[_Job], on_done: OnDone) -> None:
        if not jobs:
            return
        _run_coroutine(self._run_async(jobs, on_done))

    async def _run_async(self, jobs: list[_Job], on_done: OnDone) -> None:
        c = self.config
        client = ApiClient(
            c.base_url,
            api_key=self._api_key,
            key_source=c.api_key_env,
            timeout_s=c.timeout,
            concurrency=c.concurrency,
            retry=RetryPolicy(max_retries=c.max_retries, backoff_s=c.backoff, max_backoff_s=c.max_backoff),
            limiter=self.shared_rate_limiter or RateLimiter(c.rpm, c.tpm),
            seed=c.seed,
        )
        sink = _Batcher(on_done)
        pending = iter(jobs)
        unreachable: list[str] = []  # set once a request could not reach the server at all

        async def worker() -> None:
            for job in pending:
                if unreachable:
                    sink.add(job.position, None, RequestStats(failed=True, error=f"not sent: {unreachable[0]}"))
                    continue
                try:
                    reply = await client.call(job.path, job.payload, job.parse,
                                              estimated_tokens=job.estimated_tokens,
                                              stream_delta=job.stream_delta)
                except RequestFailed as err:
                    if err.unreachable and not unreachable:
                        unreachable.append(err.reason)
                    sink.add(job.position, None, RequestStats(failed=True, retries=err.retries, error=err.reason))
                    continue
                response, local_prompt_tokens = job.finish(reply.result)
                sink.add(job.position, response, _stats(reply, local_prompt_tokens))

        async with client:
            workers = [asyncio.create_task(worker()) for _ in range(min(c.concurrency, len(jobs)))]
            try:
                await asyncio.gather(*workers)
            except BaseException:
                for w in workers:
                    w.cancel()
                await asyncio.gather(*workers, return_exceptions=True)
                if sink.error is None:
                    sink.flush()  # what was answered before the fatal error is kept
                raise
        sink.raise_error()
        sink.flush()


def cut_at_stops(text: str, stops: Sequence[str]) -> str:
    """``stopping.cut_at_stops``'s rule (lm-eval's order), without importing torch for it."""
    for stop in stops:
        if stop:
            text = text.split(stop)[0]
    return text


def _completion_delta(chunk: dict[str, Any]) -> str | None:
    choices = chunk.get("choices") or []
    return choices[0].get("text") if choices else None


def _chat_delta(chunk: dict[str, Any]) -> str | None:
    choices = chunk.get("choices") or []
    if not choices:
        return None
    return (choices[0].get("delta") or {}).get("content")


def _sum_and_greedy(echo: _Echo, picked: list[int]) -> tuple[float, bool]:
    values: list[float] = []
    for i in picked:
        logprob = echo.token_logprobs[i]
        if logprob is None:  # the callers check first; this keeps the type honest
            raise ValueError("a continuation token has no log-prob")
        values.append(float(logprob))
    if echo.top is None:
        raise ApiFatalError("the completions endpoint returned no top_logprobs; " + LETTERS_HINT)
    greedy = True
    for i, value in zip(picked, values, strict=True):
        top = echo.top[i]
        if not top or value != max(top.values()):
            greedy = False
            break
    return sum(values), greedy


def _score_tail(echo: _Echo, n_prompt: int, n_cont: int) -> tuple[float, bool]:
    """Token-id prompts: the continuation is the last ``n_cont`` of the ``n_prompt`` tokens."""
    if len(echo.token_logprobs) < n_prompt:
        raise ValueError(f"{len(echo.token_logprobs)} token log-probs for a {n_prompt}-token prompt")
    picked = list(range(n_prompt - n_cont, n_prompt))
    if any(echo.token_logprobs[i] is None for i in picked):
        raise ValueError("a continuation token has no log-prob")
    return _sum_and_greedy(echo, picked)


def _stats(reply: ApiReply, local_prompt_tokens: int | None) -> RequestStats:
    usage = reply.usage or {}
    prompt_tokens = usage.get("prompt_tokens")
    completion_tokens = usage.get("completion_tokens")
    reported = isinstance(prompt_tokens, int)
    return RequestStats(
        latency_s=reply.latency_s,
        ttft_s=reply.ttft_s,
        prompt_tokens=prompt_tokens if reported else local_prompt_tokens,
        completion_tokens=completion_tokens if isinstance(completion_tokens, int) else None,
        usage_reported=reported,
        retries=reply.retries,
        # the reply's own end, not the batcher's hand-off up to 1 s later (throughput windows)
        finished_at=time.perf_counter(),
    )


def _merge_stats(a: RequestStats | None, b: RequestStats) -> RequestStats:
    """One rolling text's windows as one request: times and tokens add up."""
    if a is None:
        return b

    def add(x: float | int | None, y: float | int | None) -> Any:
        return None if x is None and y is None else (x or 0) + (y or 0)

    return RequestStats(
        latency_s=add(a.latency_s, b.latency_s),
        prompt_tokens=add(a.prompt_tokens, b.prompt_tokens),
        completion_tokens=add(a.completion_tokens, b.completion_tokens),
        usage_reported=a.usage_reported and b.usage_reported,
        retries=a.retries + b.retries,
        failed=a.failed or b.failed,
        error=a.error or b.error,
        finished_at=max((t for t in (a.finished_at, b.finished_at) if t is not None), default=None),
    )


class _Batcher:
    """Hands finished responses to the engine in batches: when 256 are waiting, or one second
    after the first of them arrived (a timer on the event loop), whichever comes first.

    Each engine call commits to the store twice (efficiency rows, then responses), ~3 ms on a
    busy machine: once per response it cost more than the whole HTTP request at low
    concurrency. A killed run loses at most the last second of answers, which a resume asks
    again. Runs inside the event loop; an error from ``on_done`` in the timer is re-raised to
    the next ``add`` (and by :meth:`raise_error`), never swallowed by the loop.
    """

    def __init__(self, on_done: OnDone, *, max_items: int = 256, max_wait_s: float = 1.0) -> None:
        self.on_done = on_done
        self.max_items = max_items
        self.max_wait_s = max_wait_s
        self.positions: list[int] = []
        self.responses: list[Any] = []
        self.stats: list[RequestStats] = []
        self._timer: asyncio.TimerHandle | None = None
        self.error: BaseException | None = None

    def add(self, position: int, response: Any, stats: RequestStats) -> None:
        self.raise_error()
        self.positions.append(position)
        self.responses.append(response)
        self.stats.append(stats)
        if len(self.positions) >= self.max_items:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.max_wait_s, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        try:
            self.flush()
        except BaseException as err:  # noqa: BLE001 - kept for the workers to raise
            self.error = err

    def raise_error(self) -> None:
        if self.error is not None:
            raise self.error

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self.positions:
            return
        positions, responses, stats = self.positions, self.responses, self.stats
        self.positions, self.responses, self.stats = [], [], []
        self.on_done(positions, responses, stats)


def _run_coroutine(coro: Coroutine[Any, Any, None]) -> None:
    """Run ``coro`` to completion on a fresh event loop (uvloop where installed), also when the
    caller is itself inside a running event loop (then on a worker thread)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        _run_on_new_loop(coro)
        return
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(_run_on_new_loop, coro).result()


def _run_on_new_loop(coro: Coroutine[Any, Any, None]) -> None:
    # uvloop's transports cost ~0.1 ms less client CPU per request than asyncio's selector loop
    # (bench/api_overhead.py at concurrency 1), a tenth of the overhead budget. It is a
    # dependency everywhere but Windows, where the standard loop runs.
    try:
        import uvloop
    except ImportError:
        factory = None
    else:
        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(coro)


# ------------------------------------------------------------------ loading
_SECRET_KEYS = ("api_key", "key", "auth_token", "token")


class OpenAIArgs(BackendArgs):
    """``--model openai --model_args base_url=URL,...``; unset numbers take ``OpenAIConfig``'s defaults."""

    backend: ClassVar[str] = "openai"

    base_url: str = Field(examples=["http://HOST:PORT/v1"])
    model: str | None = None  # None: the one model the server lists
    api: Literal["completions", "chat"] = "completions"
    concurrency: int | None = Field(None, ge=1)
    num_concurrent: int | None = Field(None, ge=1)  # lm-eval's name for concurrency
    rpm: float | None = Field(None, gt=0)
    tpm: float | None = Field(None, gt=0)
    timeout: float | None = Field(None, ge=1e-3)
    max_retries: int | None = Field(None, ge=0)
    backoff: float | None = Field(None, ge=0)
    max_backoff: float | None = Field(None, ge=0)
    api_key_env: str | None = None  # None: OPENAI_API_KEY, if set; "none": no key at all
    stream: Flag = True
    tokenizer: str | None = None
    add_bos_token: Flag | None = None
    max_length: int | None = Field(None, ge=2)
    echo_max_tokens: int = Field(0, ge=0, le=1)
    seed: int | None = Field(None, ge=0)

    @classmethod
    def refuse(cls, args: Mapping[str, str]) -> None:
        if any(k.lower() in _SECRET_KEYS for k in args):
            raise ConfigError(
                "do not put API keys in --model_args (they are stored with the run); set "
                "OPENAI_API_KEY, or name another variable with api_key_env=NAME"
            )


@register_backend("openai", args=OpenAIArgs)
def load_openai(
    args: OpenAIArgs | Mapping[str, str], *, device: str | None = None, batch_size: int | str = 1
) -> OpenAIBackend:
    del device, batch_size  # the server decides both
    a = OpenAIArgs.parse(args)
    base_url = normalize_base_url(a.base_url)
    key_env = a.api_key_env if a.api_key_env is not None else "OPENAI_API_KEY"
    if key_env.lower() == NO_KEY_ENV:
        key_env, api_key = NO_KEY_ENV, None  # explicitly keyless: the environment is not read
    else:
        api_key = os.environ.get(key_env) or None
    if a.api_key_env is not None and api_key is None and key_env != NO_KEY_ENV:
        raise ConfigError(f"--model_args api_key_env={key_env}: the variable ${key_env} is not set")
    defaults = OpenAIConfig(base_url="", model="")
    model = a.model or _only_served_model(base_url, api_key)
    config = OpenAIConfig(
        base_url=base_url,
        model=model,
        api=a.api,
        concurrency=a.concurrency or a.num_concurrent or defaults.concurrency,
        rpm=a.rpm,
        tpm=a.tpm,
        timeout=a.timeout or defaults.timeout,
        max_retries=_or(a.max_retries, defaults.max_retries),
        backoff=_or(a.backoff, defaults.backoff),
        max_backoff=_or(a.max_backoff, defaults.max_backoff),
        api_key_env=key_env,
        stream=a.stream,
        tokenizer=a.tokenizer or None,
        add_bos_token=a.add_bos_token,
        max_length=_or(a.max_length, defaults.max_length),
        echo_max_tokens=a.echo_max_tokens,
        seed=_or(a.seed, defaults.seed),
    )
    return OpenAIBackend(config, api_key=api_key)


_T = TypeVar("_T")


def _or(value: _T | None, default: _T) -> _T:
    return default if value is None else value


def _only_served_model(base_url: str, api_key: str | None) -> str:
    """No ``model=``: ask ``/models`` and take the only model served."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = httpx.get(f"{base_url}/models", headers=headers, timeout=30.0)
        response.raise_for_status()
        ids = [m["id"] for m in response.json()["data"]]
    except (httpx.HTTPError, KeyError, TypeError, ValueError) as err:
        raise ConfigError(
            f"--model_args has no model=NAME and {base_url}/models could not list one "
            f"({type(err).__name__}); pass model=NAME"
        ) from None
    if len(ids) != 1:
        raise ConfigError(f"--model_args needs model=NAME: {base_url} serves {', '.join(ids) or 'no model'}")
    return str(ids[0])


def _with_count(response: Any, n: int) -> tuple[Any, int]:
    """A job's result with its prompt's token count (``_Job.finish`` of token-id prompts)."""
    return response, n
