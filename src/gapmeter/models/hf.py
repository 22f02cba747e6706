"""HuggingFace transformers backend (CPU and CUDA).

Scoring follows lm-evaluation-harness 0.4.13's HFLM so per-sample numbers match: the same
tokenisation of (context, continuation) pairs, left truncation to ``max_length + 1``, a plain
right-padded forward without attention mask, the log-softmax, gather and sum in float32 (lm-eval's
``softmax_dtype=float32``; ``softmax_dtype=model`` keeps the model's dtype, lm-eval's default
``softmax_dtype=None``, where bf16 weights give bf16-rounded loglikelihoods; for float32 weights
the two are the same), and greedy generation through ``generate`` with the same stop handling. Differences are deliberate
and never change a number beyond float rounding: the log-softmax is taken only at continuation
positions, identical forward inputs are computed once, inputs sharing a context run it once and
reuse its KV cache (``models/prefix_cache.py``; ``prefix_cache=false`` turns that off), and
batches are filled by a token budget.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Any, ClassVar

import torch
import torch.nn.functional as F
from pydantic import BeforeValidator, Field

from gapmeter.errors import ConfigError, GapmeterError
from gapmeter.models import prefix_cache as prefix_cache_module
from gapmeter.models.base import BackendArgs, Flag, OnDone, RequestStats, auto_is_none
from gapmeter.models.batch_scoring import ScoredRow, score_rows
from gapmeter.models.batching import TokenBudget, pad_right, run_in_batches, run_in_group_batches
from gapmeter.models.hf_tokenize import HFTokenization
from gapmeter.models.registry import register_backend
from gapmeter.models.scoring_path import KV_REUSE, choose_scoring_path
from gapmeter.models.stopping import StopOnStrings, cut_at_stops
from gapmeter.requests import GenerateRequest, LoglikelihoodRequest, RollingLoglikelihoodRequest

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}
DEFAULT_MAX_LENGTH = 2048
#: Big enough that a chunk fills many token-budget batches, small enough that the first chunk's
#: tokenization (the accelerator's idle time) is a small part of the whole.
TOKENIZE_CHUNK = 2048


def _resolve_dtype(name: str | None) -> torch.dtype | str:
    if name is None or name == "auto":
        return "auto"
    if name not in _DTYPES:
        raise ConfigError(f"--model_args dtype={name!r}: use one of auto, {', '.join(_DTYPES)}")
    return _DTYPES[name]


def _resolve_softmax_dtype(name: str | None) -> torch.dtype | None:
    """``None`` means the logits' own dtype (lm-eval's ``softmax_dtype=None``)."""
    if name is None or name in ("model", "none", "None"):
        return None
    if name not in _DTYPES:
        raise ConfigError(f"--model_args softmax_dtype={name!r}: use model or one of {', '.join(_DTYPES)}")
    return _DTYPES[name]


def _resolve_device(device: str | None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: CUDA is not available on this machine")
    try:
        return torch.device(device)
    except RuntimeError:
        raise ConfigError(f"--device {device!r} is not a torch device") from None


class HFModel(HFTokenization):
    """A causal LM loaded with ``AutoModelForCausalLM``."""

    name = "hf"

    def __init__(
        self,
        pretrained: str,
        *,
        revision: str | None = None,
        dtype: str | None = None,
        device: str | None = None,
        batch_size: int | str = 1,
        max_batch_size: int = 512,
        max_length: int | None = None,
        add_bos_token: bool | None = None,
        trust_remote_code: bool = False,
        prefix_cache: bool | None = None,
        softmax_dtype: str | None = "float32",
    ) -> None:
        import transformers

        self.pretrained = pretrained
        self.revision = revision
        self.device = _resolve_device(device)
        self.add_bos_token = add_bos_token
        self.softmax_dtype = _resolve_softmax_dtype(softmax_dtype)
        path = Path(pretrained)
        if path.exists() and not (path / "config.json").is_file():
            raise ConfigError(f"--model_args pretrained={pretrained}: no config.json there; not a HuggingFace model directory")
        try:
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(
                pretrained, revision=revision, trust_remote_code=trust_remote_code
            )
            torch_dtype = _resolve_dtype(dtype)
            self.model = transformers.AutoModelForCausalLM.from_pretrained(
                pretrained, revision=revision, dtype=torch_dtype, trust_remote_code=trust_remote_code
            )
        except (OSError, ValueError, KeyError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ConfigError(f"--model_args pretrained={pretrained}: cannot load a causal LM: {first}") from None
        # As an nn.Module for the type checker: transformers wraps ``PreTrainedModel.to`` with
        # functools.wraps, which mypy cannot bind to the instance. The call is the same.
        module: torch.nn.Module = self.model
        module.to(self.device).eval()
        if self.tokenizer.pad_token_id is None:
            # lm-eval's choice (unk, else eos): only affects padding, never a score.
            self.tokenizer.pad_token_id = (
                self.tokenizer.unk_token_id
                if self.tokenizer.unk_token_id is not None
                else self.tokenizer.eos_token_id
            )
        self.dtype = next(self.model.parameters()).dtype
        if isinstance(torch_dtype, torch.dtype) and self.dtype != torch_dtype:
            # a transformers that ignores the dtype keyword must not score in another precision silently
            raise ConfigError(
                f"--model_args dtype={dtype}: the model loaded as {str(self.dtype).replace('torch.', '')}; "
                f"transformers {transformers.__version__} did not apply it (gapmeter needs transformers>=4.56)"
            )
        self._max_length = max_length
        self.batch_size = batch_size
        self.budget = TokenBudget(
            batch_size=batch_size, max_batch_size=max_batch_size, device=self.device, probe=self._probe
        )
        self._fingerprint: str | None = None
        #: cumulative seconds of host-side phases (benchmarks read them)
        self.phase_seconds: dict[str, float] = {"tokenize": 0.0, "tokenize_wait": 0.0}
        #: loglikelihood requests tokenized per step of the tokenize/score pipeline
        self.tokenize_chunk = TOKENIZE_CHUNK
        self._accepts_logits_to_keep = "logits_to_keep" in inspect.signature(self.model.forward).parameters
        self.scoring_path = choose_scoring_path(
            requested=prefix_cache,
            dtype=self.dtype,
            unsupported=prefix_cache_module.prefix_cache_unsupported(self.model, self.max_length),
            logits_to_keep=self._accepts_logits_to_keep,
            architecture=type(self.model).__name__,
        )
        self.prefix_cache = self.scoring_path["loglikelihood"] == KV_REUSE

    # ------------------------------------------------------------- identity
    @property
    def max_length(self) -> int:
        if self._max_length:
            return self._max_length
        cfg = getattr(self.model.config, "text_config", None) or self.model.config
        for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
            value = getattr(cfg, attr, None)
            if value is not None:
                return int(value)
        tok_max = getattr(self.tokenizer, "model_max_length", None)
        if tok_max is not None and tok_max < int(1e29):
            return int(tok_max)
        return DEFAULT_MAX_LENGTH

    def fingerprint(self) -> str:
        """Hash of config, tokenizer files and weight files (size + head/tail bytes), and options.

        Reading every byte of a 100 GB checkpoint per run would be slow; size plus the first and
        last MiB of each weight file changes whenever the weights do in practice.
        """
        if self._fingerprint is None:
            h = hashlib.sha256()
            h.update(json.dumps(self.describe(), sort_keys=True).encode())
            root = Path(self.pretrained)
            if root.is_dir():
                for file in sorted(root.iterdir()):
                    if not file.is_file():
                        continue
                    h.update(file.name.encode())
                    size = file.stat().st_size
                    h.update(str(size).encode())
                    with file.open("rb") as fh:
                        h.update(fh.read(1 << 20))
                        if size > 2 << 20:
                            fh.seek(-(1 << 20), os.SEEK_END)
                            h.update(fh.read())
            else:  # a hub id: the resolved commit is the identity
                h.update(str(getattr(self.model.config, "_commit_hash", "")).encode())
            self._fingerprint = h.hexdigest()[:32]
        return self._fingerprint

    def describe(self) -> dict[str, Any]:
        return {
            "backend": "hf",
            "pretrained": self.pretrained,
            "revision": self.revision,
            "dtype": str(self.dtype).replace("torch.", ""),
            "max_length": self.max_length,
            "add_bos_token": self.add_bos_token,
            "softmax_dtype": "model" if self.softmax_dtype is None else str(self.softmax_dtype).replace("torch.", ""),
            "architecture": type(self.model).__name__,
            "num_parameters": sum(p.numel() for p in self.model.parameters()),
            # part of the fingerprint: a KV-reuse response is not the exact path's response
            "scoring_path": self.scoring_path,
        }

    # ------------------------------------------------------ loglikelihood
    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest], on_done: OnDone) -> None:
        """Scored in chunks of ``tokenize_chunk`` requests: while one chunk is on the model, a
        worker thread tokenizes the next (the tokenizer's batch call releases the GIL), so the
        accelerator does not wait for the whole run's tokenization before it starts. A doc's
        requests are adjacent, so chunks rarely split what the prefix cache could share."""
        chunks = [range(a, min(a + self.tokenize_chunk, len(requests))) for a in range(0, len(requests), self.tokenize_chunk)]

        def encode(chunk: range) -> list[tuple[list[int], list[int]]]:
            started = time.perf_counter()
            pairs = self.encode_pairs([requests[i] for i in chunk])
            self.phase_seconds["tokenize"] += time.perf_counter() - started
            return pairs

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="gapmeter-tokenize") as pool:
            pending = pool.submit(encode, chunks[0]) if chunks else None
            for n, chunk in enumerate(chunks):
                assert pending is not None
                waited = time.perf_counter()
                pairs = pending.result()
                self.phase_seconds["tokenize_wait"] += time.perf_counter() - waited
                pending = pool.submit(encode, chunks[n + 1]) if n + 1 < len(chunks) else None
                self._score_token_pairs(pairs, self._stats_reporter(pairs, chunk.start, on_done))

    @staticmethod
    def _stats_reporter(pairs: Sequence[tuple[list[int], list[int]]], offset: int, on_done: OnDone) -> Any:
        """``on_done`` for the engine from a chunk's ``(positions, results, seconds)``."""

        def with_stats(idx: list[int], results: list[Any], seconds: float) -> None:
            stats = [
                RequestStats(
                    latency_s=seconds,
                    batch_size=len(idx),
                    prompt_tokens=len(pairs[i][0]) + len(pairs[i][1]),
                    completion_tokens=0,
                )
                for i in idx
            ]
            on_done([offset + i for i in idx], results, stats)

        return with_stats

    def loglikelihood_rolling(
        self, requests: Sequence[RollingLoglikelihoodRequest], on_done: OnDone
    ) -> None:
        windows: list[tuple[list[int], list[int]]] = []
        owner: list[int] = []
        n_tokens: list[int] = []
        for i, req in enumerate(requests):
            tokens = self.tok_encode(req.text)
            n_tokens.append(len(tokens))
            for ctx, cont in rolling_windows(tokens, self.prefix_token_id, self.max_length):
                windows.append((ctx, cont))
                owner.append(i)
        totals = [0.0] * len(requests)
        seconds = [0.0] * len(requests)
        remaining = [0] * len(requests)
        for r in owner:
            remaining[r] += 1

        def collect(idx: list[int], results: list[Any], batch_seconds: float) -> None:
            done_idx, done_res = [], []
            for w, (ll, _greedy) in zip(idx, results, strict=True):
                r = owner[w]
                totals[r] += ll
                remaining[r] -= 1
                if remaining[r] == 0:
                    done_idx.append(r)
                    done_res.append(totals[r])
            # A document's time is the sum of the batches its windows were computed in.
            for r in {owner[w] for w in idx}:
                seconds[r] += batch_seconds
            if done_idx:
                stats = [
                    RequestStats(
                        latency_s=seconds[r], batch_size=len(done_idx), prompt_tokens=n_tokens[r], completion_tokens=0
                    )
                    for r in done_idx
                ]
                on_done(done_idx, done_res, stats)

        empty = [i for i, n in enumerate(remaining) if n == 0]
        if empty:
            on_done(empty, [0.0] * len(empty), [RequestStats(latency_s=0.0, prompt_tokens=0, completion_tokens=0) for _ in empty])
        self._score_token_pairs(windows, collect)

    def _score_token_pairs(self, pairs: Sequence[tuple[list[int], list[int]]], on_done: Any) -> None:
        """Score (context, continuation) token pairs; ``on_done(positions, results, seconds)``
        with the compute time of the batch that produced them."""
        max_len = self.max_length
        # Identical model inputs are computed once (MMLU's " A".." D" share one forward).
        inputs: list[tuple[int, ...]] = []
        key_of: dict[tuple[int, ...], int] = {}
        members: list[list[int]] = []
        for i, (ctx, cont) in enumerate(pairs):
            if not cont:
                raise GapmeterError("a loglikelihood request has an empty continuation after tokenising")
            inp = tuple((ctx + cont)[-(max_len + 1) :][:-1])
            key = key_of.setdefault(inp, len(inputs))
            if key == len(inputs):
                inputs.append(inp)
                members.append([])
            members[key].append(i)
        # Each input's scored window: its last `width` positions (the longest continuation).
        widths = [max(len(pairs[i][1]) for i in members[k]) for k in range(len(inputs))]

        def emit(logits: torch.Tensor, keys: Sequence[int], ends: Sequence[int], started: float) -> None:
            # Row r of `logits` holds input keys[r]; its scored window ends at ends[r] and is
            # widths[k] long; each request on that input scores the tail of the window.
            rows = [
                ScoredRow(r, end, widths[k], [pairs[i][1] for i in members[k]])
                for r, (k, end) in enumerate(zip(keys, ends, strict=True))
            ]
            results = score_rows(logits, rows, self.softmax_dtype)
            on_done([i for k in keys for i in members[k]], results, time.perf_counter() - started)

        if self.prefix_cache:
            groups, singles = prefix_cache_module.plan_groups(inputs, widths)
        else:
            groups, singles = [], list(range(len(inputs)))

        if groups:
            shapes = [prefix_cache_module.group_shape(g, inputs) for g in groups]

            def process_groups(batch: list[int]) -> None:
                started = time.perf_counter()
                logits, keys, ends = prefix_cache_module.forward_groups(
                    self.model, [groups[g] for g in batch], inputs, widths,
                    pad_id=self.tokenizer.pad_token_id or 0, device=self.device,
                    logits_to_keep=self._accepts_logits_to_keep,
                )
                emit(logits, keys, ends, started)

            by_prefix = sorted(range(len(groups)), key=lambda g: (-shapes[g][1], -shapes[g][2], g))
            run_in_group_batches(by_prefix, shapes, self.budget, process_groups)

        if singles:
            lengths = [len(x) for x in inputs]

            def process(batch: list[int]) -> None:
                started = time.perf_counter()
                logits, ends = self._forward_logits([inputs[k] for k in batch], [widths[k] for k in batch])
                emit(logits, batch, ends, started)

            order = sorted(singles, key=lambda k: (-lengths[k], inputs[k]))
            run_in_batches(order, lengths, self.budget, process)

    @torch.no_grad()
    def _forward_logits(self, inputs: list[tuple[int, ...]], widths: list[int]) -> tuple[torch.Tensor, list[int]]:
        """Logits of a right-padded batch (no attention mask, as lm-eval) and, per row, where its
        scored window ends in them (the window is the last ``width`` positions of the input).

        The LM head runs only over the span of positions some row scores: with length-sorted
        batches that is a few positions instead of the whole padded length (the vocab projection
        dominates for large vocabularies). Logits stay on the model's device.
        """
        batch = pad_right(inputs, self.tokenizer.pad_token_id or 0)
        first = min(len(x) - w for x, w in zip(inputs, widths, strict=True))
        last = max(len(x) for x in inputs)
        kwargs: dict[str, Any] = {"use_cache": False}
        if self._accepts_logits_to_keep:
            kwargs["logits_to_keep"] = torch.arange(first, last, device=self.device)
        else:
            first = 0
        logits = self.model(batch.to(self.device), **kwargs).logits  # [B, last - first, vocab]
        return logits, [len(x) - first for x in inputs]

    def _probe(self, n_tokens: int) -> None:
        """One forward of ``n_tokens`` tokens (as a [1, n] batch) to size the token budget."""
        length = min(self.max_length, n_tokens)
        rows = max(1, n_tokens // length)
        x = torch.full((rows, length), self.prefix_token_id, dtype=torch.long, device=self.device)
        with torch.no_grad():
            logits = self.model(x).logits
            F.log_softmax(logits[:, -8:].float(), dim=-1)

    # --------------------------------------------------------- generation
    def generate(self, requests: Sequence[GenerateRequest], on_done: OnDone) -> None:
        """Greedy continuations, batched per set of generation options, longest prompt first."""
        eos_id = self.tokenizer.eos_token_id
        eos_text = None if eos_id is None else self.tokenizer.decode(eos_id, skip_special_tokens=False)
        groups: dict[tuple[Any, ...], list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault((r.until, r.max_gen_toks, r.options), []).append(i)
        for (until, max_gen_toks, options), idxs in groups.items():
            # lm-eval adds the decoded EOS to the stop strings.
            stops = list(until) + ([eos_text] if eos_text is not None and eos_text not in until else [])
            self._generate_group(requests, idxs, stops, max_gen_toks, dict(options), on_done)

    def _generate_group(
        self,
        requests: Sequence[GenerateRequest],
        idxs: list[int],
        stops: list[str],
        max_gen_toks: int,
        options: dict[str, Any],
        on_done: OnDone,
    ) -> None:
        max_ctx = self.max_length - max_gen_toks
        if max_ctx <= 0:
            raise ConfigError(f"max_gen_toks={max_gen_toks} leaves no room for a prompt (max_length {self.max_length})")
        encoded = {i: self._encode_prompt(requests[i].context) for i in idxs}
        order = sorted(idxs, key=lambda i: (-len(encoded[i]), requests[i].context))
        gen_lengths = {i: min(len(encoded[i]), max_ctx) + max_gen_toks for i in idxs}

        def process(batch: list[int]) -> None:
            started = time.perf_counter()
            outputs = self._generate_batch([encoded[i] for i in batch], stops, max_ctx, max_gen_toks, dict(options))
            seconds = time.perf_counter() - started
            stats = [
                RequestStats(
                    latency_s=seconds, batch_size=len(batch), prompt_tokens=len(encoded[i]), completion_tokens=n
                )
                for i, (_text, n) in zip(batch, outputs, strict=True)
            ]
            on_done(batch, [cut_at_stops(text, stops) for text, _n in outputs], stats)

        run_in_batches(order, gen_lengths, self.budget, process)

    def _encode_prompt(self, text: str) -> list[int]:
        kwargs: dict[str, bool] = {}
        if self.tokenizer.bos_token and text.startswith(self.tokenizer.bos_token):
            kwargs["add_special_tokens"] = False
        elif self.add_bos_token is not None:
            kwargs["add_special_tokens"] = self.add_bos_token
        return list(self.tokenizer(text, **kwargs)["input_ids"])

    @torch.no_grad()
    def _generate_batch(
        self, prompts: list[list[int]], stops: list[str], max_ctx: int, max_gen_toks: int, options: dict[str, Any]
    ) -> list[tuple[str, int]]:
        """Each prompt's generated text and number of generated tokens (trailing padding of a
        row that stopped before the others excluded)."""
        longest = max(len(p) for p in prompts)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(prompts), longest), pad, dtype=torch.long)
        mask = torch.zeros((len(prompts), longest), dtype=torch.long)
        for row, p in enumerate(prompts):  # left padding, as lm-eval's tok_batch_encode
            ids[row, longest - len(p) :] = torch.tensor(p, dtype=torch.long)
            mask[row, longest - len(p) :] = 1
        ids, mask = ids[:, -max_ctx:], mask[:, -max_ctx:]
        width = ids.shape[1]
        do_sample = bool(options.pop("do_sample", False))
        temperature = options.pop("temperature", 0.0)
        kwargs: dict[str, Any] = dict(options)
        kwargs["do_sample"] = do_sample
        if do_sample:
            kwargs["temperature"] = temperature
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        out = self.model.generate(
            input_ids=ids.to(self.device),
            attention_mask=mask.to(self.device),
            max_length=width + max_gen_toks,
            stopping_criteria=[StopOnStrings(self.tokenizer, stops, width)],
            pad_token_id=pad,
            use_cache=True,
            **kwargs,
        )
        results = []
        for row in out[:, width:].tolist():
            n = len(row)
            while n > 0 and row[n - 1] == pad:
                n -= 1
            results.append((str(self.tokenizer.decode(row, skip_special_tokens=True)), n))
        return results


def rolling_windows(tokens: list[int], prefix_token: int, max_seq_len: int) -> list[tuple[list[int], list[int]]]:
    """Disjoint (context, prediction) windows covering ``tokens`` (lm-eval's rolling scheme, context_len=1)."""
    if not tokens:
        return []
    windows = []
    first = min(max_seq_len, len(tokens))
    windows.append(([prefix_token] + tokens[: first - 1], tokens[:first]))
    predicted = first
    while predicted < len(tokens):
        pred_len = min(len(tokens) - predicted, max_seq_len)
        end = predicted + pred_len
        windows.append((tokens[end - max_seq_len - 1 : end - 1], tokens[end - pred_len : end]))
        predicted += pred_len
    # make_disjoint_window: the context must not overlap the predicted tokens
    return [(ctx[: len(ctx) - (len(pred) - 1)], pred) for ctx, pred in windows]


class HFArgs(BackendArgs):
    """``--model hf --model_args pretrained=PATH,...``: the keys (as lm-eval's HFLM names them)."""

    backend: ClassVar[str] = "hf"

    pretrained: str = Field(examples=["PATH"])
    revision: str | None = None
    dtype: str | None = None  # auto or a _DTYPES name (checked when the model loads)
    max_length: int | None = None
    add_bos_token: Flag | None = None
    trust_remote_code: Flag = False
    max_batch_size: int = 512
    device: str | None = None  # overrides --device
    batch_size: str | None = None  # overrides --batch_size
    prefix_cache: Annotated[Flag | None, BeforeValidator(auto_is_none)] = None  # auto
    softmax_dtype: str = "float32"


@register_backend("hf", args=HFArgs)
def load_hf(args: HFArgs | Mapping[str, str], *, device: str | None, batch_size: int | str) -> HFModel:
    a = HFArgs.parse(args)
    return HFModel(
        a.pretrained,
        revision=a.revision,
        dtype=a.dtype,
        device=a.device if a.device is not None else device,
        batch_size=a.batch_size if a.batch_size is not None else batch_size,
        max_batch_size=a.max_batch_size,
        max_length=a.max_length,
        add_bos_token=a.add_bos_token,
        trust_remote_code=a.trust_remote_code,
        prefix_cache=a.prefix_cache,
        softmax_dtype=a.softmax_dtype,
    )
