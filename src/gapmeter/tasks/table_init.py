"""From a user's table to task YAML: which column plays which role, and the task documents.

``infer_columns`` names the question, reference answer, choices, id, category, human-label and
graded-answer columns from the header alone (common names, case and separators ignored), so ``gapmeter task
init`` asks nothing it can infer; every role can be given instead. ``task_documents`` writes one
task, or, when there is a category column, a family of one task per category plus a group that
aggregates them (each category keeps its own scores and CIs).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gapmeter.errors import ConfigError

#: Metrics written into a new task, for open answers and for choices; the user edits the YAML to
#: pick others (docs/tasks.md lists them). Each name must be registered for its output type
#: (scoring/metrics.py; checked when the YAML is loaded).
OPEN_ANSWER_METRICS: list[dict[str, Any]] = [
    {"metric": "exact_match", "ignore_case": True, "ignore_punctuation": True,
     "regexes_to_ignore": [r"^\s+", r"\s+$"]},
    {"metric": "token_f1"},  # partial credit for a right answer worded differently
    {"metric": "rougeL"},
]
CHOICE_METRICS: list[dict[str, Any]] = [{"metric": "acc"}]

# Header names per role, normalised (lower case, no separators), most specific first.
_NAMES: dict[str, tuple[str, ...]] = {
    "input": ("question", "input", "prompt", "query", "instruction", "problem", "text", "q"),
    "target": ("referenceanswer", "expectedanswer", "goldanswer", "answer", "reference", "target",
               "expected", "gold", "correct", "output", "label", "a"),
    "choices": ("choices", "options", "candidates"),
    "id": ("id", "itemid", "caseid", "qid", "uid", "questionid", "key"),
    "category": ("category", "subtask", "subject", "topic", "domain", "section", "type", "group"),
    "human_label": ("humanscore", "humanlabel", "humanrating", "humanjudgement", "humanjudgment",
                    "humangrade", "human"),
    "graded_answer": ("gradedanswer", "candidateanswer", "sampleanswer", "humangradedanswer", "candidate"),
}
_CHOICE_COLUMN = re.compile(r"^(?:choice|option|opt|answer)?[_ -]?([a-j]|[1-9])$", re.IGNORECASE)


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _choice_columns(header: Sequence[str]) -> list[str]:
    """``choice_a, choice_b, ...`` / ``A, B, C, D`` / ``option1, option2``: two or more in a row."""
    found = [(m.group(1).lower(), h) for h in header if (m := _CHOICE_COLUMN.match(h.strip()))]
    # One family only: all letters or all digits, consecutive from a/1.
    for first in ("a", "1"):
        keys = "abcdefghij" if first == "a" else "123456789"
        run = []
        for key in keys:
            match = [h for k, h in found if k == key]
            if not match:
                break
            run.append(match[0])
        if len(run) >= 2:
            return run
    return []


def infer_columns(header: Sequence[str], given: Mapping[str, Any], *, where: Path) -> dict[str, Any]:
    """Role → column(s): the ``given`` ones (checked to exist) plus those the header names."""
    columns: dict[str, Any] = {}
    for role, value in given.items():
        if value is None:
            continue
        names = value if isinstance(value, list) else [value]
        missing = [n for n in names if n not in header]
        if missing:
            raise ConfigError(f"{where}: no column {missing[0]!r} (--{role}_col); columns: {', '.join(header)}")
        columns[role] = value
    taken = {c for v in columns.values() for c in (v if isinstance(v, list) else [v])}
    if "choices" not in columns:
        letters = [c for c in _choice_columns(header) if c not in taken]
        if len(letters) >= 2:
            columns["choices"] = letters
            taken.update(letters)
    by_norm: dict[str, str] = {}
    for h in header:
        by_norm.setdefault(_norm(h), h)
    for role, aliases in _NAMES.items():
        if role in columns:
            continue
        hit = next((by_norm[n] for n in aliases if n in by_norm and by_norm[n] not in taken), None)
        if hit is not None:
            columns[role] = hit
            taken.add(hit)
    for role in ("input", "target"):
        if role not in columns:
            what = "question / input" if role == "input" else "reference answer"
            raise ConfigError(f"{where}: cannot tell which column is the {what}; pass --{role}_col "
                              f"(columns: {', '.join(header)})")
    return columns


def slug(text: str) -> str:
    out = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    return out or "x"


def _base_task(data_ref: str, columns: Mapping[str, Any], skip_invalid: bool) -> dict[str, Any]:
    options: dict[str, Any] = {"columns": dict(columns)}
    if skip_invalid:
        options["skip_invalid"] = True
    task: dict[str, Any] = {
        "description_text": f"your cases from {data_ref} (written by gapmeter task init; edit freely)",
        "source": {"local": {"format": "user_table", "files": {"test": data_ref}, "options": options}},
        "test_split": "test",
        "doc_to_text": "Question: {{input}}\nAnswer:",
        "target_delimiter": " ",
    }
    if columns.get("choices"):
        task |= {"output_type": "multiple_choice", "doc_to_choice": "choices", "doc_to_target": "answer",
                 "metric_list": [dict(m) for m in CHOICE_METRICS]}
    else:
        task |= {"output_type": "generate_until", "doc_to_target": "target",
                 "generation_kwargs": {"until": ["\n\n", "\nQuestion:"], "max_gen_toks": 256},
                 "metric_list": [dict(m) for m in OPEN_ANSWER_METRICS]}
    if columns.get("category"):
        task["cluster_by"] = "{{category}}"
    return task


def task_documents(name: str, data_ref: str, columns: Mapping[str, Any], categories: Sequence[str],
                   *, skip_invalid: bool) -> tuple[list[dict[str, Any]], list[str]]:
    """The YAML documents for the table and the names of the tasks they define (the group last)."""
    base = _base_task(data_ref, columns, skip_invalid)
    if not categories:
        return [{"task": name, **base}], [name]
    names: dict[str, str] = {}
    for category in categories:
        sub = f"{name}_{slug(category)}"
        while sub in names.values():
            sub += "_"
        names[category] = sub
    base.pop("cluster_by")  # one category per subtask
    base["source"]["local"]["options"]["category"] = "${category}"
    family = {
        "family": name,
        "defaults": base,
        "variants": [{"task": sub, "vars": {"category": cat}} for cat, sub in names.items()],
    }
    metric = base["metric_list"][0]["metric"]
    group = {
        "group": name,
        "description_text": f"your cases from {data_ref}, one subtask per category",
        "task": list(names.values()),
        "aggregate_metric_list": [{"metric": metric, "weight_by_size": True}],
    }
    return [family, group], [*names.values(), name]
