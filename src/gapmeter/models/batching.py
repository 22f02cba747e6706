"""Batches by token budget, longest first, with out-of-memory recovery.

``batch_size=N`` caps rows per batch at N (lm-eval's meaning: N sequences per forward); for
shared-prefix batches it caps the work at N full-length sequences' worth (N prefixes, and the
choices' suffix rows with their cache copies weighed as below), the memory lm-eval's N rows
take. ``batch_size=auto`` fills each batch up to a token
budget (rows × padded length): on CUDA the budget is found once by probing (halving on OOM), on
CPU it is a fixed size that keeps the matmuls efficient. If a batch still runs out of memory the
budget is halved and the same batch is split, so a run never fails twice on the same OOM.
Batch composition never changes a score beyond float rounding; the results are keyed by request.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from gapmeter.errors import GapmeterError

CPU_TOKEN_BUDGET = 8192
CUDA_PROBE_START = 1 << 18
#: Shared-prefix batches: a suffix row holds a copy of its prefix's keys/values, far smaller per
#: token than a full forward's activations (and the LM head's logits), so it counts this
#: fraction of a token against the budget.
KV_TOKEN_WEIGHT = 0.25


def _is_oom(err: BaseException) -> bool:
    return isinstance(err, torch.cuda.OutOfMemoryError) or "out of memory" in str(err).lower()


class TokenBudget:
    def __init__(
        self,
        *,
        batch_size: int | str,
        max_batch_size: int,
        device: torch.device,
        probe: Callable[[int], None],
    ) -> None:
        if isinstance(batch_size, str) and batch_size != "auto":
            if not batch_size.isdigit() or int(batch_size) < 1:
                raise GapmeterError(f"--batch_size {batch_size!r}: use a positive integer or auto")
            batch_size = int(batch_size)
        self.fixed_rows: int | None = None if batch_size == "auto" else int(batch_size)
        self.max_rows = max_batch_size
        self.device = device
        self._probe = probe
        self.tokens: int | None = None if device.type == "cuda" else CPU_TOKEN_BUDGET

    def _ensure_tokens(self) -> int:
        if self.tokens is None:
            n = CUDA_PROBE_START
            while n >= 256:
                try:
                    self._probe(n)
                    break
                except RuntimeError as err:
                    if not _is_oom(err):
                        raise
                    torch.cuda.empty_cache()
                    n //= 2
            self.tokens = max(n // 2, 256)  # headroom for activations the probe did not keep
        return self.tokens

    def rows_for(self, length: int) -> int:
        if self.fixed_rows is not None:
            return self.fixed_rows
        return max(1, min(self.max_rows, self._ensure_tokens() // max(1, length)))

    def fits_shared(self, groups: int, rows: int, tokens: int, longest: int) -> bool:
        """Whether ``groups`` shared-prefix groups (``rows`` requests, ``tokens`` budget tokens,
        ``longest`` the longest full input) fit one batch."""
        if self.fixed_rows is not None:
            return groups <= self.fixed_rows and tokens <= self.fixed_rows * longest
        return rows <= self.max_rows and tokens <= self._ensure_tokens()

    def shrink(self) -> None:
        if self.fixed_rows is not None:
            self.fixed_rows = max(1, self.fixed_rows // 2)
        else:
            self.tokens = max(1, self._ensure_tokens() // 2)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def run(self, fn: Callable[[], Any]) -> Any:
        return fn()


def run_in_batches(
    order: Sequence[int],
    lengths: Sequence[int] | Mapping[int, int],  # row index -> length
    budget: TokenBudget,
    process: Callable[[list[int]], None],
) -> None:
    """Call ``process`` on consecutive slices of ``order`` (longest first), sized by ``budget``."""
    pos = 0
    while pos < len(order):
        rows = budget.rows_for(max(lengths[i] for i in order[pos : pos + 1]))
        batch = list(order[pos : pos + rows])
        try:
            process(batch)
        except RuntimeError as err:
            if not _is_oom(err):
                raise
            if len(batch) == 1:
                raise GapmeterError(
                    f"out of memory on a single sequence of {lengths[batch[0]]} tokens; "
                    "use a smaller model, dtype=bfloat16 or max_length"
                ) from None
            budget.shrink()
            continue
        pos += len(batch)


def run_in_group_batches(
    order: Sequence[int],
    shapes: Sequence[tuple[int, int, int]],
    budget: TokenBudget,
    process: Callable[[list[int]], None],
) -> None:
    """Like :func:`run_in_batches` for shared-prefix groups; ``shapes[i]`` is group ``i``'s
    (rows, prefix length, longest suffix). A batch grows while its two padded forwards (prefixes:
    groups × longest prefix; suffixes: rows × longest suffix plus their cache copies) fit the
    budget; with a fixed ``batch_size`` N at most N groups and N full-length sequences' worth of
    budget tokens, and always at least one group.
    """
    pos = 0
    while pos < len(order):
        rows, prefix_w, suffix_w = shapes[order[pos]]
        end = pos + 1
        while end < len(order):
            r, p, s = shapes[order[end]]
            n_rows, n_prefix, n_suffix = rows + r, max(prefix_w, p), max(suffix_w, s)
            tokens = max((end - pos + 1) * n_prefix, int(n_rows * (n_suffix + KV_TOKEN_WEIGHT * n_prefix)))
            if not budget.fits_shared(end - pos + 1, n_rows, tokens, n_prefix + n_suffix):
                break
            rows, prefix_w, suffix_w = n_rows, n_prefix, n_suffix
            end += 1
        batch = list(order[pos:end])
        try:
            process(batch)
        except RuntimeError as err:
            if not _is_oom(err):
                raise
            if len(batch) == 1:
                raise GapmeterError(
                    f"out of memory on one shared-prefix group ({rows} requests, "
                    f"{prefix_w}+{suffix_w} tokens); use a smaller model, dtype=bfloat16, "
                    "max_length or prefix_cache=false"
                ) from None
            budget.shrink()
            continue
        pos = end


def longest_first(lengths: Sequence[int], keys: Sequence[Any] | None = None) -> list[int]:
    """Indices sorted by descending length (ties by key) so a batch's first row sets its width."""
    return sorted(range(len(lengths)), key=lambda i: (-lengths[i], keys[i] if keys else i))


def pad_right(rows: Sequence[Sequence[int]], pad_id: int, width: int | None = None) -> torch.Tensor:
    """``[len(rows), width]`` token ids, right-padded with ``pad_id``, built in one host pass
    (one numpy fill, one tensor) instead of a tensor per row."""
    width = width if width is not None else max(len(r) for r in rows)
    out = np.full((len(rows), width), pad_id, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return torch.from_numpy(out)
