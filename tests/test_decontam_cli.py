"""`gapmeter decontaminate` end to end, then `gapmeter run --subsets` on its output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import stats

from gapmeter.decontam.items import task_items
from gapmeter.decontam.subsets import Membership, _compare_rule, _llama2_z
from gapmeter.decontam.tokens import normalize_words
from gapmeter.store.results_json import samples_path
from gapmeter.tasks.registry import TaskRegistry
from gapmeter.tasks.task import Task


def gapmeter(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gapmeter.cli", *args], capture_output=True,
                          text=True, timeout=600)


def one_line_error(proc: subprocess.CompletedProcess[str], needle: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in proc.stderr, proc.stderr


@pytest.fixture(scope="module")
def arc_texts(data_dir: Path) -> list[str]:
    entry = TaskRegistry.load().tasks["arc_easy"]
    return [it.text for it in task_items(Task(entry.config, data_dir=data_dir), limit=30)]


def test_decontaminate_then_subsets_report(arc_texts: list[str], data_dir: Path,
                                           gpt2_model_dir: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    planted = [0, 3, 6, 9, 12, 15, 18, 21]  # 8 of the first 30 ARC-Easy test items
    filler = "unrelated words about the weather and the market today " * 5
    rows = [filler + arc_texts[i] + " " + filler for i in planted[:4]] + [filler] * 20
    (corpus / "part1.jsonl").write_text("".join(json.dumps({"text": r}) + "\n" for r in rows))
    pq.write_table(pa.table({"text": [arc_texts[i] for i in planted[4:]]}), corpus / "part2.parquet")
    out = tmp_path / "decon"
    proc = gapmeter("decontaminate", "--corpus", str(corpus), "--tasks", "arc_easy", "--limit", "30",
                    "--output_path", str(out), "--clean_out", str(out / "clean.jsonl"),
                    "--data_dir", str(data_dir), "--verbosity", "ERROR")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    counts = summary["tasks"]["arc_easy"]
    assert counts["items"] == 30
    assert counts["gpt3:dirty"] == 8 and counts["palm:dirty"] == 8 and counts["llama2:dirty"] == 8
    subsets = [json.loads(x) for x in (out / "subsets.jsonl").read_text().splitlines()]
    assert [r["doc_id"] for r in subsets if "llama2:dirty" in r["subsets"]] == planted
    overlap = [json.loads(x) for x in (out / "overlap.jsonl").read_text().splitlines()]
    assert overlap[12]["first_match"].endswith("part2.parquet#1")  # planted[4] is row 1 there
    clean = [json.loads(x) for x in (out / "clean.jsonl").read_text().splitlines()]
    # The cleaner works on 13-grams (GPT-3's filter): every planted item that long is cut out.
    long_items = [i for i in planted if len(normalize_words(arc_texts[i]).split()) >= 13]
    assert len(long_items) >= 6
    assert not any(arc_texts[i] in r["text"] for r in clean for i in long_items)
    k = summary["clean"]
    assert k["docs_in"] == 28 and k["docs_unchanged"] + k["docs_cut"] + k["docs_dropped"] == 28
    assert k["docs_unchanged"] == 20 + (len(planted) - len(long_items))

    run = tmp_path / "run"
    proc = gapmeter("run", "--model", "hf", "--model_args", f"pretrained={gpt2_model_dir}",
                    "--tasks", "arc_easy", "--limit", "30", "--output_path", str(run),
                    "--data_dir", str(data_dir), "--log_samples", "--subsets", str(out / "subsets.jsonl"),
                    "--device", "cpu", "--verbosity", "ERROR")
    assert proc.returncode == 0, proc.stderr
    assert "clean vs dirty subsets" in proc.stdout
    report = json.loads((run / "subsets_report.json").read_text())
    samples = samples_path(run, "arc_easy")
    assert samples is not None
    acc = np.array([json.loads(x)["acc"] for x in samples.read_text().splitlines()], dtype=float)
    gpt3 = next(c for c in report if c["rule"] == "gpt3" and c["metric"] == "acc")
    dirty = np.isin(np.arange(30), planted)
    by = {s["name"]: s for s in gpt3["subsets"]}
    assert (by["clean"]["n"], by["dirty"]["n"]) == (22, 8)
    assert by["dirty"]["mean"] == pytest.approx(acc[dirty].mean())
    assert gpt3["diff"] == pytest.approx(acc[dirty].mean() - acc[~dirty].mean())
    lo, hi = gpt3["diff_ci95"]
    assert lo <= gpt3["diff"] <= hi


def test_bad_input_is_one_line(tmp_path: Path) -> None:
    one_line_error(gapmeter("decontaminate", "--corpus", str(tmp_path / "missing"), "--items",
                            str(tmp_path / "i.jsonl"), "--output_path", str(tmp_path / "o")),
                   "no such file or directory")
    (tmp_path / "c.jsonl").write_text('{"text": "fine"}\n{"text": oops}\n')
    (tmp_path / "i.jsonl").write_text('{"text": "an item that is long enough to have thirteen words in it ok"}\n')
    one_line_error(gapmeter("decontaminate", "--corpus", str(tmp_path / "c.jsonl"), "--items",
                            str(tmp_path / "i.jsonl"), "--output_path", str(tmp_path / "o")),
                   "c.jsonl:2: not valid JSON")
    assert not (tmp_path / "o" / "subsets.jsonl").exists()
    one_line_error(gapmeter("decontaminate", "--corpus", str(tmp_path / "i.jsonl"), "--items",
                            str(tmp_path / "i.jsonl"), "--rules", "gpt4", "--output_path", str(tmp_path / "o")),
                   "--rules 'gpt4'")


def test_llama2_z_and_welch_match_their_definitions() -> None:
    rng = np.random.default_rng(0)
    values = (rng.random(400) < 0.6).astype(float)
    dirty = np.zeros(400, dtype=bool)
    dirty[:100] = True
    values[:100] = (rng.random(100) < 0.9).astype(float)  # dirty docs score higher
    labels = [frozenset({"llama2:not_clean", "llama2:dirty"} if d else {"llama2:clean", "llama2:not_dirty"})
              for d in dirty]
    comp = _compare_rule("t", "llama2", "acc", "none", values, labels, 2000, 0)
    mu, sd = values.mean(), values.std(ddof=1)
    want = (values[dirty].mean() - mu) / (sd / np.sqrt(100) * np.sqrt(300 / 399))
    z = {s.name: s.z for s in comp.subsets}
    assert z["dirty"] == pytest.approx(want) and z["not_clean"] == pytest.approx(want)
    assert comp.p_welch == pytest.approx(stats.ttest_ind(values[dirty], values[~dirty], equal_var=False).pvalue)
    assert comp.llama2_affected is True
    assert comp.diff_ci95[0] > 0
    assert _llama2_z(0.5, 400, 0.5, 0.5, 400) is None  # the subset is the whole set
    assert Membership("", frozenset()).subsets == frozenset()
