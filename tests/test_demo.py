"""`gapmeter demo` (the README's main job) trains two models and shows a real gap."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from gapmeter.demo import arith, train
from gapmeter.demo.command import BENCHMARKS, benchmarks_found


def test_generators_are_seeded_and_well_formed() -> None:
    a = arith.make_arith_mc(50, 1)
    assert a == arith.make_arith_mc(50, 1)
    assert a != arith.make_arith_mc(50, 2)
    assert a != arith.make_arith_mc(50, 1, split="train")
    for doc in a:
        assert len(set(doc["choices"])) == 4
        x, y = doc["operands"]
        truth = x + y if doc["op"] == "+" else x - y
        assert doc["choices"][doc["answer"]] == str(truth)
    assert arith.prompt("3+4") == "Q: 3+4=?\nA:"
    text = arith.training_text(3, 0, digits=1)
    assert text.count("\n") == 6 and text.startswith("Q: ")


def test_fast_encode_is_the_tokenizers_encoding(tmp_path: Path) -> None:
    """Training encodes with a dict lookup instead of the tokenizer (1.2 s saved); the ids must be
    the ones the saved tokenizer gives at evaluation time, unknown characters included."""
    tok = train.build_char_tokenizer(tmp_path)
    text = arith.training_text(50, 0, digits=1) + "Question: what?\n"
    assert train.encode(text) == tok.encode(text)


def test_torch_threads_is_restored() -> None:
    import torch

    before = torch.get_num_threads()
    with train.torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_benchmarks_found_follow_the_files(tmp_path: Path, data_dir: Path) -> None:
    assert benchmarks_found(tmp_path) == []
    found = benchmarks_found(data_dir)
    assert set(found) <= set(BENCHMARKS)
    # the shared data dir has ARC and MMLU (README of the data dir); WinoGrande and BoolQ not
    assert {"arc_easy", "arc_challenge", "mmlu"} <= set(found)
    assert "winogrande" not in found and "boolq" not in found
    (tmp_path / "arc" / "ARC-Easy").mkdir(parents=True)
    (tmp_path / "arc" / "ARC-Easy" / "ARC-Easy-Test.jsonl").write_text("")
    assert benchmarks_found(tmp_path) == ["arc_easy"]


def test_demo_trains_two_models_and_finds_a_real_gap(tmp_path: Path, data_dir: Path) -> None:
    out = tmp_path / "demo"
    # The data dir explicitly: in-process CLI tests that pass --data_dir leave GAPMETER_DATA_DIR
    # pointing at their tmp dirs (cli.py sets it), and a subprocess inherits that.
    env = {**os.environ, "GAPMETER_DATA_DIR": str(data_dir)}
    proc = subprocess.run(
        [sys.executable, "-m", "gapmeter.cli", "demo", "--output_path", str(out)],
        capture_output=True, text=True, timeout=600, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "gap (large" in proc.stdout
    # the training progress bars (off a terminal rich prints their final state)
    assert "training the small model" in proc.stdout and "training the large model" in proc.stdout
    assert f"{train.SIZES['large'][3]}/{train.SIZES['large'][3]}" in proc.stdout
    scores = {}
    for size in ("small", "large"):
        res = json.loads((out / "results" / size / "results.json").read_text())["results"]
        scores[size] = res
    for task, key in (("arith_mc", "acc,none"), ("arith_gen", "exact_match,first-number")):
        small, large = scores["small"][task], scores["large"][task]
        diff = large[key] - small[key]
        se = (small[key.replace(",", "_stderr,")] ** 2 + large[key.replace(",", "_stderr,")] ** 2) ** 0.5
        assert diff > 0.25 and diff > 4 * se, (task, small[key], large[key])
    # every benchmark found in the data dir is evaluated (at a small limit), by both models
    found = benchmarks_found(data_dir)
    for size in ("small", "large") if found else ():
        bench = json.loads((out / "results" / f"{size}-benchmarks" / "results.json").read_text())
        names = set(bench["results"]) | set(bench.get("groups", {}))
        assert set(found) <= names, sorted(set(found) - names)
    for name in found:
        assert name in proc.stdout
    runs = subprocess.run(
        [sys.executable, "-m", "gapmeter.cli", "runs", "--db", str(out / "gapmeter.sqlite")],
        capture_output=True, text=True, timeout=120,
    )
    assert runs.returncode == 0
    assert runs.stdout.count("complete") >= (4 if found else 2)  # + the benchmark runs

