"""Bad input gets one clear error line and a non-zero exit: no traceback, no half-written results."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures" / "user_tasks"


def gapmeter(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gapmeter.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode != 0
    err = proc.stderr.strip()
    assert "Traceback" not in err and "Traceback" not in proc.stdout
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], lines[0]


def run_args(model: Path, tasks: str, out: Path, *extra: str) -> list[str]:
    return ["run", "--model", "hf", "--model_args", f"pretrained={model}", "--tasks", tasks,
            "--output_path", str(out), "--verbosity", "ERROR", *extra]


def test_unknown_task(gpt2_model_dir: Path, tmp_path: Path) -> None:
    proc = gapmeter(*run_args(gpt2_model_dir, "arc_eassy", tmp_path / "o"))
    assert_one_line_error(proc, "unknown task or group 'arc_eassy'")
    assert not (tmp_path / "o" / "results.json").exists()


def test_unknown_model_backend(tmp_path: Path) -> None:
    proc = gapmeter("run", "--model", "nosuch", "--tasks", "arith_mc", "--output_path", str(tmp_path))
    assert_one_line_error(proc, "unknown model backend 'nosuch'")


def test_model_path_that_is_not_a_model(tmp_path: Path) -> None:
    (tmp_path / "notamodel").mkdir()
    (tmp_path / "notamodel" / "README").write_text("hi")
    proc = gapmeter(*run_args(tmp_path / "notamodel", "arith_mc", tmp_path / "o"))
    assert_one_line_error(proc, "notamodel", "not a HuggingFace model")


def test_missing_model_path(tmp_path: Path) -> None:
    proc = gapmeter(*run_args(tmp_path / "nothing-here", "arith_mc", tmp_path / "o"))
    assert_one_line_error(proc, "nothing-here")


def test_malformed_yaml_names_file_and_line(gpt2_model_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: x\nsource: {generator: {function: a.py:b, splits: {test: {n: 1}}}\ndoc_to_text: [unclosed\n")
    proc = gapmeter(*run_args(gpt2_model_dir, str(bad), tmp_path / "o"))
    assert_one_line_error(proc, str(bad), "malformed YAML")


def test_wrong_field_names_file_and_field(gpt2_model_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "typo.yaml"
    text = (FIXTURES / "sums.yaml").read_text().split("---")[0].replace("doc_to_choice:", "doc_to_choise:")
    bad.write_text(text.replace("sums.py:make", f"{FIXTURES / 'sums.py'}:make"))
    proc = gapmeter(*run_args(gpt2_model_dir, str(bad), tmp_path / "o"))
    assert_one_line_error(proc, str(bad), "doc_to_choise", "unknown field")


def test_missing_data_file_says_where_to_point(gpt2_model_dir: Path, tmp_path: Path) -> None:
    proc = gapmeter(*run_args(gpt2_model_dir, "arc_easy", tmp_path / "o", "--data_dir", str(tmp_path / "empty")))
    assert_one_line_error(proc, "arc_easy", "ARC-Easy-Test.jsonl", "--data_dir")
    assert not (tmp_path / "o" / "results.json").exists()


def test_malformed_data_row_names_file_and_line(gpt2_model_dir: Path, tmp_path: Path, data_dir: Path) -> None:
    root = tmp_path / "data" / "arc" / "ARC-Easy"
    root.mkdir(parents=True)
    lines = (data_dir / "arc/ARC-Easy/ARC-Easy-Test.jsonl").read_text().splitlines()[:5]
    lines[2] = lines[2][:40]  # truncated JSON on line 3
    (root / "ARC-Easy-Test.jsonl").write_text("\n".join(lines) + "\n")
    proc = gapmeter(*run_args(gpt2_model_dir, "arc_easy", tmp_path / "o", "--data_dir", str(tmp_path / "data")))
    assert_one_line_error(proc, "ARC-Easy-Test.jsonl:3")


def test_answer_index_out_of_range_is_reported(gpt2_model_dir: Path, tmp_path: Path, data_dir: Path) -> None:
    root = tmp_path / "data" / "arc" / "ARC-Easy"
    root.mkdir(parents=True)
    lines = (data_dir / "arc/ARC-Easy/ARC-Easy-Test.jsonl").read_text().splitlines()[:5]
    lines[1] = lines[1].replace('"answerKey":"B"', '"answerKey":"Z"').replace('"answerKey":"A"', '"answerKey":"Z"') \
        .replace('"answerKey":"C"', '"answerKey":"Z"').replace('"answerKey":"D"', '"answerKey":"Z"')
    (root / "ARC-Easy-Test.jsonl").write_text("\n".join(lines) + "\n")
    proc = gapmeter(*run_args(gpt2_model_dir, "arc_easy", tmp_path / "o", "--data_dir", str(tmp_path / "data")))
    assert_one_line_error(proc, "ARC-Easy-Test.jsonl:2", "answerKey")


@pytest.mark.parametrize("bad", ["pretrained", "dtype=float33", "nokey"])
def test_bad_model_args(gpt2_model_dir: Path, tmp_path: Path, bad: str) -> None:
    args = f"pretrained={gpt2_model_dir},{bad}" if bad != "pretrained" else "dtype=float32"
    proc = gapmeter("run", "--model", "hf", "--model_args", args, "--tasks", "arith_mc", "--output_path", str(tmp_path))
    assert_one_line_error(proc, "--model_args")


def _timed(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> tuple[subprocess.CompletedProcess[str], float]:
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "gapmeter.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=120, env=env)
    return proc, time.monotonic() - t0


@pytest.mark.parametrize("value", ["/no/such/model/dir", "./no-such-model", "../no-such-model",
                                   "~/no-such-gapmeter-model", "models/no-such-model", "a/b/c"])
def test_model_path_that_does_not_exist_says_so(tmp_path: Path, value: str) -> None:
    (tmp_path / "models").mkdir()  # "models/x" exists partially: a path, not a hub repo id
    for command in (["run", "--tasks", "arith_mc"], ["audit", "--tasks", "arith_mc"], ["serve"]):
        proc, seconds = _timed(*command, "--model", "hf", "--model_args", f"pretrained={value}", cwd=tmp_path)
        assert proc.returncode == 2
        assert_one_line_error(proc, f"pretrained={value}", "does not exist")
        assert "Repo id" not in proc.stderr
        assert seconds < 10, seconds  # checked before torch is imported (slack for a busy machine)


def _hub_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    return {**env, "HF_HUB_CACHE": str(tmp_path / "hf-cache"), "HF_HOME": str(tmp_path / "hf-home"), **extra}


def test_offline_hub_lookup_fails_fast_in_one_line(tmp_path: Path) -> None:
    env = _hub_env(tmp_path, HF_HUB_OFFLINE="1")
    proc, seconds = _timed("run", "--model_args", "pretrained=gapmeter-test/no-such-model", "--tasks", "arith_mc",
                           "--output_path", str(tmp_path / "o"), env=env)
    assert proc.returncode == 2
    assert_one_line_error(proc, "gapmeter-test/no-such-model", "HF_HUB_OFFLINE=1")
    assert seconds < 5, seconds


def test_unreachable_hub_fails_fast_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port with nothing listening: connection refused, no traffic leaves
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = _hub_env(tmp_path, HF_ENDPOINT=f"http://127.0.0.1:{port}")
    for command in (["run", "--tasks", "arith_mc", "--output_path", str(tmp_path / "o")], ["serve"]):
        proc, seconds = _timed(*command, "--model_args", "pretrained=gapmeter-test/no-such-model", env=env)
        assert proc.returncode == 2
        assert_one_line_error(proc, "gapmeter-test/no-such-model", "cannot be reached", f"127.0.0.1:{port}")
        assert seconds < 5, seconds
    assert not (tmp_path / "o").exists()


BROKEN_TEMPLATE = """task: broken_sums
source:
  generator:
    function: {sums}:make
    splits: {{test: {{n: 10, seed: 1}}}}
test_split: test
doc_to_text: |
  Question:
  {{{{ question }}=?
  Answer:
doc_to_choice: choices
doc_to_target: answer
metric_list: [{{metric: acc}}]
"""


def test_jinja_syntax_error_names_file_and_line(gpt2_model_dir: Path, tmp_path: Path) -> None:
    tasks_dir = tmp_path / "my_tasks"
    tasks_dir.mkdir()
    bad = tasks_dir / "broken.yaml"
    bad.write_text(BROKEN_TEMPLATE.format(sums=FIXTURES / "sums.py"))
    listing = gapmeter("tasks", "--include_path", str(tasks_dir))
    assert listing.returncode == 2
    assert_one_line_error(listing, f"{bad}:9", "broken_sums", "doc_to_text", "Jinja syntax error")
    assert listing.stdout == ""
    proc = gapmeter(*run_args(gpt2_model_dir, "broken_sums", tmp_path / "o", "--include_path", str(tasks_dir)))
    assert proc.returncode == 2
    assert_one_line_error(proc, f"{bad}:9", "doc_to_text", "Jinja syntax error")
    assert not (tmp_path / "o").exists()
