"""Progress of the audit's work, one bar per (task, detector), with an ETA (rich, on stderr).

The work is counted in model calls: requests sent to the backend (after the cache) and texts
scored for token statistics. A detector learns its total as it plans (Oren's test adds a round
of orderings at a time), so the ETA is for the work known so far.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class Meter(Protocol):
    def begin(self, label: str) -> None: ...
    def add(self, total: int) -> None: ...
    def advance(self, done: int) -> None: ...


class NullMeter:
    def begin(self, label: str) -> None:
        pass

    def add(self, total: int) -> None:
        pass

    def advance(self, done: int) -> None:
        pass


class RichMeter:
    """A rich progress display: one bar per label, the current one counting."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=console, transient=False,
        )
        self.current: TaskID | None = None
        self.seconds: dict[str, float] = {}  # wall time per label (benchmarks print it)
        self._label = ""
        self._since = 0.0

    def __enter__(self) -> RichMeter:
        self.progress.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> None:
        self._finish()
        self.progress.stop()

    def _finish(self) -> None:
        if self._label:
            self.seconds[self._label] = self.seconds.get(self._label, 0.0) + time.perf_counter() - self._since
            self._label = ""
        if self.current is not None:
            task = self.progress.tasks[-1]
            self.progress.update(self.current, total=max(task.completed, 1), completed=max(task.completed, 1))

    def begin(self, label: str) -> None:
        self._finish()
        self.current = self.progress.add_task(label, total=0)
        self._label, self._since = label, time.perf_counter()

    def add(self, total: int) -> None:
        if self.current is not None and total:
            task = self.progress.tasks[-1]
            self.progress.update(self.current, total=(task.total or 0) + total)

    def advance(self, done: int) -> None:
        if self.current is not None and done:
            self.progress.advance(self.current, done)
