"""The name transformers gives the KV cache, in a model's ``forward`` and in its outputs.

transformers 5.25 renamed ``past_key_values`` to ``cache`` (the old keyword is accepted with a
deprecation warning until 5.40; the output field is renamed outright). Every caller that passes or
reads a cache goes through these two functions, so the next rename is one edit, and a model
whose ``forward`` takes neither name is reported by :func:`cache_keyword` returning ``None``
instead of the fast path silently turning itself off.
"""

from __future__ import annotations

import inspect
from typing import Any

#: Newest first: the name a current transformers uses wins.
CACHE_KEYWORDS = ("cache", "past_key_values")


def cache_keyword(forward: Any) -> str | None:
    """The keyword ``forward`` takes its KV cache under, or ``None`` if it takes none."""
    params = inspect.signature(forward).parameters
    return next((name for name in CACHE_KEYWORDS if name in params), None)


def output_cache(outputs: Any) -> Any:
    """The KV cache a forward returned (``outputs.cache`` or ``outputs.past_key_values``)."""
    for name in CACHE_KEYWORDS:
        value = getattr(outputs, name, None)
        if value is not None:
            return value
    raise AttributeError(f"{type(outputs).__name__} carries no KV cache (looked for {', '.join(CACHE_KEYWORDS)})")
