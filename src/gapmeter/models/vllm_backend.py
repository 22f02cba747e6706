"""vLLM backend (optional extra ``gapmeter[vllm]``), scored as lm-evaluation-harness 0.4.13's ``vllm``.

Tokenisation is the HF backend's (lm-eval's (context, continuation) split, the same BOS rules),
so request inputs are the token ids lm-eval's HF and vLLM backends feed. Loglikelihoods come from
``prompt_logprobs=1`` over ``(context + continuation)`` left-truncated to ``max_length`` (vLLM
returns the log-prob of each prompt token plus the top-1 token, which gives is_greedy); greedy
generation uses vLLM's stop strings, then the same cut as every backend. vLLM schedules and
batches everything itself (continuous batching, paged KV cache with automatic prefix caching),
so requests are handed over in one call and reported with their share of that call's time.

vLLM's kernels differ from transformers': its numbers agree with the ``hf`` backend's to the
float rounding of the kernels (bf16: ~1e-2 nat), not bit for bit; the fingerprint says "vllm".
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from gapmeter.errors import ConfigError
from gapmeter.models.base import BackendArgs, Flag, OnDone, RequestStats
from gapmeter.models.hf_tokenize import HFTokenization
from gapmeter.models.registry import register_backend
from gapmeter.models.stopping import cut_at_stops
from gapmeter.requests import GenerateRequest, LoglikelihoodRequest, RollingLoglikelihoodRequest

MISSING = "--model vllm: vllm is not installed (it is the optional extra 'vllm'); pip install vllm"


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError:
        raise ConfigError(MISSING) from None
    return vllm


# HF-identical tokenisation (HFTokenization): lm-eval uses the same rules in its vllm backend.
class VLLMModel(HFTokenization):
    name = "vllm"

    def __init__(
        self,
        pretrained: str,
        *,
        revision: str | None = None,
        dtype: str | None = None,
        max_length: int | None = None,
        add_bos_token: bool | None = None,
        trust_remote_code: bool = False,
        gpu_memory_utilization: float = 0.9,
        tensor_parallel_size: int = 1,
        seed: int = 1234,
    ) -> None:
        vllm = _import_vllm()
        self.pretrained, self.revision = pretrained, revision
        self.add_bos_token = add_bos_token
        self._vllm = vllm
        self.llm = vllm.LLM(
            model=pretrained, revision=revision, dtype=dtype or "auto", trust_remote_code=trust_remote_code,
            gpu_memory_utilization=gpu_memory_utilization, tensor_parallel_size=tensor_parallel_size,
            max_model_len=max_length, seed=seed, enable_prefix_caching=True,
        )
        self.tokenizer = self.llm.get_tokenizer()
        self.max_length = int(max_length or self.llm.llm_engine.model_config.max_model_len)
        self.dtype = str(self.llm.llm_engine.model_config.dtype).replace("torch.", "")

    def fingerprint(self) -> str:
        h = hashlib.sha256(json.dumps(self.describe(), sort_keys=True).encode())
        root = Path(self.pretrained)
        if root.is_dir():
            for file in sorted(p for p in root.iterdir() if p.is_file()):
                h.update(f"{file.name}:{file.stat().st_size}".encode())
        return h.hexdigest()[:32]

    def describe(self) -> dict[str, Any]:
        return {
            "backend": "vllm", "pretrained": self.pretrained, "revision": self.revision, "dtype": self.dtype,
            "max_length": self.max_length, "add_bos_token": self.add_bos_token,
            "vllm_version": getattr(self._vllm, "__version__", "?"),
        }

    # ------------------------------------------------------------------ scoring
    def _score_tokens(self, pairs: Sequence[tuple[list[int], list[int]]]) -> tuple[list[tuple[float, bool]], float]:
        params = self._vllm.SamplingParams(temperature=0.0, max_tokens=1, prompt_logprobs=1, detokenize=False)
        prompts, ctxlens = [], []
        for ctx, cont in pairs:
            inp = (ctx + cont)[-self.max_length :]
            prompts.append({"prompt_token_ids": inp})
            ctxlens.append(len(inp) - len(cont))
        started = time.perf_counter()
        outputs = self.llm.generate(prompts, sampling_params=params, use_tqdm=False)
        seconds = time.perf_counter() - started
        results = []
        for out, (_ctx, cont), ctxlen in zip(outputs, pairs, ctxlens, strict=True):
            ll, greedy = 0.0, True
            for token, dist in zip(cont, out.prompt_logprobs[ctxlen:], strict=True):
                ll += dist[token].logprob
                top = max(dist.items(), key=lambda kv: kv[1].logprob)[0]
                greedy = greedy and top == token
            results.append((ll, greedy))
        return results, seconds

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest], on_done: OnDone) -> None:
        if not requests:
            return
        pairs = self.encode_pairs(requests)
        results, seconds = self._score_tokens(pairs)
        share = seconds / len(requests)
        stats = [
            RequestStats(latency_s=share, batch_size=len(requests), prompt_tokens=len(c) + len(d), completion_tokens=0)
            for c, d in pairs
        ]
        on_done(list(range(len(requests))), results, stats)

    def loglikelihood_rolling(self, requests: Sequence[RollingLoglikelihoodRequest], on_done: OnDone) -> None:
        from gapmeter.models.hf import rolling_windows

        windows, owner, n_tokens = [], [], []
        for i, req in enumerate(requests):
            tokens = self.tok_encode(req.text)
            n_tokens.append(len(tokens))
            for ctx, cont in rolling_windows(tokens, self.prefix_token_id, self.max_length):
                windows.append((ctx, cont))
                owner.append(i)
        totals = [0.0] * len(requests)
        seconds = 0.0
        if windows:
            results, seconds = self._score_tokens(windows)
            for w, (ll, _greedy) in enumerate(results):
                totals[owner[w]] += ll
        stats = [
            RequestStats(latency_s=seconds / max(1, len(requests)), batch_size=len(requests), prompt_tokens=n,
                         completion_tokens=0)
            for n in n_tokens
        ]
        on_done(list(range(len(requests))), totals, stats)

    def generate(self, requests: Sequence[GenerateRequest], on_done: OnDone) -> None:
        eos_id = self.tokenizer.eos_token_id
        eos_text = None if eos_id is None else self.tokenizer.decode(eos_id, skip_special_tokens=False)
        prompts, params, all_stops = [], [], []
        for r in requests:
            stops = list(r.until) + ([eos_text] if eos_text is not None and eos_text not in r.until else [])
            all_stops.append(stops)
            opts = dict(r.options)
            do_sample = bool(opts.pop("do_sample", False))
            temperature = float(opts.pop("temperature", 0.0)) if do_sample else 0.0
            params.append(self._vllm.SamplingParams(
                max_tokens=r.max_gen_toks, stop=[s for s in stops if s], temperature=temperature, **opts
            ))
            max_ctx = self.max_length - r.max_gen_toks
            if max_ctx <= 0:
                raise ConfigError(f"max_gen_toks={r.max_gen_toks} leaves no room for a prompt (max_length {self.max_length})")
            prompts.append({"prompt_token_ids": self.tok_encode(r.context)[-max_ctx:]})
        if not prompts:
            return
        started = time.perf_counter()
        outputs = self.llm.generate(prompts, sampling_params=params, use_tqdm=False)
        share = (time.perf_counter() - started) / len(prompts)
        texts, stats = [], []
        for stops, p, out in zip(all_stops, prompts, outputs, strict=True):
            texts.append(cut_at_stops(out.outputs[0].text, stops))
            stats.append(RequestStats(latency_s=share, batch_size=len(prompts), prompt_tokens=len(p["prompt_token_ids"]),
                                      completion_tokens=len(out.outputs[0].token_ids)))
        on_done(list(range(len(requests))), texts, stats)


class VLLMArgs(BackendArgs):
    """``--model vllm --model_args pretrained=PATH,...`` (``device``/``batch_size``: vLLM's own)."""

    backend: ClassVar[str] = "vllm"

    pretrained: str = Field(examples=["PATH"])
    revision: str | None = None
    dtype: str | None = None
    max_length: int | None = None
    add_bos_token: Flag | None = None
    trust_remote_code: Flag = False
    gpu_memory_utilization: float = 0.9
    tensor_parallel_size: int = 1
    seed: int = 1234
    batch_size: str | None = None  # accepted for lm-eval's command lines; vLLM batches itself
    device: str | None = None  # likewise


@register_backend("vllm", args=VLLMArgs)
def load_vllm(args: VLLMArgs | Mapping[str, str], *, device: str | None, batch_size: int | str) -> VLLMModel:
    _import_vllm()  # the missing extra is the first thing to report
    a = VLLMArgs.parse(args)
    if device not in (None, "auto") and not str(device).startswith("cuda"):
        raise ConfigError(f"--device {device}: the vllm backend runs on CUDA GPUs only")
    return VLLMModel(
        a.pretrained,
        revision=a.revision,
        dtype=a.dtype,
        max_length=a.max_length,
        add_bos_token=a.add_bos_token,
        trust_remote_code=a.trust_remote_code,
        gpu_memory_utilization=a.gpu_memory_utilization,
        tensor_parallel_size=a.tensor_parallel_size,
        seed=a.seed,
    )
