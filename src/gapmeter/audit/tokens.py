"""A backend capability the request primitives lack: per-token log-probs with full-vocab moments.

Min-K% needs log p(x_t | x_<t) for every token of a text; Min-K%++ also needs the mean μ_t and
standard deviation σ_t of log p(· | x_<t) under the model's own next-token distribution, i.e. the
full softmax at every position. A local HF model has both; an API backend generally does not, and
the detectors that need them are then skipped with that reason. This module reads the HF
backend's model object and tokenizer directly (it never changes the backend).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

CORE_CAPABILITIES = frozenset({"loglikelihood", "loglikelihood_rolling", "generate"})
TOKEN_CAPABILITIES = frozenset({"token_logprobs", "full_logits"})


@dataclass(frozen=True)
class TokenStats:
    """For each scored token t: log p(x_t|x_<t), μ_t = E_z[log p(z|x_<t)], σ_t (all float64)."""

    logp: np.ndarray
    mu: np.ndarray
    sigma: np.ndarray


class TokenScorer(Protocol):
    def token_stats(self, texts: Sequence[str], on_batch: Callable[[int], None] | None = None) -> list[TokenStats]: ...


def backend_capabilities(backend: Any) -> frozenset[str]:
    """What a backend can do: its declared ``capabilities`` if it has them, else the request
    primitives it implements plus token-level access when its weights are local."""
    declared = getattr(backend, "capabilities", None)
    if declared is not None:
        return frozenset(declared)
    caps = {c for c in CORE_CAPABILITIES if callable(getattr(backend, c, None))}
    if token_scorer_for(backend) is not None:
        caps |= TOKEN_CAPABILITIES
    return frozenset(caps)


def token_scorer_for(backend: Any) -> TokenScorer | None:
    """A TokenScorer over a backend holding a local torch causal LM and its tokenizer, else None."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        return None
    model = getattr(backend, "model", None)
    tokenizer = getattr(backend, "tokenizer", None)
    if isinstance(model, torch.nn.Module) and tokenizer is not None and hasattr(backend, "tok_encode"):
        return HFTokenScorer(backend)
    return None


class HFTokenScorer:
    """Token statistics from a local HF causal LM (the ``hf`` backend's model and tokenizer).

    Tokenisation is the backend's own (``tok_encode``, its BOS rule); the first token is
    predicted from the prefix token as lm-eval's rolling loglikelihood does. Texts longer than
    the model's context are cut at ``max_length`` tokens (audit items are short).
    """

    # floats of [tokens, vocab] log-softmax kept at once (bounds memory for large vocabularies)
    MAX_CELLS = 64_000_000

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.model = backend.model
        self.device = getattr(backend, "device", None) or next(self.model.parameters()).device

    def _encode(self, text: str) -> tuple[list[int], list[int]]:
        """(input ids, target ids) of equal length."""
        b = self.backend
        tokens = list(b.tok_encode(text))
        prefix = int(b.prefix_token_id)
        if tokens and tokens[0] == prefix:
            inp, tgt = tokens[:-1], tokens[1:]
        else:
            inp, tgt = [prefix] + tokens[:-1], tokens
        n = min(len(tgt), int(b.max_length))
        return inp[:n], tgt[:n]

    def token_stats(self, texts: Sequence[str], on_batch: Callable[[int], None] | None = None) -> list[TokenStats]:
        """Statistics per text; ``on_batch(rows)`` after each forward pass (progress)."""
        import torch
        import torch.nn.functional as F

        encoded = [self._encode(t) for t in texts]
        vocab = int(self.model.get_output_embeddings().weight.shape[0])
        order = sorted(range(len(texts)), key=lambda i: -len(encoded[i][0]))
        out: list[TokenStats | None] = [None] * len(texts)
        pad = 0
        start = 0
        while start < len(order):
            longest = max(1, len(encoded[order[start]][0]))
            rows = max(1, min(64, self.MAX_CELLS // (longest * vocab)))
            batch = order[start : start + rows]
            start += rows
            ids = torch.full((len(batch), longest), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), longest), dtype=torch.long)
            for r, i in enumerate(batch):
                inp = encoded[i][0]
                if inp:
                    ids[r, : len(inp)] = torch.tensor(inp, dtype=torch.long)
                    mask[r, : len(inp)] = 1
            with torch.no_grad():
                logits = self.model(ids.to(self.device), attention_mask=mask.to(self.device)).logits
                logprobs = F.log_softmax(logits.float(), dim=-1)  # [B, T, V]
                probs = logprobs.exp()
                mu = (probs * logprobs).sum(-1)  # [B, T]
                var = (probs * logprobs.square()).sum(-1) - mu.square()
                sigma = var.clamp_min(1e-12).sqrt()
            for r, i in enumerate(batch):
                tgt = encoded[i][1]
                n = len(tgt)
                t = torch.tensor(tgt, dtype=torch.long, device=logprobs.device)
                lp = logprobs[r, :n].gather(1, t.unsqueeze(1)).squeeze(1)
                out[i] = TokenStats(
                    lp.double().cpu().numpy(), mu[r, :n].double().cpu().numpy(), sigma[r, :n].double().cpu().numpy()
                )
            if on_batch is not None:
                on_batch(len(batch))
        return [s if s is not None else TokenStats(np.zeros(0), np.zeros(0), np.zeros(0)) for s in out]
