"""Small promises of the CLI: read commands create nothing, written files follow the umask, the
help and the README count the same detectors as the code, the demo's output is ignored by git."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from gapmeter.audit.runner import DETECTORS
from gapmeter.store.results_json import atomic_write, samples_path

REPO = Path(__file__).resolve().parents[1]
NUMBERS = {"three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10}


def gapmeter(*args: str, cwd: Path, umask: int | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "GAPMETER_DB"}
    return subprocess.run([sys.executable, "-m", "gapmeter.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=300, preexec_fn=None if umask is None else (lambda: os.umask(umask)))


@pytest.mark.parametrize("args", [("runs",), ("runs", "--json"), ("runs", "--output_path", "nowhere"),
                                  ("pareto",), ("pareto", "--task", "arith_mc")])
def test_read_commands_create_no_store(tmp_path: Path, args: tuple[str, ...]) -> None:
    proc = gapmeter(*args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "no store at" in lines[0], proc.stderr
    assert proc.stdout == ""
    assert list(tmp_path.iterdir()) == []  # no runs/, no gapmeter.sqlite, no pareto/


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
def test_atomic_write_follows_the_umask(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        atomic_write(tmp_path / "out" / "results.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out" / "results.json").stat().st_mode) == 0o666 & ~umask


def test_run_outputs_follow_the_umask(gpt2_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    proc = gapmeter("run", "--model_args", f"pretrained={gpt2_model_dir}", "--tasks", "arith_mc", "--limit", "4",
                    "--device", "cpu", "--output_path", str(out), "--log_samples", "--verbosity", "ERROR",
                    "--bootstrap_iters", "0", cwd=tmp_path, umask=0o022)
    assert proc.returncode == 0, proc.stderr
    samples = samples_path(out, "arith_mc")
    assert samples is not None
    for path in (out / "results.json", samples, next(samples.parent.glob("results_*.json"))):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


def _count(text: str, pattern: str) -> int:
    found = re.search(pattern, text, re.IGNORECASE)
    assert found, pattern
    return NUMBERS[found.group(1).lower()]


def test_help_and_readme_count_the_detectors_the_code_has(tmp_path: Path) -> None:
    proc = gapmeter("audit", "--help", cwd=tmp_path)
    assert _count(proc.stdout, r"(\w+) detectors per task") == len(DETECTORS)
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert _count(readme, r"(\w+) one-sided tests per task") == len(DETECTORS)


@pytest.mark.skipif(shutil.which("git") is None or not (REPO / ".git").exists(), reason="needs a git checkout")
@pytest.mark.parametrize("path", ["gapmeter-demo/results.json", "gapmeter-profile/profile.json",
                                  "gapmeter-selftest/selftest.json"])
def test_default_output_directories_are_ignored_by_git(path: str) -> None:
    proc = subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO)
    assert proc.returncode == 0, f"{path} is not in .gitignore"
