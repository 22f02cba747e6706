"""File modes for files written through a temp file.

``tempfile.mkstemp`` creates its file as 0600 whatever the umask, and the rename keeps that
mode: results, plots and reports written that way were unreadable to a group that can read
every other file the user makes. ``umask_file_mode`` is what ``open()`` would have given.
"""

from __future__ import annotations

import os
import threading

_lock = threading.Lock()


def current_umask() -> int:
    """The process umask, without changing it where Linux exposes it (/proc/self/status)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _lock:  # elsewhere reading the umask means setting it; keep other threads out meanwhile
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def umask_file_mode() -> int:
    """0666 minus the umask: the mode a plain ``open(path, "w")`` creates."""
    return 0o666 & ~current_umask()
