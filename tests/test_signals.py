"""``kill -TERM`` of ``gapmeter board`` / ``gapmeter serve`` ends the process and every process it
started within 10 s (the board's submission worker and multiprocessing's resource tracker used to
be left running under PID 1).

Real subprocesses on 127.0.0.1; descendants are read from /proc before the signal is sent (once
the parent is gone they would be reparented and no longer findable from it).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")


def _children(pid: int) -> set[int]:
    out: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out.update(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    return out


def descendants(pid: int) -> set[int]:
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in _children(todo.pop()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended; only its reaping is left


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_answers(proc: subprocess.Popen[str], url: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"exited early ({proc.returncode}): {proc.stderr.read() if proc.stderr else ''}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - 127.0.0.1 only
                if resp.status < 500:
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {timeout}s")


def assert_sigterm_ends_all(proc: subprocess.Popen[str], expect_children: bool) -> None:
    family = descendants(proc.pid)
    if expect_children:
        assert family, "expected worker processes to test against"
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("the process did not end within 10 s of SIGTERM") from None
    while any(alive(p) for p in family) and time.monotonic() - t0 < 10:
        time.sleep(0.1)
    left = sorted(p for p in family if alive(p))
    for p in left:  # do not leak them into the rest of the session
        os.kill(p, signal.SIGKILL)
    assert not left, f"still running 10 s after SIGTERM: {left}"
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr.read() if proc.stderr else ""


def _start(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "gapmeter.cli", *args], cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.parametrize(
    ("args", "path", "children"),
    [
        (["board", "--db", "sqlite:///{tmp}/board.sqlite", "--port", "{port}", "--submission-processes", "1",
          "--log-level", "WARNING"], "/", True),  # the board and its workers
        (["serve", "--model", "echo", "--port", "{port}"], "/v1/models", False),
    ],
    ids=["board", "serve"],
)
def test_sigterm_stops_the_server_and_its_workers(tmp_path: Path, args: list[str], path: str, children: bool) -> None:
    port = free_port()
    proc = _start([a.format(tmp=tmp_path, port=port) for a in args], tmp_path)
    try:
        wait_until_answers(proc, f"http://127.0.0.1:{port}{path}")
        assert_sigterm_ends_all(proc, expect_children=children)
    finally:
        if proc.poll() is None:
            proc.kill()
