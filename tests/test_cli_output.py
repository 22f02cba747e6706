"""Output read by people through a pipe or at 80 columns, and ``--json`` read by scripts.

Every command runs as a real subprocess with stdout a pipe and ``COLUMNS=80`` (what rich and
click assume for a pipe anyway): no value may be cut to ``…`` or split inside a word; ``--json``
puts one JSON document on stdout and nothing else. Runs are real evaluations of tiny models in a
real SQLite store.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
import typer

from gapmeter.cli import app


def gapmeter(*args: str, columns: int = 80, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": str(columns)}
    return subprocess.run([sys.executable, "-m", "gapmeter.cli", *args], capture_output=True, text=True,
                          timeout=300, env=env, cwd=cwd)


def flat(text: str) -> str:
    """Whitespace collapsed and line breaks after a hyphen joined: wrapping at word boundaries
    (or after a hyphen) is fine, cutting a word or value is not."""
    return re.sub(r"\s+", " ", re.sub(r"-\n\s*", "-", text))


def assert_uncut(out: str) -> None:
    assert "…" not in out, out
    assert "Traceback" not in out


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
    out: list[tuple[tuple[str, ...], click.Command]] = [(prefix, group)]
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        assert cmd is not None
        if isinstance(cmd, click.Group):
            out.extend(_commands(cmd, (*prefix, name)))
        else:
            out.append(((*prefix, name), cmd))
    return out


HELP_COMMANDS = _commands(typer.main.get_command(app))  # type: ignore[arg-type]


@pytest.mark.parametrize("path,cmd", HELP_COMMANDS, ids=[" ".join(p) or "gapmeter" for p, _ in HELP_COMMANDS])
def test_help_at_80_columns_cuts_nothing(path: tuple[str, ...], cmd: click.Command) -> None:
    proc = gapmeter(*path, "--help")
    assert proc.returncode == 0, proc.stderr
    assert_uncut(proc.stdout)
    text = flat(proc.stdout)
    for param in cmd.params:
        for opt in [*param.opts, *param.secondary_opts]:
            if opt.startswith("-"):
                assert re.search(rf"(^|[\s,]){re.escape(opt)}([\s,]|$)", text), (opt, proc.stdout)
        helptext = getattr(param, "help", None)
        if helptext:
            assert flat(helptext) in text, (helptext, proc.stdout)
    if isinstance(cmd, click.Group):
        for name in cmd.list_commands(click.Context(cmd)):
            sub = cmd.get_command(click.Context(cmd), name)
            assert sub is not None
            assert flat(sub.get_short_help_str(limit=10_000)) in text, (name, proc.stdout)


def test_help_in_a_terminal_cuts_nothing() -> None:
    """In a real terminal (a pty of 80 columns) too: rich's help table cut long option names."""
    import fcntl
    import pty
    import struct
    import termios

    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 80, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    proc = subprocess.Popen([sys.executable, "-m", "gapmeter.cli", "run", "--help"], stdout=child, stderr=child,
                            env=env)
    os.close(child)
    chunks = []
    while True:
        try:
            data = os.read(main, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=60)
    os.close(main)
    out = b"".join(chunks).decode()
    assert proc.returncode == 0, out
    assert_uncut(out)
    assert "--include_path, --include-path" in out


def test_tasks_piped_at_80_columns_lists_every_value_intact() -> None:
    listing = json.loads(gapmeter("tasks", "--json").stdout)
    names = {r["name"] for r in listing}
    assert {"arc_easy", "mmlu", "gsm8k", "arith_mc", "openllm_v1"} <= names
    proc = gapmeter("tasks")
    assert proc.returncode == 0, proc.stderr
    assert_uncut(proc.stdout)
    lines = proc.stdout.splitlines()
    for rec in listing:
        assert any(line.strip() in (rec["name"], f"name: {rec['name']}") for line in lines), rec["name"]
        if rec["description"]:
            assert rec["description"] in proc.stdout, rec["description"]  # one piece, not wrapped


def test_wide_table_fits_a_wide_terminal_as_a_table() -> None:
    proc = gapmeter("tasks", columns=400)
    assert "┃ name" in proc.stdout and "…" not in proc.stdout


@pytest.fixture(scope="module")
def store(tiny_model_factory: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two runs on arith_mc (two models, long paths) and one on arith_gen only, in one store."""
    root = tmp_path_factory.mktemp("a_directory_with_a_long_name_so_that_model_args_overflow_80_columns")
    db = root / "store.sqlite"
    models = [tiny_model_factory("gpt2"), tiny_model_factory("gpt2", seed=1)]
    runs: list[dict[str, Any]] = []
    for i, (model, task) in enumerate([(models[0], "arith_mc"), (models[1], "arith_mc"), (models[0], "arith_gen")]):
        out = root / f"run{i}"
        proc = gapmeter("run", "--model", "hf", "--model_args", f"pretrained={model},dtype=float32", "--tasks", task,
                        "--limit", "12", "--device", "cpu", "--output_path", str(out), "--db", str(db),
                        "--gpu_hour_cost", "2.5", "--verbosity", "ERROR", "--bootstrap_iters", "0")
        assert proc.returncode == 0, proc.stderr
        assert_uncut(proc.stdout)  # the run summary and the efficiency table
        doc = json.loads((out / "results.json").read_text())
        runs.append({"id": doc["gapmeter"]["run_id"], "model": str(model), "out": out, "stdout": proc.stdout,
                     "results": doc})
    return {"root": root, "db": str(db), "runs": runs}


def test_run_summary_and_efficiency_table_keep_every_value(store: dict[str, Any]) -> None:
    run = store["runs"][0]
    out = run["stdout"]
    acc = run["results"]["results"]["arith_mc"]["acc,none"]
    assert f"{acc:.4f}" in out
    assert f"pretrained={run['model']},dtype=float32" in out  # the long model path, whole
    assert "latency p50/p90/p99" in out and "$/1k items" in out  # efficiency headers, whole
    assert str(run["out"] / "results.json") in out


def test_runs_piped_and_as_json(store: dict[str, Any]) -> None:
    proc = gapmeter("runs", "--db", store["db"])
    assert proc.returncode == 0, proc.stderr
    assert_uncut(proc.stdout)
    for run in store["runs"]:
        assert run["id"] in proc.stdout
        assert run["model"] in proc.stdout
    doc = json.loads(gapmeter("runs", "--db", store["db"], "--json").stdout)
    assert [r["id"] for r in doc["runs"]] == [r["id"] for r in store["runs"]]
    first = doc["runs"][0]
    acc = store["runs"][0]["results"]["results"]["arith_mc"]["acc,none"]
    assert any(m["task"] == "arith_mc" and m["metric"] == "acc" and m["value"] == pytest.approx(acc)
               for m in first["metrics"])


def test_compare_piped_and_as_json(store: dict[str, Any]) -> None:
    a, b = store["runs"][0]["id"], store["runs"][1]["id"]
    proc = gapmeter("compare", a, b, "--db", store["db"], "--bootstrap_iters", "200")
    assert proc.returncode == 0, proc.stderr
    assert_uncut(proc.stdout)
    doc = json.loads(gapmeter("compare", a, b, "--db", store["db"], "--bootstrap_iters", "200", "--json").stdout)
    (report,) = doc["comparisons"]
    assert report["run_a"]["id"] == a and report["run_b"]["id"] == b
    row = report["rows"][0]
    assert row["unit"]["name"] == "arith_mc"
    r = row["result"]
    assert f"{r['diff']:+.4f} [{r['ci_low']:+.4f}, {r['ci_high']:+.4f}]" in proc.stdout
    assert f"{r['score_a']:.4f}" in proc.stdout and row["verdict"] in json.dumps(doc)


def test_profile_piped_and_as_json(store: dict[str, Any], tmp_path: Path) -> None:
    a, b = store["runs"][0]["id"], store["runs"][1]["id"]
    proc = gapmeter("profile", a, b, "--db", store["db"], "--output_path", str(tmp_path / "p"))
    assert proc.returncode == 0, proc.stderr
    assert_uncut(proc.stdout)
    assert str(tmp_path / "p" / "profile.html") in proc.stdout
    js = gapmeter("profile", a, b, "--db", store["db"], "--output_path", str(tmp_path / "q"), "--json")
    doc = json.loads(js.stdout)
    assert [p["run_id"] for p in doc["profiles"]] == [a, b]
    for p in doc["profiles"]:
        for dim in p["dimensions"].values():
            assert f"{dim['value']:.3f}" in proc.stdout
    assert doc["files"]["json"] == str(tmp_path / "q" / "profile.json")


def test_pareto_skips_runs_without_the_task_with_a_note(store: dict[str, Any], tmp_path: Path) -> None:
    proc = gapmeter("pareto", "--db", store["db"], "--task", "arith_mc", "--out", str(tmp_path / "p"))
    assert proc.returncode == 0, proc.stderr
    assert_uncut(proc.stdout)
    skipped = store["runs"][2]["id"]
    assert skipped not in proc.stdout
    assert f"skipped run {skipped}" in proc.stderr and "arith_mc" in proc.stderr
    for run in store["runs"][:2]:
        assert run["id"] in proc.stdout
    js = gapmeter("pareto", "--db", store["db"], "--task", "arith_mc", "--out", str(tmp_path / "q"), "--json")
    doc = json.loads(js.stdout)
    assert sorted(p["run_id"] for p in doc["runs"]) == sorted(r["id"] for r in store["runs"][:2])
    assert doc["files"]["html"] == str(tmp_path / "q" / "pareto.html")
    assert f"skipped run {skipped}" in js.stderr


def test_audit_json_is_the_only_thing_on_stdout(store: dict[str, Any], tmp_path: Path) -> None:
    model = store["runs"][0]["model"]
    proc = gapmeter("audit", "--model_args", f"pretrained={model}", "--tasks", "arith_mc", "--limit", "8",
                    "--detectors", "min_k", "--device", "cpu", "--output_path", str(tmp_path / "a"), "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["tasks"][0]["task"] == "arith_mc"
    assert doc == json.loads((tmp_path / "a" / "audit.json").read_text())
    table = gapmeter("audit", "--model_args", f"pretrained={model}", "--tasks", "arith_mc", "--limit", "8",
                     "--detectors", "min_k", "--device", "cpu", "--output_path", str(tmp_path / "b"))
    assert table.returncode == 0, table.stderr
    assert_uncut(table.stdout)
    assert "min_k" in table.stdout and doc["tasks"][0]["verdict"] in table.stdout


def test_json_output_hides_store_passwords_and_non_finite_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    from gapmeter.render import emit_json

    emit_json({"store": "postgresql+psycopg://alice:s3cret@db.example:5432/runs",
               "runs": [{"db_url": "postgresql://bob:pw@h/db", "value": float("nan")}]})
    doc = json.loads(capsys.readouterr().out)
    assert doc["store"] == "postgresql+psycopg://***@db.example:5432/runs"
    assert doc["runs"][0] == {"db_url": "postgresql://***@h/db", "value": None}
