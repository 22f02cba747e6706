"""Fused kernels for the audit's forward passes, swapped in for the audit's duration only.

GPT-2's ``gelu_new`` activation is written in transformers as five elementwise tensor ops
(pow, mul, add, tanh, mul); on CPU that took ~28% of a 12M-parameter model's forward time in the
audit's profile (issue 18), more than all attention. ``torch.nn.functional.gelu(x,
approximate="tanh")`` is the same function as one fused kernel, ~6× faster on two cores, and
equal to float rounding (max abs difference ~2e-7 on activations of order 1). The swap changes
no weight and no formula: detector statistics agree with the unswapped model within 1e-5
(``tests/test_audit_kernels.py``). The backend's modules are put back when the audit ends, so
``gapmeter run`` scores (lm-eval parity) never see it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from gapmeter.notices import notice


@contextmanager
def fused_activations(backend: Any) -> Iterator[int]:
    """Within the block, the backend's local torch model (if any) runs ``gelu_new`` activations
    as transformers' fused ``GELUTanh``; yields how many modules were swapped."""
    model = getattr(backend, "model", None)
    try:
        import torch
        from transformers.activations import GELUTanh, NewGELUActivation
    except ImportError:
        if model is not None:  # a local model, but this transformers lacks the fused class
            notice("audit: transformers.activations has no GELUTanh/NewGELUActivation here; "
                   "gelu_new runs unfused (same numbers, slower)")
        yield 0
        return
    swapped: list[tuple[Any, str, Any]] = []
    if isinstance(model, torch.nn.Module):
        for parent in list(model.modules()):
            for name, child in list(parent.named_children()):
                if type(child) is NewGELUActivation:
                    swapped.append((parent, name, child))
                    setattr(parent, name, GELUTanh())
    try:
        yield len(swapped)
    finally:
        for parent, name, child in swapped:
            setattr(parent, name, child)
