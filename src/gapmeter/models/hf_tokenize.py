"""lm-evaluation-harness's tokenisation rules for a HuggingFace tokenizer: BOS handling, batched
encoding of distinct texts, and the (context, continuation) split. Shared by the ``hf`` and
``vllm`` backends (lm-eval applies the same rules in both)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any

from gapmeter.models.chat_template import ChatTemplate, hf_chat_template
from gapmeter.models.pair_split import move_trailing_spaces, split_pair
from gapmeter.requests import LoglikelihoodRequest


class HFTokenization:
    """Mixed into a backend that sets ``tokenizer`` (a HuggingFace tokenizer) and
    ``add_bos_token`` (None: the tokenizer's default)."""

    tokenizer: Any
    add_bos_token: bool | None

    def chat_template(self, name: str | None) -> ChatTemplate:
        """``--apply_chat_template [NAME]``: the tokenizer's template (lm-eval's ``hf`` rules)."""
        where = str(getattr(self, "pretrained", None) or "the model")
        return hf_chat_template(self.tokenizer, name, where=where, retry_without_system=True)

    @property
    def prefix_token_id(self) -> int:
        if self.tokenizer.bos_token_id is not None:
            return int(self.tokenizer.bos_token_id)
        return int(self.tokenizer.eos_token_id)

    @cached_property
    def _prefix_text(self) -> str:
        # decoded once: _encode_kwargs runs for every text a run tokenizes
        return str(self.tokenizer.decode(self.prefix_token_id))

    def tok_encode(self, text: str, add_special_tokens: bool | None = None) -> list[int]:
        return list(self.tokenizer.encode(text, **self._encode_kwargs(text, add_special_tokens)))

    def _encode_kwargs(self, text: str, add_special_tokens: bool | None) -> dict[str, bool]:
        kwargs: dict[str, bool] = {}
        if add_special_tokens is not None:
            kwargs["add_special_tokens"] = add_special_tokens
        elif self.add_bos_token is not None:
            kwargs["add_special_tokens"] = self.add_bos_token
        # A prompt that already starts with BOS must not get a second one.
        if add_special_tokens is None and text.startswith(self._prefix_text):
            kwargs["add_special_tokens"] = False
        return kwargs

    def _encode_many(self, texts: Sequence[str]) -> dict[str, list[int]]:
        """``tok_encode`` of each distinct text, in one batched tokenizer call per option set
        (a doc's context is shared by its choices and is encoded once)."""
        by_kwargs: dict[tuple[tuple[str, bool], ...], list[str]] = {}
        for text in dict.fromkeys(texts):
            by_kwargs.setdefault(tuple(sorted(self._encode_kwargs(text, None).items())), []).append(text)
        out: dict[str, list[int]] = {}
        for kwargs, batch in by_kwargs.items():
            for text, ids in zip(batch, self.tokenizer(batch, **dict(kwargs))["input_ids"], strict=True):
                out[text] = list(ids)
        return out

    def encode_pairs(self, requests: Sequence[LoglikelihoodRequest]) -> list[tuple[list[int], list[int]]]:
        """``encode_pair`` of every request, with the tokenizer called in batches."""
        split: list[tuple[str, str] | None] = []
        texts: list[str] = []
        for r in requests:
            if r.context == "":
                split.append(None)
                continue
            context, continuation = move_trailing_spaces(r.context, r.continuation)
            split.append((context, context + continuation))
            texts += [context, context + continuation]
        encoded = self._encode_many(texts)
        pairs = []
        for r, sp in zip(requests, split, strict=True):
            if sp is None:
                pairs.append(self.encode_pair(r.context, r.continuation))
            else:
                ctx, whole = encoded[sp[0]], encoded[sp[1]]
                pairs.append((ctx, whole[len(ctx) :]))
        return pairs

    def encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """Tokens of (context, continuation) exactly as lm-eval splits them."""
        return split_pair(context, continuation, self.tok_encode, self.prefix_token_id)
