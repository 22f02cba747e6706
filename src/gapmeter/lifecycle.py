"""SIGTERM ends a command as cleanly as Ctrl-C: cleanup runs and no child process is left behind.

Python's default SIGTERM action kills the interpreter on the spot: no ``finally``, no ``atexit``.
uvicorn (``gapmeter board``, ``gapmeter serve``) catches SIGTERM for a graceful shutdown and then
re-raises it with the previous handler, so a board killed with ``kill -TERM`` used to die before
its submission worker pool was shut down, leaving the spawn worker and multiprocessing's resource
tracker running under PID 1. Here SIGTERM becomes ``SystemExit(143)``: the stack unwinds, and on
the way out every child process still alive gets SIGTERM (then SIGKILL after a grace period), so
nothing outlives the command even if a worker is busy with a long job.
"""

from __future__ import annotations

import multiprocessing
import signal
import time
from types import FrameType

TERM_EXIT_CODE = 128 + signal.SIGTERM
GRACE_SECONDS = 3.0


def _raise_exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def exit_on_sigterm() -> None:
    """Turn SIGTERM into ``SystemExit(143)`` (main thread only, as Python requires)."""
    signal.signal(signal.SIGTERM, _raise_exit)


def stop_children(grace: float = GRACE_SECONDS) -> None:
    """Terminate this process's multiprocessing children (worker pools); kill the stubborn ones.

    Workers are stopped before the interpreter's exit handlers run: ``concurrent.futures`` joins
    its pools at exit and would otherwise wait for a running job to finish. The resource tracker
    exits by itself once no process holds its pipe."""
    children = multiprocessing.active_children()
    for child in children:
        child.terminate()
    deadline = time.monotonic() + grace
    for child in children:
        child.join(timeout=max(0.0, deadline - time.monotonic()))
        if child.is_alive():
            child.kill()
            child.join(timeout=1.0)
