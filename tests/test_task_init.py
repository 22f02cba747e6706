"""`gapmeter task init`: a real CSV and a real .xlsx → task YAML → a run through `gapmeter serve`'s
app on 127.0.0.1 (scripted answers, so the scores are known), categories as subtasks, malformed
rows named and, with --skip_invalid, skipped and counted in results.json."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from support.api_server import serving
from support.scripted_served import ScriptedServed, answering

from gapmeter.commands.task_init import init_task
from gapmeter.engine.evaluate import evaluate
from gapmeter.errors import ConfigError, DataError
from gapmeter.spec import RunSpec
from gapmeter.tasks.registry import TaskRegistry

ROWS = [
    {"ID": "q1", "Question": "What is the capital of France?", "Reference Answer": "Paris", "Category": "geo"},
    {"ID": "q2", "Question": "What is 2+2?", "Reference Answer": "4", "Category": "math"},
    {"ID": "q3", "Question": "What is the capital of Italy?", "Reference Answer": "Rome", "Category": "geo"},
    {"ID": "q4", "Question": "What is 3+3?", "Reference Answer": "6", "Category": "math"},
    {"ID": "q5", "Question": "What is the capital of Spain?", "Reference Answer": "Madrid", "Category": "geo"},
]
# The served model gets q1, q2, q3 right (case and a full stop do not matter) and q4, q5 wrong.
ANSWERS = {"What is the capital of France?": "paris.", "What is 2+2?": "4", "What is the capital of Italy?": "Rome",
           "What is 3+3?": "7", "What is the capital of Spain?": "Lisbon"}


def _write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _run(yaml_path: Path, task: str, server_url: str, out: Path) -> dict:
    spec = RunSpec(model="openai", model_args=f"base_url={server_url},model=scripted", tasks=(task,),
                   include_path=(yaml_path,), output_path=out, bootstrap_iters=1000)
    evaluate(spec)
    return json.loads((out / "results.json").read_text())


def test_csv_with_categories_becomes_a_group_of_subtasks_and_runs(tmp_path: Path) -> None:
    data = _write_csv(tmp_path / "support cases.csv", ROWS)
    result = init_task(data, given={})
    assert result.columns == {"input": "Question", "target": "Reference Answer", "id": "ID", "category": "Category"}
    assert result.task == "support_cases" and result.subtasks == ["support_cases_geo", "support_cases_math"]
    assert result.yaml_path == tmp_path / "support_cases.yaml"
    assert "--include_path" in result.run_command() and "--tasks support_cases" in result.run_command()
    reg = TaskRegistry.load([result.yaml_path])
    assert reg.tasks["support_cases_geo"].config.output_type == "generate_until"
    assert [str(t) for t in reg.groups["support_cases"].config.task] == result.subtasks

    with serving(ScriptedServed("scripted", answering(ANSWERS))) as server:
        doc = _run(result.yaml_path, "support_cases", server.url, tmp_path / "out")
    res = doc["results"]
    # geo: Paris ✓ Rome ✓ Madrid ✗ → 2/3; math: 4 ✓ 6 ✗ → 1/2; group: 3/5, each with its own CI.
    assert res["support_cases_geo"]["exact_match,none"] == pytest.approx(2 / 3)
    assert res["support_cases_math"]["exact_match,none"] == pytest.approx(1 / 2)
    assert res["support_cases"]["exact_match,none"] == pytest.approx(3 / 5)
    for name in ("support_cases_geo", "support_cases_math", "support_cases"):
        assert "exact_match_ci95,none" in res[name]
    assert doc["gapmeter"]["skipped_rows"] == {}
    assert doc["n-samples"]["support_cases_geo"]["effective"] == 3
    # The file goes bad after init: the run refuses it, naming the row (the YAML has no skip_invalid).
    with data.open("a", encoding="utf-8") as fh:
        fh.write("q6,What is 5+5?,,math\n")
    with pytest.raises(DataError, match=r"skip_invalid: true in the task YAML(.|\n)*support cases.csv:7: field "
                                        r"'Reference Answer' \(target\) is empty"):
        _run(result.yaml_path, "support_cases", "http://127.0.0.1:9/v1", tmp_path / "out2")


def test_xlsx_with_choice_columns_becomes_a_multiple_choice_task(tmp_path: Path) -> None:
    openpyxl = pytest.importorskip("openpyxl")
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["question", "A", "B", "C", "answer"])
    sheet.append(["Which colour is the sky?", "green", "blue", "red", "B"])
    sheet.append(["How many legs has a cat?", 4, 2, 8, "A"])  # numbers: Excel stores floats
    sheet.append([None, None, None, None, None])  # an empty row is not a row
    sheet.append(["Which is a fruit?", "apple", "chair", "stone", "apple"])  # the answer as text
    sheet.append(["Which is a metal?", "wood", None, "iron", "C"])  # 2 choices: C is the second
    sheet.append(["Which is a gas?", "air", None, "rock", "B"])  # B is empty: malformed
    book.save(tmp_path / "quiz.xlsx")
    with pytest.raises(DataError, match=r"quiz.xlsx:row 7: field 'answer': the answer 'B' names choice column 'B', "
                                        "which is empty"):
        init_task(tmp_path / "quiz.xlsx", given={})

    result = init_task(tmp_path / "quiz.xlsx", given={}, skip_invalid=True)
    assert result.columns == {"input": "question", "target": "answer", "choices": ["A", "B", "C"]}
    assert result.output_type == "multiple_choice" and result.n_rows == 5 and len(result.skipped) == 1
    task = TaskRegistry.load([result.yaml_path]).tasks["quiz"]
    from gapmeter.tasks.task import Task

    docs = Task(task.config, yaml_dir=task.path.parent).eval_docs
    assert [d["answer"] for d in docs] == [1, 0, 0, 1] and docs[3]["choices"] == ["wood", "iron"]
    assert docs[1]["choices"] == ["4", "2", "8"] and docs[0]["id"] == "1"
    assert [m.metric for m in task.config.metric_list] == ["acc"]


BAD_ROWS = [
    {"id": "1", "question": "Capital of France?", "answer": "Paris"},
    {"id": "2", "question": "Capital of Italy?", "answer": ""},       # empty answer (line 3)
    {"id": "1", "question": "Capital of Spain?", "answer": "Madrid"},  # repeated id (line 4)
    {"id": "4", "question": "  ", "answer": "Berlin"},                 # empty question (line 5)
    {"id": "5", "question": "Capital of Peru?", "answer": "Lima"},
]


def test_malformed_rows_are_each_named_and_nothing_is_written(tmp_path: Path) -> None:
    data = _write_csv(tmp_path / "cases.csv", BAD_ROWS)
    with pytest.raises(DataError) as err:
        init_task(data, given={})
    text = str(err.value)
    assert "3 malformed row(s)" in text and "--skip_invalid" in text
    assert f"{data}:3: field 'answer' (target) is empty" in text
    assert f"{data}:4: field 'id': id '1' repeats {data}:2" in text
    assert f"{data}:5: field 'question' (input) is empty" in text
    assert not (tmp_path / "cases.yaml").exists()
    # The CLI: one error (its lines name every row), exit 2, no traceback.
    proc = subprocess.run([sys.executable, "-m", "gapmeter.cli", "task", "init", str(data)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "cases.csv:3: field 'answer'" in proc.stderr.replace("\n", "")


def test_skip_invalid_runs_the_valid_rows_and_counts_the_skipped(tmp_path: Path) -> None:
    data = _write_csv(tmp_path / "cases.csv", BAD_ROWS)
    result = init_task(data, given={}, skip_invalid=True)
    assert len(result.skipped) == 3
    written = list(yaml.safe_load_all(result.yaml_path.read_text()))
    assert written[0]["source"]["local"]["options"]["skip_invalid"] is True
    answers = {"Capital of France?": "Paris", "Capital of Peru?": "Quito"}
    with serving(ScriptedServed("scripted", answering(answers))) as server:
        doc = _run(result.yaml_path, "cases", server.url, tmp_path / "out")
    assert doc["results"]["cases"]["exact_match,none"] == pytest.approx(0.5)
    skipped = doc["gapmeter"]["skipped_rows"]["cases"]
    assert skipped["count"] == 3 and skipped["rows"][0].endswith(":3: field 'answer' (target) is empty")
    # A second init does not overwrite the YAML the user may have edited.
    with pytest.raises(ConfigError, match="exists"):
        init_task(data, given={}, skip_invalid=True)


def test_overrides_and_unknown_columns(tmp_path: Path) -> None:
    data = _write_csv(tmp_path / "t.csv", [{"prompt_text": "Say hi", "gold": "hi", "kind": "x"}])
    with pytest.raises(ConfigError, match="--input_col"):
        init_task(data, given={})
    with pytest.raises(ConfigError, match="no column 'nope'"):
        init_task(data, given={"input": "nope"})
    result = init_task(data, given={"input": "prompt_text", "category": "kind"}, name="Greeting")
    assert result.columns == {"input": "prompt_text", "category": "kind", "target": "gold"}
    assert result.task == "greeting" and result.subtasks == ["greeting_x"]


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_list_choices_in_jsonl_and_parquet(tmp_path: Path, suffix: str) -> None:
    rows = [{"prompt": "Sky colour?", "options": ["green", "blue"], "label": 1, "topic": "nature"},
            {"prompt": "Cat legs?", "options": ["4", "2", "8"], "label": 0, "topic": "animals"},
            {"prompt": "Odd one?", "options": ["x"], "label": 0, "topic": "animals"}]  # one choice: malformed
    path = tmp_path / f"mc{suffix}"
    if suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        where = f"{path}:3"
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
        where = f"{path}:row 3"
    with pytest.raises(DataError, match=rf"{where}: field 'options': needs at least 2 non-empty choices"):
        init_task(path, given={})
    result = init_task(path, given={}, skip_invalid=True)
    assert result.columns == {"input": "prompt", "target": "label", "choices": "options", "category": "topic"}
    assert result.subtasks == ["mc_nature", "mc_animals"] and len(result.skipped) == 1
    from gapmeter.tasks.task import Task

    entry = TaskRegistry.load([result.yaml_path]).tasks["mc_animals"]
    docs = Task(entry.config, yaml_dir=entry.path.parent).eval_docs
    assert docs == [{"id": "2", "input": "Cat legs?", "target": "4", "choices": ["4", "2", "8"], "answer": 0,
                     "category": "animals"}]


def test_cli_options_both_spellings(tmp_path: Path) -> None:
    data = _write_csv(tmp_path / "t.csv", [{"prompt_text": "Say hi", "gold": "hi", "kind": "x"}])
    proc = subprocess.run([sys.executable, "-m", "gapmeter.cli", "task", "init", str(data), "--input_col", "prompt_text",
                           "--category-col", "kind"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "columns: input=prompt_text, category=kind, target=gold" in proc.stdout
    assert f"--include_path {tmp_path / 't.yaml'} --tasks t " in proc.stdout.replace("\n", "")
