"""Which loglikelihood path the hf backend takes, why, and what that means for lm-eval parity.

Two paths compute the same quantity:

* ``exact`` — every input runs in full, as lm-evaluation-harness runs it (right-padded, no mask,
  log-softmax in float32). Measured on an H200 in bf16 it reproduces lm-eval 0.4.13 bit for bit
  (docs/performance.md).
* ``kv_reuse`` — a doc's shared context runs once and its choices reuse its KV cache
  (``models/prefix_cache.py``). Attention over a cached prefix is a differently shaped
  computation, so the logits differ in the last bits: ~1e-6 in float32 (within the 1e-4 parity
  bar), up to 0.27 on a loglikelihood in bf16 — enough to flip a few argmaxes.

Default (``prefix_cache=auto``): ``kv_reuse`` for float32 weights, ``exact`` for bf16/fp16.
``prefix_cache=true`` forces KV reuse (recorded as not lm-eval-exact below float32),
``prefix_cache=false`` forces the exact path. Whatever is chosen is recorded in the model's
``describe()`` (so in ``results.json`` and in the fingerprint), and anything asked for but not
applied is said on stderr.
"""

from __future__ import annotations

from typing import Any

import torch

from gapmeter.notices import notice

EXACT = "exact"
KV_REUSE = "kv_reuse"


def _name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def choose_scoring_path(
    *,
    requested: bool | None,
    dtype: torch.dtype,
    unsupported: str | None,
    logits_to_keep: bool,
    architecture: str,
) -> dict[str, Any]:
    """The record of the chosen path: ``loglikelihood`` (path), ``reason``, ``lm_eval_exact``,
    ``lm_eval_parity`` (in words) and ``logits_to_keep`` (LM head over scored positions only)."""
    full_precision = dtype == torch.float32
    if requested is False:
        path, reason = EXACT, "prefix_cache=false"
    elif unsupported is not None:
        path, reason = EXACT, f"KV reuse not possible: {unsupported}"
        asked = "prefix_cache=true is not applied" if requested else "the fast scoring path (KV reuse) is off"
        notice(f"{asked} for {architecture}: {unsupported}; every input runs in full (same numbers, slower)")
    elif requested is True:
        path, reason = KV_REUSE, "prefix_cache=true"
        if not full_precision:
            notice(
                f"prefix_cache=true with {_name(dtype)} weights: KV reuse is faster but its loglikelihoods "
                "differ from lm-eval's in the last bits (results.json records lm_eval_exact: false)"
            )
    elif full_precision:
        path, reason = KV_REUSE, "default for float32 weights (lm-eval's numbers within float32 rounding)"
    else:
        path = EXACT
        reason = f"default for {_name(dtype)} weights: KV reuse would change their rounding; prefix_cache=true opts in"
    if path == EXACT:
        exact, parity = True, "exact: lm-eval's computation (bit for bit where its kernels are batch-invariant)"
    elif full_precision:
        exact, parity = False, "float32 rounding (<= 1e-4 per loglikelihood)"
    else:
        exact, parity = False, f"not exact: {_name(dtype)} KV reuse drifts (up to 0.27 per loglikelihood measured)"
    if not logits_to_keep:
        notice(
            f"{architecture}.forward takes no logits_to_keep: the LM head runs over every position "
            "(same numbers, slower)"
        )
    return {
        "loglikelihood": path,
        "reason": reason,
        "lm_eval_exact": exact,
        "lm_eval_parity": parity,
        "logits_to_keep": logits_to_keep,
    }
