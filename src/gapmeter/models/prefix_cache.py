"""Shared-prefix scoring: a doc's common context runs once, its choices reuse the KV cache.

lm-evaluation-harness scores every (context, continuation) pair with a full forward over
``(context + continuation)[:-1]``: a 25-shot ARC question with four choices runs its ~1000-token
context four times. Here the inputs (token ids, exactly the sequences lm-eval feeds the model,
after its left truncation) are grouped by a shared leading span, and each group runs in two
steps:

1. **prefix**: the shared span, once per group, through the decoder only (no LM head), keeping
   the KV cache. Rows are right-padded and unmasked, as lm-eval's own forwards: causal
   attention means a real position never sees the padding after it, so its keys/values are the
   ones a full forward computes.
2. **suffixes**: the cache is copied to one row per member, and each member's remaining tokens
   run on top of it with explicit ``position_ids`` (its prefix length onwards) and a padding
   mask hiding the prefix padding of its group. Logits are computed only over the span of
   positions some row scores.

The shared span never includes a scored position (a position whose logits predict a
continuation token). For lm-eval's inputs that is the context minus its last token: the last
context token is the first scored input, so every member's suffix is exactly its scored window.
In float32 the results equal the plain path's to float rounding (~1e-6); the tests check 1e-4.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from gapmeter.models.batching import pad_right
from gapmeter.models.kv_cache_api import CACHE_KEYWORDS, cache_keyword, output_cache

#: A group is worth its two-step forward only if the shared span is this long.
MIN_SHARED_PREFIX = 4
#: A later input joins a group only if the shared span stays at least this fraction of the
#: group's current span: a doc's choices share ~all of their context and stay together, while
#: docs that share only a task description do not collapse the group to that description.
KEEP_FRACTION = 0.5


@dataclass(frozen=True)
class PrefixGroup:
    """Inputs (indices into the unique input list) whose first ``prefix_len`` tokens agree."""

    prefix_len: int
    members: tuple[int, ...]


def common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix (bisection on C-level slice comparisons)."""
    lo, hi = 0, min(len(a), len(b))
    if a[:hi] == b[:hi]:
        return hi
    while lo < hi:  # invariant: a[:lo] == b[:lo] and a[:hi] != b[:hi]
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def plan_groups(
    inputs: Sequence[tuple[int, ...]],
    widths: Sequence[int],
    *,
    min_prefix: int = MIN_SHARED_PREFIX,
    keep_fraction: float = KEEP_FRACTION,
) -> tuple[list[PrefixGroup], list[int]]:
    """Split unique inputs into shared-prefix groups (>= 2 members) and singletons.

    ``widths[k]`` is how many trailing positions of ``inputs[k]`` are scored; the shared span of
    a group never reaches a scored position of any member. Inputs are sorted, so inputs sharing a
    span are adjacent and the span of a run is the common prefix of its first and last input.
    """
    order = sorted(range(len(inputs)), key=lambda k: inputs[k])
    groups: list[PrefixGroup] = []
    singles: list[int] = []

    def flush(run: list[int], span: int) -> None:
        if len(run) >= 2:
            groups.append(PrefixGroup(span, tuple(run)))
        else:
            singles.extend(run)

    run: list[int] = []
    span = 0
    for k in order:
        unscored = len(inputs[k]) - widths[k]
        if run:
            shared = min(span, unscored, common_prefix_len(inputs[run[0]], inputs[k]))
            if shared >= min_prefix and shared >= keep_fraction * span:
                run.append(k)
                span = shared
                continue
            flush(run, span)
        run, span = [k], unscored
    if run:
        flush(run, span)
    return groups, singles


def group_shape(group: PrefixGroup, inputs: Sequence[tuple[int, ...]]) -> tuple[int, int, int]:
    """(rows, prefix length, longest suffix) of a group, for the token budget."""
    suffix = max(len(inputs[k]) - group.prefix_len for k in group.members)
    return len(group.members), group.prefix_len, suffix


def prefix_cache_unsupported(model: Any, max_length: int) -> str | None:
    """Why shared-prefix scoring cannot run on ``model`` (``None``: it can).

    It needs a decoder that runs alone with a cache, and a head that takes positions and a cache.
    """
    import inspect

    decoder = getattr(model, "base_model", model)
    if decoder is model:
        return f"{type(model).__name__} exposes no separate decoder (base_model)"
    cfg = getattr(model.config, "text_config", None) or model.config
    # Sliding-window layers keep only the last window of the cache, so a copied prefix cache
    # would not line up with the padding mask (harmless when no input is longer than the
    # window); recurrent/hybrid layers have no per-token cache.
    window = getattr(cfg, "sliding_window", None)
    if window and window < max_length:
        return f"sliding-window attention ({window} tokens < max_length {max_length})"
    other = sorted({t for t in (getattr(cfg, "layer_types", None) or []) if t != "full_attention"})
    if other:
        return f"layers other than full attention ({', '.join(other)})"
    if cache_keyword(model.forward) is None:
        return f"{type(model).__name__}.forward takes no KV cache (neither {' nor '.join(CACHE_KEYWORDS)})"
    params = inspect.signature(model.forward).parameters
    missing = [p for p in ("position_ids", "attention_mask") if p not in params]
    if missing:
        return f"{type(model).__name__}.forward takes no {' or '.join(missing)}"
    return None


def supports_prefix_cache(model: Any, max_length: int) -> bool:
    return prefix_cache_unsupported(model, max_length) is None


@torch.no_grad()
def forward_groups(
    model: Any,
    groups: Sequence[PrefixGroup],
    inputs: Sequence[tuple[int, ...]],
    widths: Sequence[int],
    *,
    pad_id: int,
    device: torch.device,
    logits_to_keep: bool,
) -> tuple[torch.Tensor, list[int], list[int]]:
    """Logits of every member of ``groups``: ``(logits [members, positions, vocab], input index
    of each row, where each row's scored window ends in its logits)``."""
    # 1. prefixes, right-padded, decoder only
    prefix = pad_right([inputs[g.members[0]][: g.prefix_len] for g in groups], pad_id)
    prefix_w = prefix.shape[1]
    cache = output_cache(model.base_model(input_ids=prefix.to(device), use_cache=True))

    # 2. one row per member on a copy of its group's cache
    owners = [row for row, g in enumerate(groups) for _ in g.members]
    keys = [k for g in groups for k in g.members]
    plens = np.asarray([groups[row].prefix_len for row in owners], dtype=np.int64)
    suffixes = [inputs[k][p:] for k, p in zip(keys, plens.tolist(), strict=True)]
    lens = np.asarray([len(s) for s in suffixes], dtype=np.int64)
    suffix_w = int(lens.max())
    ids = pad_right(suffixes, pad_id, suffix_w)
    cols = np.arange(prefix_w + suffix_w)
    # the group's real prefix, then the member's real suffix; the padding between is hidden
    mask = (cols < plens[:, None]) | ((cols >= prefix_w) & (cols < prefix_w + lens[:, None]))
    # padding positions repeat the last real one (never past the model's position table)
    positions = np.minimum(plens[:, None] + np.arange(suffix_w), (plens + lens - 1)[:, None])
    cache.batch_select_indices(torch.tensor(owners, device=device))

    first = min(len(s) - widths[k] for s, k in zip(suffixes, keys, strict=True))
    kwargs: dict[str, Any] = {}
    if logits_to_keep:
        kwargs["logits_to_keep"] = torch.arange(first, suffix_w, device=device)
    else:
        first = 0
    logits = model(
        input_ids=ids.to(device),
        attention_mask=torch.from_numpy(mask.astype(np.int64)).to(device),
        position_ids=torch.from_numpy(positions).to(device),
        use_cache=True,
        **{cache_keyword(model.forward) or "past_key_values": cache},
        **kwargs,
    ).logits
    return logits, keys, [len(s) - first for s in suffixes]
