"""Options asked for but not applied, and optimisations that are off, are said — never dropped.

A backend that cannot apply something (a fast path its model does not support, an option its
server ignores) calls :func:`notice`: the line goes to stderr once per process, however many
tasks or runs ask again, and the backend records the same fact in what it ``describe()``s, so
``results.json`` says it too (``config.scoring_path``).
"""

from __future__ import annotations

import sys

_said: set[str] = set()


def notice(message: str) -> None:
    """Print ``note: message`` on stderr, once per process."""
    if message in _said:
        return
    _said.add(message)
    print(f"note: {message}", file=sys.stderr, flush=True)
