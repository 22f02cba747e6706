"""A real local Ray cluster for tests: a head node and one worker node, each a ``ray start
--block`` process on 127.0.0.1, stopped at the end by their process ids (never ``ray stop``,
which would stop every Ray process on the machine).

The head has two CPUs, the worker one: two replicas (one CPU each, spread) sit on different
nodes, and when the worker node is killed the head has room for the replacement. Ray 2.60
turns token authentication on by default; these nodes, on 127.0.0.1 only and gone after the
test, run without it (``AUTH_ENV``), and so must every process that joins them.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))
AUTH_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pids_under(marker: str) -> list[int]:
    """Processes whose command line names ``marker`` (this cluster's own temp dir)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            pids.append(int(entry.name))
    return pids


def _wait_nodes(address: str, count: int, timeout: float, env: dict[str, str]) -> None:
    probe = ("import ray,sys; ray.init(address=sys.argv[1], log_to_driver=False);"
             "print(sum(1 for n in ray.nodes() if n['Alive']))")
    deadline = time.time() + timeout
    while time.time() < deadline:
        out = subprocess.run([sys.executable, "-c", probe, address], capture_output=True, text=True, env=env)
        if out.returncode == 0 and out.stdout.strip().splitlines()[-1:] == [str(count)]:
            return
        time.sleep(1)
    raise RuntimeError(f"the Ray cluster at {address} did not reach {count} nodes in {timeout}s")


@dataclass
class Cluster:
    address: str  # 127.0.0.1:PORT
    worker: subprocess.Popen[bytes]  # the worker node's `ray start --block` (its own process group)

    def kill_worker_node(self) -> None:
        """The worker node dies at once: every process of it (its session, actor workers
        included, which Ray puts in process groups of their own) gets SIGKILL."""
        _kill_session(self.worker.pid, signal.SIGKILL)
        self.worker.wait()


def _kill_session(sid: int, sig: int) -> None:
    """``sig`` to every process of the session ``sid`` (a node started with a new session)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if os.getsid(int(entry.name)) == sid:
                os.kill(int(entry.name), sig)
        except (ProcessLookupError, PermissionError):
            continue


@contextmanager
def local_cluster(timeout: float = 120) -> Iterator[Cluster]:
    """``ray start --head`` (2 CPUs) + one worker node (1 CPU)."""
    temp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's socket paths have a length limit
    port = free_port()
    address = f"127.0.0.1:{port}"
    env = {**os.environ, **AUTH_ENV}
    common = ["--block", "--disable-usage-stats"]
    nodes: list[subprocess.Popen[bytes]] = []
    log = open(Path(temp) / "worker-node.log", "wb")  # noqa: SIM115 - closed in finally
    try:
        nodes.append(subprocess.Popen(
            [RAY, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1", f"--temp-dir={temp}",
             "--include-dashboard=false", "--num-cpus=2", *common],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        _wait_nodes(address, 1, timeout, env)
        nodes.append(subprocess.Popen(
            [RAY, "start", f"--address={address}", "--node-ip-address=127.0.0.1", "--num-cpus=1", *common],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        _wait_nodes(address, 2, timeout, env)
        yield Cluster(address, nodes[1])
    finally:
        for node in reversed(nodes):
            _stop_group(node)
        for pid in _pids_under(temp):  # anything of this cluster that left its process group
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


def _stop_group(node: subprocess.Popen[bytes]) -> None:
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(node.pid, sig)
        except ProcessLookupError:
            break
        try:
            node.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    _kill_session(node.pid, signal.SIGKILL)  # actor workers: their own process groups, the node's session
