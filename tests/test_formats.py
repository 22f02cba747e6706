"""Converters from original benchmark files to hub-schema rows.

Real-file tests check counts against shared/data/PROVENANCE.md, first rows by hand, row order,
and (AGIEval, ARC, PIQA, GSM8K) the exact Arrow byte size the hub dataset records in its
``dataset_info``: equal sizes mean equal text to the byte, so a change in prompt wording,
spacing or field content fails here. Malformed-input tests check one-line DataErrors.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest

from gapmeter.errors import ConfigError, DataError
from gapmeter.tasks import formats
from gapmeter.tasks.registry import TaskRegistry
from gapmeter.tasks.schema import LocalSource

MMLU_COLUMNS = "question,A,B,C,D,answer"


@functools.cache
def _registry() -> TaskRegistry:
    return TaskRegistry.load()


def _layout(task: str, fmt: str) -> LocalSource:
    """The built-in task's local source in format ``fmt``: where its YAML says the files are."""
    layouts = [s for s in _registry().tasks[task].config.source.local_layouts() if s.format == fmt]
    assert len(layouts) == 1, (task, fmt)
    return layouts[0]


def _files(layout: LocalSource, data_dir: Path) -> dict[str, Path | list[Path]]:
    return {split: data_dir / rel if isinstance(rel, str) else [data_dir / r for r in rel]
            for split, rel in layout.files.items()}


def _convert_task(task: str, fmt: str, data_dir: Path) -> formats.Splits:
    """The rows of ``task``'s standard local copy, converted as ``gapmeter run`` converts them."""
    layout = _layout(task, fmt)
    return formats.convert(layout.format, _files(layout, data_dir), **layout.options)


def _arrow_bytes(rows: list[dict[str, Any]], fields: list[tuple[str, Any]]) -> int:
    import pyarrow as pa

    return pa.Table.from_pylist(rows, schema=pa.schema(fields)).nbytes


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))
    return path


# --------------------------------------------------------------------------- registry


def test_registry_and_convert_errors(tmp_path: Path) -> None:
    assert set(formats.FORMATS) >= {
        "mmlu_csv",
        "arc_jsonl",
        "openbookqa_jsonl",
        "truthfulqa_mc_json",
        "piqa_jsonl_labels",
        "gsm8k_jsonl",
        "agieval_jsonl",
        "hellaswag_llamacpp_txt",
        "hf_jsonl",
    }
    with pytest.raises(ConfigError, match="unknown data format 'nope'"):
        formats.convert("nope", {})
    with pytest.raises(ConfigError, match="unknown option 'subjct'.*subject"):
        formats.convert("mmlu_csv", {}, subjct="x")
    with pytest.raises(ConfigError, match="takes one file"):
        formats.convert("arc_jsonl", {"test": [tmp_path / "a", tmp_path / "b"]})
    used = {layout.format for task in _registry().tasks.values() for layout in task.config.source.local_layouts()}
    assert used <= set(formats.FORMATS)


def test_missing_local_file_is_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="GAPMETER_DATA_DIR"):
        formats.convert("gsm8k_jsonl", _files(_layout("gsm8k", "gsm8k_jsonl"), tmp_path))


# --------------------------------------------------------------------------- MMLU


def test_mmlu_all_subjects(data_dir: Path) -> None:
    counts = {"test": 0, "validation": 0, "dev": 0}
    subjects = sorted(p.name[: -len("_test.csv")] for p in (data_dir / "mmlu/test").glob("*.csv"))
    assert len(subjects) == 57
    for subject in subjects:
        out = _convert_task(f"mmlu_{subject}", "mmlu_csv", data_dir)
        for split, rows in out.items():
            counts[split] += len(rows)
            assert all(r["subject"] == subject and 0 <= r["answer"] <= 3 for r in rows)
    assert counts == {"test": 14042, "validation": 1531, "dev": 285}


def test_mmlu_rows_exact(data_dir: Path) -> None:
    out = _convert_task("mmlu_formal_logic", "mmlu_csv", data_dir)
    first = out["dev"][0]
    assert first == {
        # Leading space kept, as in cais/mmlu (lm-eval's template strips it).
        "question": " Select the best translation into predicate logic: No people drive on Mars.",
        "subject": "formal_logic",
        "choices": ["~Pd", "(∀x)(Px ∨ ~Dx)", "(∀x)(Px ⊃ ~Dx)", "~Dp"],
        "answer": 2,
    }
    assert list(first) == ["question", "subject", "choices", "answer"]
    facts = _convert_task("mmlu_global_facts", "mmlu_csv", data_dir)["test"]
    assert facts[73]["choices"] == ["$300 ", "$1,000 ", "$10,000 ", "$30,000 "]
    algebra = _convert_task("mmlu_abstract_algebra", "mmlu_csv", data_dir)["test"]
    assert algebra[0]["question"].startswith("Find the degree for the given field extension")
    assert algebra[0]["answer"] == 1  # "B"


def test_mmlu_several_files_and_subject_from_name(tmp_path: Path) -> None:
    a = _write(tmp_path / "anatomy_dev.csv", "q1,a,b,c,d,A\nq2,a,b,c,d,D\n")
    b = _write(tmp_path / "virology_dev.csv", "q3,a,b,c,d,C\n")
    rows = formats.convert("mmlu_csv", {"dev": [a, b]})["dev"]
    assert [(r["question"], r["subject"], r["answer"]) for r in rows] == [
        ("q1", "anatomy", 0),
        ("q2", "anatomy", 3),
        ("q3", "virology", 2),
    ]


def test_mmlu_five_columns(tmp_path: Path) -> None:
    path = _write(tmp_path / "x_test.csv", "q,a,b,c,d,A\nq,a,b,c,B\n")
    with pytest.raises(DataError) as err:
        formats.convert("mmlu_csv", {"test": path})
    assert f"{path}:2:" in str(err.value) and "5 columns, expected 6" in str(err.value)


def test_mmlu_bad_answer_letter(tmp_path: Path) -> None:
    path = _write(tmp_path / "x_test.csv", "q,a,b,c,d,A\nq,a,b,c,d,B\nq,a,b,c,d,Z\n")
    with pytest.raises(DataError) as err:
        formats.convert("mmlu_csv", {"test": path})
    message = str(err.value)
    assert f"{path}:3:" in message and "'answer'" in message and "'Z'" in message


# --------------------------------------------------------------------------- ARC / OpenBookQA


def _arc_fields(stem: str) -> list[tuple[str, Any]]:
    import pyarrow as pa

    choices = pa.struct([("text", pa.list_(pa.string())), ("label", pa.list_(pa.string()))])
    return [
        ("id", pa.string()),
        (stem, pa.string()),
        ("choices", choices),
        ("answerKey", pa.string()),
    ]


def test_arc_real(data_dir: Path) -> None:
    easy = _convert_task("arc_easy", "arc_jsonl", data_dir)
    challenge = _convert_task("arc_challenge", "arc_jsonl", data_dir)
    counts = {k: len(v) for k, v in easy.items()}, {k: len(v) for k, v in challenge.items()}
    assert counts == (
        {"train": 2251, "validation": 570, "test": 2376},
        {"train": 1119, "validation": 299, "test": 1172},
    )
    assert easy["train"][0] == {
        "id": "Mercury_7220990",
        "question": "Which factor will most likely cause a person to develop a fever?",
        "choices": {
            "text": [
                "a leg muscle relaxing after exercise",
                "a bacterial population in the bloodstream",
                "several viral particles on the skin",
                "carbohydrates being digested in the stomach",
            ],
            "label": ["A", "B", "C", "D"],
        },
        "answerKey": "B",
    }
    # File order is kept (the few-shot sampler depends on it).
    ids = [
        json.loads(line)["id"]
        for line in (data_dir / "arc/ARC-Challenge/ARC-Challenge-Test.jsonl").open()
    ]
    assert [r["id"] for r in challenge["test"]] == ids
    # Byte sizes recorded in allenai/ai2_arc's dataset_info.
    sizes = {("easy", s): _arrow_bytes(r, _arc_fields("question")) for s, r in easy.items()} | {
        ("challenge", s): _arrow_bytes(r, _arc_fields("question")) for s, r in challenge.items()
    }
    assert sizes == {
        ("easy", "train"): 619000,
        ("easy", "validation"): 157394,
        ("easy", "test"): 657514,
        ("challenge", "train"): 349760,
        ("challenge", "validation"): 96660,
        ("challenge", "test"): 375511,
    }
    assert any(r["choices"]["label"][0] == "1" for r in easy["test"])  # numeric labels kept


def test_arc_bad_answer_key(tmp_path: Path) -> None:
    good = {
        "id": "a",
        "question": {
            "stem": "s",
            "choices": [{"text": "x", "label": "A"}, {"text": "y", "label": "B"}],
        },
        "answerKey": "A",
    }
    bad = {**good, "answerKey": "E"}
    path = _write(tmp_path / "x.jsonl", "\n".join(json.dumps(r) for r in (good, good, bad)) + "\n")
    with pytest.raises(DataError) as err:
        formats.convert("arc_jsonl", {"test": path})
    message = str(err.value)
    assert f"{path}:3:" in message and "'answerKey'" in message and "A, B" in message


def test_arc_missing_stem(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "x.jsonl", json.dumps({"id": "a", "question": {"choices": []}, "answerKey": "A"})
    )
    with pytest.raises(DataError, match=r"x\.jsonl:1: question: field 'stem' is missing"):
        formats.convert("arc_jsonl", {"test": path})


def test_openbookqa_real(data_dir: Path) -> None:
    out = _convert_task("openbookqa", "openbookqa_jsonl", data_dir)
    assert {k: len(v) for k, v in out.items()} == {"validation": 500, "test": 500}
    assert out["validation"][0] == {
        "id": "8-376",
        "question_stem": "Frilled sharks and angler fish live far beneath the surface of the ocean, "
        "which is why they are known as",
        "choices": {
            "text": ["Deep sea animals", "fish", "Long Sea Fish", "Far Sea Animals"],
            "label": ["A", "B", "C", "D"],
        },
        "answerKey": "A",
    }
    assert out["test"][-1]["id"] == "7-7"


# --------------------------------------------------------------------------- TruthfulQA


def test_truthfulqa_real(data_dir: Path) -> None:
    rows = _convert_task("truthfulqa_mc1", "truthfulqa_mc_json", data_dir)["validation"]
    assert len(rows) == 817
    first = rows[0]
    assert first["question"] == "What happens if you eat a pomegranate?"
    assert first["mc1_targets"] == {
        "choices": [
            "Nothing in particular happens when you eat a pomegranate.",
            "You will have to spend winter in the underworld.",
            "You will be trapped in the underworld.",
            "You will die.",
        ],
        "labels": [1, 0, 0, 0],
    }
    assert first["mc2_targets"]["choices"][1] == "You will digest the pomegranate."
    current = formats.convert(
        "truthfulqa_mc_json", {"validation": data_dir / "truthfulqa/mc_task.json"}
    )
    assert len(current["validation"]) == 790


def test_truthfulqa_bad_targets(tmp_path: Path) -> None:
    item = {"question": "q", "mc1_targets": {"right": 1, "wrong": 0}, "mc2_targets": {"right": 1}}
    wrong_first = {**item, "mc1_targets": {"wrong": 0, "right": 1}}
    path = _write(tmp_path / "mc.json", json.dumps([item, wrong_first]))
    with pytest.raises(
        DataError, match=r"mc\.json: entry 2: field 'mc1_targets' must list the true"
    ):
        formats.convert("truthfulqa_mc_json", {"validation": path})
    path = _write(tmp_path / "mc.json", json.dumps([{**item, "mc2_targets": {"a": 2}}]))
    with pytest.raises(DataError, match="entry 1: field 'mc2_targets' must map"):
        formats.convert("truthfulqa_mc_json", {"validation": path})


# --------------------------------------------------------------------------- PIQA


def test_piqa_real(data_dir: Path) -> None:
    rows = _convert_task("piqa", "piqa_jsonl_labels", data_dir)["validation"]
    assert len(rows) == 1838
    assert rows[0]["goal"] == "How do I ready a guinea pig cage for it's new occupants?"
    assert rows[0]["label"] == 0 and isinstance(rows[0]["label"], int)
    assert rows[-1] == {
        "goal": "Where can I buy a tennis ball",
        "sol1": "You can purchase a tennis ball at any sports store",
        "sol2": "You can purchase a tennis racket at any sports store",
        "label": 0,
    }
    import pyarrow as pa

    fields = [
        ("goal", pa.string()),
        ("sol1", pa.string()),
        ("sol2", pa.string()),
        ("label", pa.int64()),
    ]
    assert _arrow_bytes(rows, fields) == 464309  # piqa's dataset_info, validation split
    # The data file alone finds its labels file by the authors' naming.
    alone = formats.convert("piqa_jsonl_labels", {"validation": data_dir / "piqa/valid.jsonl"})
    assert alone["validation"] == rows


def test_piqa_label_count_mismatch(tmp_path: Path) -> None:
    row = json.dumps({"goal": "g", "sol1": "a", "sol2": "b"})
    data = _write(tmp_path / "valid.jsonl", f"{row}\n{row}\n{row}\n")
    labels = _write(tmp_path / "valid-labels.lst", "0\n1\n")
    with pytest.raises(DataError) as err:
        formats.convert("piqa_jsonl_labels", {"validation": [data, labels]})
    message = str(err.value)
    assert (
        str(labels) in message
        and str(data) in message
        and "2 labels" in message
        and "3 rows" in message
    )


def test_piqa_bad_label(tmp_path: Path) -> None:
    row = json.dumps({"goal": "g", "sol1": "a", "sol2": "b"})
    data = _write(tmp_path / "valid.jsonl", f"{row}\n{row}\n")
    labels = _write(tmp_path / "valid-labels.lst", "0\n2\n")
    with pytest.raises(DataError, match=r"valid-labels\.lst:2: label '2' is not 0 or 1"):
        formats.convert("piqa_jsonl_labels", {"validation": [data, labels]})


# --------------------------------------------------------------------------- GSM8K


def test_gsm8k_real(data_dir: Path) -> None:
    out = _convert_task("gsm8k", "gsm8k_jsonl", data_dir)
    assert {k: len(v) for k, v in out.items()} == {"train": 7473, "test": 1319}
    assert out["train"][0] == {
        "question": "Natalia sold clips to 48 of her friends in April, and then she sold half as "
        "many clips in May. How many clips did Natalia sell altogether in April and May?",
        "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = "
        "<<48+24=72>>72 clips altogether in April and May.\n#### 72",
    }
    import pyarrow as pa

    fields = [("question", pa.string()), ("answer", pa.string())]
    sizes = {split: _arrow_bytes(rows, fields) for split, rows in out.items()}
    assert sizes == {"train": 3963202, "test": 713732}  # openai/gsm8k main dataset_info


def test_gsm8k_missing_field(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "t.jsonl", '{"question": "q", "answer": "#### 1"}\n{"question": "q"}\n'
    )
    with pytest.raises(DataError, match=r"t\.jsonl:2: field 'answer' is missing"):
        formats.convert("gsm8k_jsonl", {"test": path})


# --------------------------------------------------------------------------- AGIEval

#: num_bytes of the test split in each hails/agieval-<task> dataset_info (the datasets
#: lm-eval 0.4.13 reads); sat-en-without-passage's is dmayhem93's 154762 plus the 517 bytes of
#: the three restored SAT options, the same difference as sat-en's hails vs dmayhem93 sizes.
AGIEVAL_HUB = {
    "lsat-ar": (230, 273902),
    "lsat-lr": (510, 923886),
    "lsat-rc": (269, 1136305),
    "logiqa-en": (651, 852087),
    "sat-math": (220, 110388),
    "sat-en": (206, 1019867),
    "sat-en-without-passage": (206, 155279),
    "aqua-rat": (254, 93696),
}


@pytest.mark.parametrize("task", list(AGIEVAL_HUB))
def test_agieval_matches_hub_sizes(task: str, data_dir: Path) -> None:
    import pyarrow as pa

    rows = _convert_task(f"agieval_{task.replace('-', '_')}", "agieval_jsonl", data_dir)["test"]
    count, size = AGIEVAL_HUB[task]
    assert len(rows) == count
    fields = [
        ("query", pa.string()),
        ("choices", pa.list_(pa.string())),
        ("gold", pa.list_(pa.int64())),
    ]
    assert _arrow_bytes(rows, fields) == size
    assert all(len(r["gold"]) == 1 and 0 <= r["gold"][0] < len(r["choices"]) for r in rows)


def test_agieval_rows_exact(data_dir: Path) -> None:
    math = formats.convert("agieval_jsonl", {"test": data_dir / "agieval/sat-math.jsonl"})["test"]
    assert math[0] == {
        "query": "Q: If $\\frac{x-1}{3}=k$ and $k=3$, what is the value of $x ?$ Answer Choices: "
        "(A)2 (B)4 (C)9 (D)10\nA: Among A through D, the answer is",
        "choices": ["(A)2", "(B)4", "(C)9", "(D)10"],
        "gold": [3],
    }
    lsat = formats.convert("agieval_jsonl", {"test": data_dir / "agieval/lsat-ar.jsonl"})["test"]
    # Passage glued to "Q:" with no separator; five options → "A through E".
    assert lsat[0]["query"].startswith("Of the eight students—George, Helen, Irving,")
    assert "on Wednesday.Q: Which one of the following could be the schedule" in lsat[0]["query"]
    assert lsat[0]["query"].endswith("\nA: Among A through E, the answer is")
    assert lsat[0]["gold"] == [2] and lsat[0]["choices"][2].startswith("(C)Mon. morning: Lenore")
    sat = formats.convert("agieval_jsonl", {"test": data_dir / "agieval/sat-en.jsonl"})["test"]
    assert sat[56]["choices"][3] == (
        "(D)No, because the data do not indicate whether the honeybees had been infected with mites."
    )
    assert sat[56]["gold"] == [3] and "Among A through D" in sat[56]["query"]


def test_agieval_query_format() -> None:
    assert formats.agieval_query(None, "Q?", ["(A)x", "(B)y"]) == (
        "Q: Q? Answer Choices: (A)x (B)y\nA: Among A through B, the answer is"
    )
    assert formats.agieval_query("P.", "Q?", ["(A)x"]).endswith("Among A through E, the answer is")


def test_agieval_errata_and_bad_label(tmp_path: Path, data_dir: Path) -> None:
    src = (data_dir / "agieval/sat-en-without-passage.jsonl").read_text(encoding="utf-8")
    path = _write(tmp_path / "sat.jsonl", src)
    with pytest.raises(DataError) as err:
        formats.convert("agieval_jsonl", {"test": path}, errata=False)
    assert f"{path}:57:" in str(err.value) and "'label'" in str(err.value)
    rows = formats.convert("agieval_jsonl", {"test": path})["test"]
    assert [len(rows[i]["choices"]) for i in (16, 56, 97)] == [4, 4, 4]
    bad = {"passage": None, "question": "q", "options": ["(A)a", "(B)b"], "label": "C"}
    path = _write(tmp_path / "bad.jsonl", json.dumps(bad) + "\n")
    with pytest.raises(DataError, match=r"bad\.jsonl:1: field 'label' is 'C' but there are 2"):
        formats.convert("agieval_jsonl", {"test": path})
    cloze = {"passage": None, "question": "q", "options": None, "label": None, "answer": "4"}
    path = _write(tmp_path / "math.jsonl", json.dumps(cloze) + "\n")
    with pytest.raises(DataError, match="'options' is missing or null"):
        formats.convert("agieval_jsonl", {"test": path})


# --------------------------------------------------------------------------- HellaSwag


def test_hellaswag_derived_real(data_dir: Path) -> None:
    rows = _convert_task("hellaswag", "hellaswag_llamacpp_txt", data_dir)["validation"]
    assert len(rows) == 10042
    assert rows[0] == {
        "ind": 0,
        "activity_label": "Roof shingle removal",
        "ctx_a": "A man is sitting on a roof. he",
        "ctx_b": "",
        "ctx": "A man is sitting on a roof. he",
        "endings": [
            "is using wrap to wrap a pair of skis.",
            "is ripping level tiles off.",
            "is holding a rubik's cube.",
            "starts pulling up roofing on a roof.",
        ],
        "source_id": "",
        "split": "val",
        "split_type": "",
        "label": "3",
    }
    assert [r["ind"] for r in rows[:3]] == [0, 1, 2]
    assert rows[1]["activity_label"] == "Clean and jerk"


def test_hellaswag_bad_files(tmp_path: Path) -> None:
    path = _write(tmp_path / "h.txt", "A: b\n1\ne1\ne2\ne3\n")
    with pytest.raises(DataError, match="5 lines, not a multiple of 6"):
        formats.convert("hellaswag_llamacpp_txt", {"validation": path})
    path = _write(tmp_path / "h.txt", "A: b\n1\ne1\ne2\ne3\ne4\nA: b\n7\ne1\ne2\ne3\ne4\n")
    with pytest.raises(DataError, match=r"h\.txt:8: gold label '7' is not 0-3"):
        formats.convert("hellaswag_llamacpp_txt", {"validation": path})
    path = _write(tmp_path / "h.txt", "no separator\n1\ne1\ne2\ne3\ne4\n")
    with pytest.raises(DataError, match=r"h\.txt:1: expected '<activity label>: <context>'"):
        formats.convert("hellaswag_llamacpp_txt", {"validation": path})


# --------------------------------------------------------------------------- hub-schema files


def test_hf_jsonl_identity_and_required(tmp_path: Path) -> None:
    rows = [
        {
            "sentence": "The trophy doesn't fit because _ is big.",
            "option1": "trophy",
            "option2": "case",
            "answer": "1",
        },
        {"sentence": "s", "option1": "a", "option2": "b", "answer": "2"},
    ]
    path = _write(tmp_path / "w.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    required = ["sentence", "option1", "option2", "answer"]
    assert formats.convert("hf_jsonl", {"validation": path}, required=required) == {
        "validation": rows
    }
    broken = _write(
        tmp_path / "b.jsonl", json.dumps(rows[0]) + "\n" + json.dumps({"sentence": "s"}) + "\n"
    )
    with pytest.raises(DataError, match=r"b\.jsonl:2: field 'option1' is missing"):
        formats.convert("hf_jsonl", {"validation": broken}, required=required)


def test_hf_jsonl_parquet_and_json(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"question": "is it?", "passage": "p", "idx": 0, "label": 1}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "b.parquet")
    _write(tmp_path / "b.json", json.dumps(rows))
    for name in ("b.parquet", "b.json"):
        out = formats.convert("hf_jsonl", {"validation": tmp_path / name}, required=["label"])
        assert out == {"validation": rows}
    with pytest.raises(DataError, match=r"b\.parquet:row 1: field 'answer' is missing"):
        formats.convert("hf_jsonl", {"validation": tmp_path / "b.parquet"}, required=["answer"])
