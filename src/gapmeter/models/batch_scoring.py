"""Loglikelihoods of a whole batch from its logits: one log-softmax, one gather, one copy.

lm-evaluation-harness scores each request on its own: a log-softmax over its row, a gather of its
continuation tokens, ``float(.sum())`` and ``bool((argmax == tokens).all())`` — two host syncs and
half a dozen kernels per request. Here a batch's scored positions are selected with one index, the
log-softmax and argmax run once over all of them, the continuation tokens are gathered once, and
everything comes back to the host in one copy.

Bit-for-bit with lm-eval: the log-softmax reduces over the vocabulary of each position on its own,
so running it over a stack of positions gives each row the value a per-request call gives. The sum
is the one reduction whose order depends on its input's shape, so each request's continuation
log-probs are still summed by their own ``sum()`` over a contiguous, 32-byte aligned span of n
values — the shape and alignment lm-eval's freshly gathered ``[1, n]`` tensor has. Those sums are
launched back to back with no sync in between; a single-token continuation needs no sum at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

#: Each request's span starts at a multiple of this many elements (32 bytes for float32, 16 for
#: bf16): the reduction kernels take their vectorised path only on aligned input.
_ALIGN = 8


@dataclass(frozen=True)
class ScoredRow:
    """One row of ``logits``: its scored window ``[end - width, end)`` and the continuations
    (token lists) scored on it; each continuation is the tail of the window."""

    row: int
    end: int
    width: int
    continuations: Sequence[Sequence[int]]


def score_rows(
    logits: torch.Tensor, rows: Sequence[ScoredRow], softmax_dtype: torch.dtype | None
) -> list[tuple[float, bool]]:
    """``(loglikelihood, is_greedy)`` of every continuation of every row, in order.

    ``logits`` is ``[batch, positions, vocab]``; ``softmax_dtype`` ``None`` keeps the logits'
    dtype (lm-eval's ``softmax_dtype=None``: bf16 weights give bf16-rounded sums).
    """
    _, length, vocab = logits.shape
    positions: list[int] = []  # flat (row * length + position) of every scored position
    targets: list[int] = []  # per continuation token: its index among the scored positions
    tokens: list[int] = []
    spans: list[tuple[int, int]] = []  # per continuation: (start in the aligned buffer, n)
    slots: list[int] = []  # per continuation token: its place in the aligned buffer
    scored = filled = 0
    for r in rows:
        base = r.row * length + r.end - r.width
        positions.extend(range(base, base + r.width))
        for cont in r.continuations:
            n = len(cont)
            targets.extend(range(scored + r.width - n, scored + r.width))
            tokens.extend(cont)
            spans.append((filled, n))
            slots.extend(range(filled, filled + n))
            filled += n + (-n) % _ALIGN
        scored += r.width
    if not spans:
        return []
    device = logits.device
    index = torch.from_numpy(np.asarray(positions + targets + tokens + slots, dtype=np.int64)).to(device)
    n_pos, n_tok = len(positions), len(tokens)
    pos_idx, tgt_idx = index[:n_pos], index[n_pos : n_pos + n_tok]
    tok_idx, slot_idx = index[n_pos + n_tok : n_pos + 2 * n_tok], index[n_pos + 2 * n_tok :]

    logprobs = F.log_softmax(logits.reshape(-1, vocab).index_select(0, pos_idx), dim=-1, dtype=softmax_dtype)
    picked = logprobs[tgt_idx, tok_idx]  # [tokens]
    hits = logprobs.argmax(dim=-1).index_select(0, tgt_idx) == tok_idx
    aligned = torch.zeros(filled, dtype=picked.dtype, device=device)
    aligned[slot_idx] = picked
    long_spans = [k for k, (_, n) in enumerate(spans) if n > 1]
    sums = (
        torch.stack([aligned[s : s + n].sum() for s, n in (spans[k] for k in long_spans)])
        if long_spans
        else aligned.new_zeros(0)
    )
    # One device->host copy for everything the requests need.
    flat = torch.cat([aligned.float(), sums.float(), hits.float()]).cpu().numpy()
    values, sum_values, hit_values = flat[:filled], flat[filled : filled + len(long_spans)], flat[filled + len(long_spans) :]
    out: list[tuple[float, bool]] = []
    token_at = summed = 0
    for start, n in spans:
        if n > 1:
            ll = sum_values[summed]
            summed += 1
        else:
            ll = values[start]
        # is_greedy: every token of the continuation is the argmax at its position
        out.append((float(ll), bool(hit_values[token_at : token_at + n].all())))
        token_at += n
    return out

