"""``gapmeter sweep``: a grid of models × tasks into one store, resumable, ending with the
standings; a bad sweep file is one line naming the file and the field."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures" / "user_tasks"


def write_sweep(path: Path, models: dict[str, Path], *, executor: str = "local", ray_address: str | None = None) -> Path:
    lines = ["output_path: out", "models:"]
    lines += [f"  - {{name: {name}, model: hf, model_args: 'pretrained={d},dtype=float32'}}" for name, d in models.items()]
    lines += ["tasks: [sums_mc]", f"include_path: ['{FIXTURES}']", "options: {limit: [10], num_fewshot: [0, 2]}",
              "device: cpu", "bootstrap_iters: 100", f"executor: {executor}"]
    if ray_address:
        lines.append(f"ray: {{address: '{ray_address}', num_cpus_per_job: 1}}")
    path.write_text("\n".join(lines) + "\n")
    return path


def sweep(path: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gapmeter.cli", "sweep", str(path), "--verbosity", "ERROR", *extra],
                          capture_output=True, text=True, env=env or {**os.environ}, timeout=600)


def jobs_of(stdout: str) -> dict[str, tuple[str, int, int]]:
    """``done LABEL: run ID, N requests computed, M from cache`` lines."""
    found = re.findall(r"done (\S+): run (\w+), (\d+) requests computed, (\d+) from cache", stdout)
    return {label: (run_id, int(c), int(k)) for label, run_id, c, k in found}


def test_sweep_runs_the_grid_resumes_and_ranks(gpt2_model_dir: Path, tiny_model_factory, tmp_path: Path) -> None:
    other = tiny_model_factory("gpt2", seed=1)
    path = write_sweep(tmp_path / "sweep.yaml", {"a": gpt2_model_dir, "b": other})
    first = sweep(path)
    assert first.returncode == 0, first.stderr
    jobs = jobs_of(first.stdout)
    assert len(jobs) == 4  # 2 models × 1 task × 2 shot counts
    assert all(computed == 40 and cached == 0 for _, computed, cached in jobs.values())
    assert len({run_id for run_id, _, _ in jobs.values()}) == 4
    assert "standings" in first.stdout and first.stdout.count("task: sums_mc") == 2  # one per option set
    assert (tmp_path / "out" / "gapmeter.sqlite").exists()

    again = sweep(path)  # everything is stored: nothing recomputed, the same runs
    assert again.returncode == 0, again.stderr
    rerun = jobs_of(again.stdout)
    assert {k: v[0] for k, v in rerun.items()} == {k: v[0] for k, v in jobs.items()}
    assert all(computed == 0 and cached == 40 for _, computed, cached in rerun.values())


@pytest.mark.parametrize(("text", "field"), [
    ("output_path: o\nmodels: []\ntasks: [x]\n", "models"),
    ("output_path: o\nmodels: [{name: a, modle: hf}]\ntasks: [x]\n", "models.0.modle"),
    ("output_path: o\nmodels: [{name: a}]\ntasks: [x]\noptions: {limit: [ten]}\n", "options.limit.0"),
    ("output_path: o\nmodels: [{name: a}]\ntasks: [x]\nexecutor: slurm\n", "executor"),
])
def test_bad_sweep_file_is_one_line(tmp_path: Path, text: str, field: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    proc = sweep(path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert str(path) in lines[0] and f": {field}:" in lines[0]
    assert not (tmp_path / "o").exists()
