"""What ``gapmeter serve`` serves: a HuggingFace model, or an ``echo`` stand-in without a model.

Both answer the same four questions the HTTP layer asks: tokenise a prompt (with character
offsets), score every prompt token (log-prob and top-k), and decode a continuation step by step
(greedy or sampled, stopping on stop strings, EOS or the token limit).

The HF model is the ``hf`` backend's (``load_hf``): the same tokenisation (``tok_encode``), the
same weights and dtype, the log-softmax in the backend's ``softmax_dtype`` (float32 unless told), so loglikelihoods through the API
match the in-process backend's. All torch work runs on one worker thread, one call at a time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from gapmeter.models.kv_cache_api import cache_keyword, output_cache


@dataclass
class PromptScores:
    """Per-token log-probs of a prompt (the first token has none) and the top-k alternatives."""

    logprobs: list[float | None]
    top: list[dict[str, float] | None]


@dataclass
class Step:
    """Text that became final in one decoding step (held back while it could start a stop)."""

    text: str
    token: str | None = None
    logprob: float | None = None
    top: dict[str, float] | None = None


class Decoder(Protocol):
    done: bool
    finish_reason: str | None
    n_tokens: int

    def step(self) -> Step: ...


class ServedModel(Protocol):
    name: str
    max_length: int
    runs_inline: bool  # cheap enough to run on the event loop (no worker thread)

    def encode(self, text: str) -> tuple[list[int], list[int]]: ...
    def token_strings(self, ids: list[int]) -> list[str]: ...
    def decode(self, ids: list[int]) -> str: ...
    def score(self, ids: list[int], top_k: int) -> PromptScores: ...
    def decoder(self, ids: list[int], *, max_tokens: int, stops: list[str], temperature: float,
                seed: int | None, top_k: int) -> Decoder: ...
    def chat_prompt(self, messages: list[dict[str, Any]]) -> str: ...


# ---------------------------------------------------------------- decoding text
@dataclass
class _TextState:
    """Generated text, stop handling and what has been handed out so far."""

    stops: list[str]
    text: str = ""
    emitted: int = 0
    done: bool = False
    finish_reason: str | None = None
    holdback: int = field(init=False)

    def __post_init__(self) -> None:
        self.stops = [s for s in self.stops if s]
        self.holdback = max((len(s) for s in self.stops), default=1) - 1

    def update(self, text: str, *, finished: str | None) -> str:
        """Set the full decoded text; return the newly final part."""
        cut = min((i for i in (text.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            text, finished = text[:cut], "stop"
        self.text = text
        if finished:
            self.done, self.finish_reason = True, finished
            end = len(text)
        else:
            # Hold back what could still become a stop string, and a half-decoded character.
            end = max(self.emitted, len(text) - self.holdback)
            while end > self.emitted and text[end - 1] == "\ufffd":
                end -= 1
        delta = text[self.emitted : end]
        self.emitted = max(self.emitted, end)
        return delta


# ------------------------------------------------------------------ HF model
class HFServed:
    runs_inline = False

    def __init__(self, hf: Any, name: str) -> None:
        import torch

        self._torch = torch
        self.hf = hf  # gapmeter.models.hf.HFModel
        self.tokenizer = hf.tokenizer
        self.model = hf.model
        self.cache_keyword = cache_keyword(hf.model.forward) or "past_key_values"
        self.name = name
        self.max_length = hf.max_length
        self.eos_id = self.tokenizer.eos_token_id

    def encode(self, text: str) -> tuple[list[int], list[int]]:
        ids = self.hf.tok_encode(text)
        for special in (True, False):
            try:
                enc = self.tokenizer(text, add_special_tokens=special, return_offsets_mapping=True)
            except (NotImplementedError, TypeError, ValueError):
                break  # a slow tokenizer: no offsets
            if list(enc["input_ids"]) == ids:
                return ids, [int(start) for start, _ in enc["offset_mapping"]]
        return ids, self._offsets_by_decoding(ids)

    def _offsets_by_decoding(self, ids: list[int]) -> list[int]:
        offsets, pos = [], 0
        for piece in self.token_strings(ids):
            offsets.append(pos)
            pos += len(piece)
        return offsets

    def token_strings(self, ids: list[int]) -> list[str]:
        return [self.tokenizer.decode([i]) for i in ids]

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids)

    def score(self, ids: list[int], top_k: int) -> PromptScores:
        """Log-probs of ``ids[1:]`` given their prefixes, as the hf backend computes them.

        A prompt of ``max_length + 1`` tokens is allowed: the last position's logits are never
        needed, so the forward covers ``ids[:-1]`` (exactly what the hf backend feeds).
        """
        torch = self._torch
        if len(ids) < 2:
            return PromptScores([None] * len(ids), [None] * len(ids))
        with torch.no_grad():
            x = torch.tensor([ids[:-1]], dtype=torch.long, device=self.hf.device)
            logits = self.model(x, use_cache=False).logits[0]  # [n-1, vocab]
            logprobs = torch.log_softmax(logits, dim=-1, dtype=self.hf.softmax_dtype)  # as hf's backend
            target = torch.tensor(ids[1:], dtype=torch.long, device=logprobs.device)
            chosen = logprobs.gather(1, target[:, None])[:, 0].float().tolist()
            k = max(1, min(top_k, logprobs.shape[-1]))
            top_v, top_i = logprobs.topk(k, dim=-1)
            top_v, top_i = top_v.float().tolist(), top_i.tolist()
        tops: list[dict[str, float] | None] = [None]
        for values, indices in zip(top_v, top_i, strict=True):
            tops.append(dict(zip(self.token_strings(indices), values, strict=True)))
        return PromptScores([None, *chosen], tops)

    def decoder(self, ids: list[int], *, max_tokens: int, stops: list[str], temperature: float,
                seed: int | None, top_k: int) -> Decoder:
        return _HFDecoder(self, ids, max_tokens=max_tokens, stops=stops, temperature=temperature,
                          seed=seed, top_k=top_k)

    def chat_prompt(self, messages: list[dict[str, Any]]) -> str:
        if getattr(self.tokenizer, "chat_template", None):
            return str(self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
        return _plain_chat_prompt(messages)


class _HFDecoder:
    """Token-by-token decoding with a KV cache (the steps ``model.generate`` takes, one at a time)."""

    def __init__(self, served: HFServed, ids: list[int], *, max_tokens: int, stops: list[str],
                 temperature: float, seed: int | None, top_k: int) -> None:
        torch = served._torch
        self.served = served
        # Left-truncate the prompt to leave room for the answer (the hf backend's rule).
        room = max(1, served.max_length - max_tokens)
        self.prompt = ids[-room:]
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.top_k = top_k
        self.generator = None
        if temperature > 0:
            self.generator = torch.Generator(device="cpu")
            self.generator.manual_seed(0 if seed is None else int(seed))
        self.state = _TextState(list(stops))
        self.tokens: list[int] = []
        self.past: Any = None
        if max_tokens <= 0:
            self.state.done, self.state.finish_reason = True, "length"

    @property
    def done(self) -> bool:
        return self.state.done

    @property
    def finish_reason(self) -> str | None:
        return self.state.finish_reason

    @property
    def n_tokens(self) -> int:
        return len(self.tokens)

    def step(self) -> Step:
        torch = self.served._torch
        device = self.served.hf.device
        with torch.no_grad():
            if self.past is None:
                x = torch.tensor([self.prompt], dtype=torch.long, device=device)
            else:
                x = torch.tensor([[self.tokens[-1]]], dtype=torch.long, device=device)
            cache = {self.served.cache_keyword: self.past} if self.past is not None else {}
            out = self.served.model(input_ids=x, use_cache=True, **cache)
            self.past = output_cache(out)
            logits = out.logits[0, -1]
            logprobs = torch.log_softmax(logits.float(), dim=-1)
            if self.generator is not None:
                probs = torch.softmax(logits.float().cpu() / self.temperature, dim=-1)
                token = int(torch.multinomial(probs, 1, generator=self.generator))
            else:
                token = int(logits.argmax())
            top_v, top_i = logprobs.topk(max(1, self.top_k))
        eos = self.served.eos_id
        finished: str | None = None
        if eos is not None and token == eos:
            finished = "stop"  # EOS ends the answer and is not part of it
            delta = self.state.update(self.state.text, finished=finished)
            return Step(delta)
        else:
            self.tokens.append(token)
            if len(self.tokens) >= self.max_tokens:
                finished = "length"
        text = self.served.tokenizer.decode(self.tokens, skip_special_tokens=True)
        delta = self.state.update(text, finished=finished)
        piece = self.served.tokenizer.decode([token])
        top = dict(zip(self.served.token_strings(top_i.tolist()), top_v.tolist(), strict=True))
        return Step(delta, piece, float(logprobs[token]), top)


# -------------------------------------------------------------- echo model
_PSEUDO_TOKEN = re.compile(r"\s*\S+|\s+")


class EchoServed:
    """No model: whitespace-separated words are the tokens, every log-prob is -1.0, and every
    generation is ``reply``. For measuring a client's overhead against a server that costs
    nothing but its (injected) latency."""

    runs_inline = True

    def __init__(self, name: str = "echo", *, reply: str = " ok", max_length: int = 1 << 20) -> None:
        self.name = name
        self.reply = reply
        self.max_length = max_length
        self._vocab: dict[str, int] = {}
        self._words: list[str] = []

    def _id(self, word: str) -> int:
        if word not in self._vocab:
            self._vocab[word] = len(self._words)
            self._words.append(word)
        return self._vocab[word]

    def encode(self, text: str) -> tuple[list[int], list[int]]:
        ids, offsets = [], []
        for m in _PSEUDO_TOKEN.finditer(text):
            ids.append(self._id(m.group()))
            offsets.append(m.start())
        return ids, offsets

    def token_strings(self, ids: list[int]) -> list[str]:
        return [self._words[i] if 0 <= i < len(self._words) else f"<{i}>" for i in ids]

    def decode(self, ids: list[int]) -> str:
        return "".join(self.token_strings(ids))

    def score(self, ids: list[int], top_k: int) -> PromptScores:
        words = self.token_strings(ids)
        return PromptScores([None] + [-1.0] * (len(ids) - 1), [None] + [{w: -1.0} for w in words[1:]])

    def decoder(self, ids: list[int], *, max_tokens: int, stops: list[str], temperature: float,
                seed: int | None, top_k: int) -> Decoder:
        return _EchoDecoder(self.reply, max_tokens, stops)

    def chat_prompt(self, messages: list[dict[str, Any]]) -> str:
        return _plain_chat_prompt(messages)


class _EchoDecoder:
    def __init__(self, reply: str, max_tokens: int, stops: list[str]) -> None:
        self.words = [m.group() for m in _PSEUDO_TOKEN.finditer(reply)][: max(0, max_tokens)]
        self.state = _TextState(list(stops))
        self.n_tokens = 0
        if not self.words:
            self.state.done, self.state.finish_reason = True, "length" if max_tokens <= 0 else "stop"

    @property
    def done(self) -> bool:
        return self.state.done

    @property
    def finish_reason(self) -> str | None:
        return self.state.finish_reason

    def step(self) -> Step:
        word = self.words[self.n_tokens]
        self.n_tokens += 1
        finished = "stop" if self.n_tokens == len(self.words) else None
        delta = self.state.update("".join(self.words[: self.n_tokens]), finished=finished)
        return Step(delta, word, -1.0, {word: -1.0})


def _plain_chat_prompt(messages: list[dict[str, Any]]) -> str:
    """No chat template: the messages' contents, joined by blank lines (a single user message is
    its content unchanged, so a base model sees the same prompt as through completions)."""
    parts = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):  # [{"type": "text", "text": ...}, ...]
            content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        parts.append(str(content or ""))
    return "\n\n".join(parts)
