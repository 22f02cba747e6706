"""lm-eval 0.4.13's output layout, both ways (issue 15, points 2-4).

One tiny GPT-2 evaluated on the same ARC-Easy docs by lm-eval (its own ``EvaluationTracker``
writes the files, as ``lm_eval --output_path D --log_samples`` does) and by gapmeter
(``--log_samples``). Checked: gapmeter's file names and every key and type of its results file
and sample lines against lm-eval's; lm-eval's and ``datasets``' readers on gapmeter's files;
``gapmeter import`` of lm-eval's directory (paired test against the gapmeter run says
identical), idempotence, bad input; ``gapmeter export`` (equals what --log_samples wrote; its
import is the same run).
"""

from __future__ import annotations

import copy
import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("lm_eval")

from support.lm_eval_ref import run_lm_eval  # noqa: E402

from gapmeter.commands.export import export_run  # noqa: E402
from gapmeter.commands.import_lm_eval import import_lm_eval  # noqa: E402
from gapmeter.compare.report import compare_runs  # noqa: E402
from gapmeter.compare.runs import open_run  # noqa: E402
from gapmeter.engine.evaluate import evaluate  # noqa: E402
from gapmeter.errors import DataError  # noqa: E402
from gapmeter.spec import RunSpec  # noqa: E402
from gapmeter.store import lm_eval_layout as layout  # noqa: E402
from gapmeter.tasks import formats  # noqa: E402
from gapmeter.tasks.registry import TaskRegistry  # noqa: E402

TASK, LIMIT = "arc_easy", 6
#: lm-eval's keys whose value may be None or a string (``str | None`` in lm_eval/result_schema.py)
OPTIONAL = {"git_hash", "upper_git_hash", "system_instruction", "system_instruction_sha", "chat_template",
            "chat_template_sha", "fewshot_as_multiturn", "model_revision", "model_sha", "use_cache", "gen_kwargs",
            "limit", "device", "eot_token_id", "max_length"}


def _docs(data_dir: Path, task: str = TASK, limit: int = LIMIT) -> dict[str, list[dict[str, Any]]]:
    cfg = TaskRegistry.load().tasks[task].config
    layout_ = cfg.source.local_layouts()[0]
    files = {s: data_dir / rel for s, rel in layout_.files.items()}
    docs = formats.convert(layout_.format, files, **layout_.options)
    return {s: (rows[:limit] if s == cfg.eval_split else rows) for s, rows in docs.items()}


def _run_both(root: Path, data_dir: Path, model_dir: Path, task: str, limit: int) -> dict[str, Any]:
    """lm-eval (files written by its EvaluationTracker) and gapmeter (--log_samples) on the same docs."""
    from lm_eval.loggers import EvaluationTracker

    ref = run_lm_eval(model_dir, task, _docs(data_dir, task, limit), num_fewshot=0, limit=limit,
                      work_dir=root / "lm_eval", bootstrap_iters=1000)
    results = copy.deepcopy(ref.raw)
    samples = results.pop("samples")
    tracker = EvaluationTracker(output_path=str(root / "ref"))
    tracker.general_config_tracker.log_experiment_args(
        model_source="hf", model_args={"pretrained": str(model_dir), "dtype": "float32"},
        system_instruction=None, chat_template=None, fewshot_as_multiturn=False)
    tracker.save_results_aggregated(results=results, samples=samples)
    for task in results["configs"]:
        tracker.save_results_samples(task_name=task, samples=samples[task])
    db = f"sqlite:///{root / 'store.sqlite'}"
    ours = evaluate(RunSpec(model="hf", model_args=f"pretrained={model_dir},dtype=float32", tasks=(task,),
                            num_fewshot=0, limit=limit, batch_size="1", device="cpu", data_dir=data_dir, db=db,
                            bootstrap_iters=1000, output_path=root / "ours", log_samples=True))
    return {"root": root, "ref": root / "ref", "ours": root / "ours", "db": db, "run_id": ours.run_id}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, data_dir: Path, gpt2_model_dir: Path) -> dict[str, Any]:
    return _run_both(tmp_path_factory.mktemp("layout"), data_dir, gpt2_model_dir, TASK, LIMIT)


def _only(folder: Path, pattern: str) -> Path:
    found = sorted(folder.glob(pattern))
    assert len(found) == 1, (pattern, [p.name for p in folder.iterdir()])
    return found[0]


def _model_dir(out: Path) -> Path:
    dirs = [p for p in out.iterdir() if p.is_dir()]
    assert len(dirs) == 1, dirs
    return dirs[0]


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def _same_types(ours: Any, ref: Any, where: str, *, optional: bool = False) -> None:
    if optional and (ours is None or ref is None):
        return
    assert type(ours) is type(ref), f"{where}: {type(ours).__name__} vs lm-eval's {type(ref).__name__}"
    if isinstance(ref, dict):
        for k in ref:
            assert k in ours, f"{where}: key {k!r} missing"
            _same_types(ours[k], ref[k], f"{where}.{k}", optional=k in OPTIONAL)
    elif isinstance(ref, list) and ref and ours:
        _same_types(ours[0], ref[0], f"{where}[0]")


def test_file_names_are_lm_evals_and_its_helpers_read_them(runs: dict[str, Any]) -> None:
    from lm_eval import utils

    ref_dir, our_dir = _model_dir(runs["ref"]), _model_dir(runs["ours"])
    assert our_dir.name == ref_dir.name  # <output_path>/<model_name_sanitized>
    names = [str(p) for p in our_dir.iterdir()]
    assert len(names) == 2
    (results,) = utils.get_results_filenames(names)
    (samples,) = utils.get_sample_results_filenames(names)
    assert utils.get_file_task_name(Path(samples).name) == TASK
    assert utils.get_file_datetime(Path(samples).name) == utils.get_file_datetime(Path(results).name).replace(".json", "")
    assert utils.get_latest_filename([samples]) == samples
    # the date id has lm-eval's form (isoformat with ':' -> '-')
    ref_date = layout.parse_results_name(_only(ref_dir, "results_*.json").name)
    our_date = layout.parse_results_name(Path(results).name)
    assert ref_date and our_date and len(our_date) == len(ref_date) and our_date.count("-") == ref_date.count("-")
    # datasets' json builder (what lm-eval's hub upload relies on) reads the samples file
    from datasets import load_dataset

    ds = load_dataset("json", data_files=samples, split="train", cache_dir=str(runs["root"] / "hf_cache"))
    assert len(ds) == LIMIT and ds[0]["filter"] == "none"


def test_results_file_has_every_lm_eval_key_with_its_type(runs: dict[str, Any]) -> None:
    ref = json.loads(_only(_model_dir(runs["ref"]), "results_*.json").read_text())
    ours = json.loads(_only(_model_dir(runs["ours"]), "results_*.json").read_text())
    assert set(ours) - {"gapmeter"} == set(ref), (set(ours) ^ set(ref))
    assert list(ours)[: len(ref)] == list(ref), "lm-eval's key order"
    # the reference reads the docs from local json files (support/lm_eval_ref.py), gapmeter's
    # config names the hub dataset: dataset_path/dataset_name, without lm-eval's local-file kwargs
    del ref["configs"][TASK]["dataset_kwargs"]
    # lm-eval writes a decontamination query only for tasks it decontaminates (gapmeter's
    # decontamination is `gapmeter decontaminate`, not lm-eval's n-gram pass)
    assert ours["configs"][TASK]["should_decontaminate"] is False
    del ref["configs"][TASK]["doc_to_decontamination_query"]
    for key in ref:
        _same_types(ours[key], ref[key], key, optional=key in OPTIONAL)
    assert set(ours["config"]) >= set(ref["config"])
    for k in ref["results"][TASK]:
        assert k in ours["results"][TASK], k
    assert ours["results"][TASK]["acc,none"] == pytest.approx(ref["results"][TASK]["acc,none"])
    assert ours["model_name"] == ref["model_name"] and ours["model_name_sanitized"] == ref["model_name_sanitized"]
    assert ours["task_hashes"] == ref["task_hashes"], "same docs, prompts and targets"
    assert json.loads((runs["ours"] / "results.json").read_text()) == ours


def test_sample_lines_match_lm_evals_keys_types_and_values(runs: dict[str, Any]) -> None:
    _check_lines(runs)


def test_generation_task_has_a_line_per_doc_and_filter_as_lm_eval(
        tmp_path_factory: pytest.TempPathFactory, data_dir: Path, gpt2_model_dir: Path) -> None:
    gen = _run_both(tmp_path_factory.mktemp("layout_gsm8k"), data_dir, gpt2_model_dir, "gsm8k", 2)
    lines = _check_lines(gen)
    assert [(x["doc_id"], x["filter"]) for x in lines] == [(0, "strict-match"), (1, "strict-match"),
                                                           (0, "flexible-extract"), (1, "flexible-extract")]
    ours = json.loads(_only(_model_dir(gen["ours"]), "results_*.json").read_text())
    ref = json.loads(_only(_model_dir(gen["ref"]), "results_*.json").read_text())
    assert ours["task_hashes"] == ref["task_hashes"]
    assert isinstance(lines[0]["arguments"]["gen_args_0"]["arg_1"], dict)  # the generation kwargs


def _check_lines(runs: dict[str, Any]) -> list[dict[str, Any]]:
    ref = _lines(_only(_model_dir(runs["ref"]), "samples_*.jsonl"))
    ours = _lines(_only(_model_dir(runs["ours"]), "samples_*.jsonl"))
    assert [(s["doc_id"], s["filter"]) for s in ours] == [(s["doc_id"], s["filter"]) for s in ref]
    for a, b in zip(ours, ref, strict=True):
        where = f"doc {b['doc_id']}"
        assert set(a) - {"gapmeter"} == set(b), (where, set(a) ^ set(b))
        for key in b:
            _same_types(a[key], b[key], f"{where}.{key}")
        for key in ("doc", "target", "filter", "metrics", "doc_hash", "prompt_hash", "target_hash", *b["metrics"]):
            assert a[key] == b[key], (where, key)
        assert a["arguments"] == b["arguments"], where
        if isinstance(b["resps"][0][0], list):  # [loglikelihood, is_greedy] as strings
            for ra, rb in zip(a["resps"], b["resps"], strict=True):
                assert float(ra[0][0]) == pytest.approx(float(rb[0][0]), abs=1e-4) and ra[0][1] == rb[0][1]
        else:
            assert a["resps"] == b["resps"] and a["filtered_resps"] == b["filtered_resps"]
        assert set(a["gapmeter"]) == {"doc_hash", "fewshot_ids"}
    return ours


def test_sample_lines_one_per_filter() -> None:
    record = {"doc_id": 3, "doc": {"q": "1+1"}, "target": 2, "fewshot_ids": [7], "doc_hash": "h",
              "arguments": {"gen_args_0": {"arg_0": "Q: 1+1\nA:", "arg_1": {"until": ["\n"]}}},
              "resps": [["2 and more"]], "filtered_resps": {"strict": "2", "flex": "[invalid]"},
              "filters": ["strict", "flex"], "metrics": {"exact_match,strict": 1.0, "exact_match,flex": 0.0}}
    lines = layout.sample_lines(record)
    assert [(x["filter"], x["metrics"], x["exact_match"]) for x in lines] == [("strict", ["exact_match"], 1.0),
                                                                            ("flex", ["exact_match"], 0.0)]
    assert [x["filtered_resps"] for x in lines] == [["2"], ["[invalid]"]]  # a list per request, as lm-eval
    assert lines[0]["target"] == "2" and lines[0]["prompt_hash"] == layout.hash_string("Q: 1+1\nA:")
    back = layout.record_from_lines(lines, "h", "generate_until")
    assert back["metrics"] == record["metrics"] and back["filtered_resps"] == record["filtered_resps"]
    assert back["fewshot_ids"] == [7] and back["filters"] == ["strict", "flex"]
    # stringified responses come back typed by the task's output type
    mc = {**record, "arguments": {"gen_args_0": {"arg_0": "Q", "arg_1": " a"}, "gen_args_1": {"arg_0": "Q", "arg_1": " b"}},
          "resps": [[[-1.5, True]], [[-2.25, False]]], "filtered_resps": {"none": [[-1.5, True], [-2.25, False]]},
          "filters": ["none"], "metrics": {"acc,none": 1.0}}
    mc_lines = layout.sample_lines(mc)
    assert mc_lines[0]["resps"] == [[["-1.5", "True"]], [["-2.25", "False"]]]
    assert layout.record_from_lines(mc_lines, "h", "multiple_choice")["resps"] == mc["resps"]
    rolling = {**record, "arguments": {"gen_args_0": {"arg_0": "a text"}}, "resps": [[-12.5]], "filtered_resps": {"none": [-12.5]}, "filters": ["none"],
               "metrics": {"word_perplexity,none": [-12.5, 3]}}
    back = layout.record_from_lines(layout.sample_lines(rolling), "h", "loglikelihood_rolling")
    assert back["resps"] == [[-12.5]] and back["filtered_resps"] == {"none": [-12.5]}
    assert back["metrics"] == rolling["metrics"]


def _run_count(db: str) -> int:
    with sqlite3.connect(db.removeprefix("sqlite:///")) as con:
        return con.execute("select count(*) from runs").fetchone()[0]


def test_imported_lm_eval_run_pairs_identically_with_the_gapmeter_run(runs: dict[str, Any]) -> None:
    before = _run_count(runs["db"])
    (imported,) = import_lm_eval([runs["ref"]], runs["db"])
    assert imported.stored and imported.docs == LIMIT and not imported.aggregates_only
    assert _run_count(runs["db"]) == before + 1
    again = import_lm_eval([runs["ref"]], runs["db"])  # idempotent: same id, nothing added
    assert again[0].id == imported.id and _run_count(runs["db"]) == before + 1
    report = compare_runs(runs["db"], runs["run_id"], imported.id, iters=200)
    (row,) = report.rows
    assert row.result.test == "identical" and row.result.n == LIMIT and row.result.diff == 0
    # runs, profile, pareto and the board read it like a run of their own
    listing = _cli("runs", "--db", runs["db"], "--json")
    assert listing.returncode == 0 and imported.id in listing.stdout, listing.stderr
    prof = _cli("profile", runs["run_id"], imported.id, "--db", runs["db"], "--json",
                "--output_path", str(runs["root"] / "profile"))
    assert prof.returncode == 0 and imported.id in prof.stdout, prof.stderr
    par = _cli("pareto", runs["run_id"], imported.id, "--db", runs["db"], "--task", TASK, "--json",
               "--out", str(runs["root"] / "pareto"))
    assert par.returncode == 0 and imported.id in par.stdout, par.stderr
    from gapmeter.board.readmodel import SnapshotCache
    from gapmeter.store.db import open_store

    with open_store(runs["db"])() as session:
        snap = SnapshotCache().get(session)
    assert imported.id in snap.runs and TASK in snap.tasks


def test_export_equals_log_samples_output_and_round_trips(runs: dict[str, Any], tmp_path: Path) -> None:
    proc = _cli("export", runs["run_id"], str(tmp_path / "native"), "--format", "lm-eval", "--db", runs["db"])
    assert proc.returncode == 0, proc.stderr
    written = _only(_model_dir(tmp_path / "native"), "results_*.json")
    assert f"wrote {written}" in proc.stdout.replace("\n", "")
    bad = _cli("export", runs["run_id"], str(tmp_path / "x"), "--format", "helm", "--db", runs["db"])
    assert bad.returncode == 2 and bad.stderr.strip() == "error: --format helm: not a known format (known: lm-eval)"
    original = _model_dir(runs["ours"])
    assert written.parent.name == original.name
    assert json.loads(written.read_text()) == json.loads(_only(original, "results_*.json").read_text())
    assert (_only(written.parent, "samples_*.jsonl").read_text()
            == _only(original, "samples_*.jsonl").read_text())
    # an imported run exports to lm-eval's lines (plus gapmeter's key) and imports back as itself
    (imported,) = import_lm_eval([runs["ref"]], runs["db"])
    back = export_run(imported.id, tmp_path / "imported", db=runs["db"])
    ref_lines = _lines(_only(_model_dir(runs["ref"]), "samples_*.jsonl"))
    out_lines = _lines(_only(back.parent, "samples_*.jsonl"))
    assert [{k: v for k, v in x.items() if k != "gapmeter"} for x in out_lines] == ref_lines
    db2 = f"sqlite:///{tmp_path / 'fresh.sqlite'}"
    (again,) = import_lm_eval([tmp_path / "imported"], db2)
    assert again.id == imported.id and again.docs == LIMIT
    first, second = open_run(imported.id, runs["db"]), open_run(again.id, db2)
    assert first.doc_values(TASK, "acc", "none") == second.doc_values(TASK, "acc", "none")
    assert ({k: (m.value, m.stderr, m.n) for k, m in first.metric_values().items()}
            == {k: (m.value, m.stderr, m.n) for k, m in second.metric_values().items()})


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gapmeter.cli", *args], capture_output=True, text=True, timeout=120)


def test_bad_input_is_one_line_and_stores_nothing(runs: dict[str, Any], tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'bad.sqlite'}"
    good = tmp_path / "good"
    bad = tmp_path / "bad"
    import shutil

    shutil.copytree(runs["ref"], good)
    shutil.copytree(runs["ref"], bad)
    samples = _only(_model_dir(bad), "samples_*.jsonl")
    text = samples.read_text()
    samples.write_text(text[: len(text) - 40])  # the last line cut
    proc = _cli("import", str(good), str(bad), "--db", db)
    assert proc.returncode != 0 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert f"{samples}:{LIMIT}: malformed or truncated JSON line" in proc.stderr
    assert not (tmp_path / "bad.sqlite").exists() or _run_count(db) == 0  # the good dir is not stored either

    samples.unlink()
    with pytest.raises(DataError, match="no samples for task arc_easy"):
        import_lm_eval([bad], db)
    (agg,) = import_lm_eval([bad], db, aggregates_only=True)
    assert agg.aggregates_only == [TASK] and agg.docs == 0
    (full,) = import_lm_eval([good], db)
    report = compare_runs(db, full.id, agg.id)
    assert report.rows == [] and report.notes == [
        f"{TASK}: no paired test (run {agg.id} was imported without per-doc samples; only its aggregate scores are stored)"]
    stored = open_run(agg.id, db).metric_values()[(TASK, "acc", "none")]
    assert stored.value == open_run(full.id, db).metric_values()[(TASK, "acc", "none")].value and stored.n == LIMIT

    unknown = tmp_path / "unknown"
    shutil.copytree(runs["ref"], unknown)
    res = _only(_model_dir(unknown), "results_*.json")
    doc = json.loads(res.read_text())
    doc["configs"]["not_a_gapmeter_task"] = doc["configs"][TASK]
    res.write_text(json.dumps(doc))
    with pytest.raises(DataError, match="task 'not_a_gapmeter_task' is unknown to gapmeter"):
        import_lm_eval([unknown], db)
    with pytest.raises(DataError, match="no such directory"):
        import_lm_eval([tmp_path / "missing"], db)


def test_parquet_samples_import_as_the_jsonl_ones(runs: dict[str, Any], tmp_path: Path) -> None:
    """The leaderboards' "details" datasets: the same records as parquet."""
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "details" / _model_dir(runs["ref"]).name
    shutil.copytree(_model_dir(runs["ref"]), folder)
    jsonl = _only(folder, "samples_*.jsonl")
    lines = _lines(jsonl)
    pq.write_table(pa.Table.from_pylist(lines), jsonl.with_suffix(".parquet"))
    jsonl.unlink()
    db = f"sqlite:///{tmp_path / 'pq.sqlite'}"
    (from_parquet,) = import_lm_eval([tmp_path / "details"], db)
    (from_jsonl,) = import_lm_eval([runs["ref"]], runs["db"])
    assert from_parquet.id == from_jsonl.id and from_parquet.docs == LIMIT
    a, b = open_run(from_parquet.id, db), open_run(from_jsonl.id, runs["db"])
    assert a.doc_values(TASK, "acc_norm", "none") == b.doc_values(TASK, "acc_norm", "none")
    assert len(a.doc_values(TASK, "acc_norm", "none")) == LIMIT


def test_lm_eval_run_with_another_prompt_keeps_its_config_and_compare_refuses(runs: dict[str, Any],
                                                                              tmp_path: Path) -> None:
    import shutil

    from gapmeter.errors import ConfigError

    other = tmp_path / "other_prompt"
    shutil.copytree(runs["ref"], other)
    res = _only(_model_dir(other), "results_*.json")
    doc = json.loads(res.read_text())
    doc["configs"][TASK]["doc_to_text"] = "Q: {{question}}\nA:"
    res.write_text(json.dumps(doc))
    proc = _cli("import", str(other), "--db", runs["db"])
    assert proc.returncode == 0 and "imported" in proc.stdout, proc.stderr
    run_id = proc.stdout.split()[0]
    with pytest.raises(ConfigError, match="their task configs differ"):
        compare_runs(runs["db"], runs["run_id"], run_id)


def test_group_entries_have_lm_evals_keys_and_types(tmp_path: Path, data_dir: Path, gpt2_model_dir: Path) -> None:
    """MMLU restricted to two subjects (lm-eval's nesting: mmlu -> categories -> subjects)."""
    from support.lm_eval_ref import run_lm_eval_group
    from test_parity_lm_eval import _mmlu_include_dir

    subjects = ("mmlu_abstract_algebra", "mmlu_philosophy")
    ref = run_lm_eval_group(gpt2_model_dir, "mmlu", {t: _docs(data_dir, t, 2) for t in subjects}, num_fewshot=0,
                            limit=2, work_dir=tmp_path / "lm_eval", bootstrap_iters=100)
    ours = evaluate(RunSpec(model="hf", model_args=f"pretrained={gpt2_model_dir},dtype=float32", tasks=("mmlu",),
                            num_fewshot=0, limit=2, batch_size="1", device="cpu", data_dir=data_dir,
                            include_path=(_mmlu_include_dir(subjects, tmp_path / "gm_tasks"),),
                            db=f"sqlite:///{tmp_path / 'g.sqlite'}", bootstrap_iters=100,
                            output_path=tmp_path / "ours"))
    doc = json.loads((tmp_path / "ours" / "results.json").read_text())
    assert ours.run_id == doc["gapmeter"]["run_id"]
    written = json.loads(layout.dumps({k: v for k, v in ref.raw.items() if k != "samples"}))  # as lm-eval writes it
    assert set(doc["groups"]) == set(written["groups"])
    assert set(doc["results"]) == set(written["results"])
    for name, entry in written["results"].items():
        mine = doc["results"][name]
        assert set(entry) - {"alias"} <= set(mine), (name, set(entry) - set(mine))
        for key in entry:
            if key != "alias":  # lm-eval indents subtask aliases (" - mmlu_philosophy") for its table
                _same_types(mine[key], entry[key], f"results.{name}.{key}")
    assert doc["group_subtasks"] == written["group_subtasks"]
