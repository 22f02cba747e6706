"""``gapmeter task init FILE``: a user's table of cases → a task YAML beside it, and the command to
run it. Columns are inferred (``tasks/table_init.py``); every row is checked with the same
converter the run uses (``tasks/formats/user_table.py``), and nothing is written while any row is malformed
unless ``--skip_invalid`` (which the YAML then records, so the run skips and counts them too)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gapmeter.errors import ConfigError, DataError
from gapmeter.tasks.formats.user_table import (
    TABLE_SUFFIXES,
    problems_message,
    read_table,
    validate_table,
)
from gapmeter.tasks.table_init import infer_columns, slug, task_documents


class _Dumper(yaml.SafeDumper):
    """Strings with line breaks as one double-quoted line (``"Question: {{input}}\\nAnswer:"``)."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"' if "\n" in value else None)


_Dumper.add_representer(str, _str)


@dataclass
class InitResult:
    yaml_path: Path
    task: str  # the name to pass to --tasks (the group when there are categories)
    subtasks: list[str]
    columns: dict[str, Any]
    n_rows: int
    skipped: list[str] = field(default_factory=list)
    output_type: str = ""

    def run_command(self) -> str:
        return (f"gapmeter run --model hf --model_args pretrained=MODEL_DIR --include_path "
                f"{shlex.quote(str(self.yaml_path))} --tasks {self.task} --output_path runs/{self.task} --log_samples")


def init_task(data: Path, *, given: dict[str, Any], name: str | None = None, skip_invalid: bool = False,
              force: bool = False) -> InitResult:
    data = Path(data)
    if not data.is_file():
        raise ConfigError(f"{data}: no such file")
    if not any(s.lower() in TABLE_SUFFIXES for s in data.suffixes):
        raise ConfigError(f"{data}: unknown table type; use one of {', '.join(TABLE_SUFFIXES)}")
    rows = read_table(data)
    if not rows:
        raise DataError(f"{data}: no rows under the header")
    header = list(dict.fromkeys(k for _, row in rows for k in row))
    columns = infer_columns(header, given, where=data)
    docs, problems = validate_table(data, columns)
    if problems and not skip_invalid:
        raise DataError(problems_message(data, problems, how_to_skip="pass --skip_invalid"))
    if not docs:
        raise DataError(f"{data}: no valid rows")
    categories = list(dict.fromkeys(d["category"] for d in docs)) if "category" in columns else []
    task = slug(name or data.name.split(".")[0])
    documents, names = task_documents(task, f"./{data.name}", columns, categories, skip_invalid=skip_invalid)
    out = data.parent / f"{task}.yaml"
    if out.exists() and not force:
        raise ConfigError(f"{out}: exists; pass --force to overwrite it, or --name for another task name")
    roles = ", ".join(f"{role}={col}" for role, col in columns.items())
    header_comment = (f"# Written by `gapmeter task init {data.name}`: edit freely (prompt, metrics, generation).\n"
                      f"# Columns: {roles}\n")
    text = yaml.dump_all(documents, Dumper=_Dumper, sort_keys=False, allow_unicode=True, explicit_start=True,
                         width=110)
    out.write_text(header_comment + text, encoding="utf-8")
    kind = documents[0].get("defaults", documents[0]).get("output_type", "")
    return InitResult(out, names[-1], names[:-1] if categories else [], columns, len(docs) + len(problems),
                      problems, kind)


def init_command(data: Path, given: dict[str, Any], *, name: str | None, skip_invalid: bool, force: bool,
                 console: Any, err_console: Any) -> None:
    """The CLI's ``task init``: write the YAML, say what was inferred and how to run it."""
    choices = given.get("choices")
    if isinstance(choices, str) and "," in choices:  # --choices_col A,B,C,D: several columns
        given = {**given, "choices": [c.strip() for c in choices.split(",") if c.strip()]}
    result = init_task(data, given=given, name=name, skip_invalid=skip_invalid, force=force)
    for problem in result.skipped:
        err_console.print(f"skipped: {problem}", highlight=False, soft_wrap=True)
    roles = ", ".join(f"{role}={col}" for role, col in result.columns.items())
    console.print(f"wrote {result.yaml_path} ({result.output_type}, {result.n_rows - len(result.skipped)} items"
                  f"{f', {len(result.skipped)} malformed rows skipped' if result.skipped else ''})", highlight=False)
    console.print(f"columns: {roles}", highlight=False)
    if result.subtasks:
        console.print(f"group {result.task}: one subtask per category ({', '.join(result.subtasks)})",
                      highlight=False)
    if "id" not in result.columns:
        console.print("note: no id column: items are numbered by row, so keep the file's order (or add an id "
                      "column) to compare runs item by item", highlight=False)
    console.print("run it with:", highlight=False)
    console.print(f"  {result.run_command()}", highlight=False, soft_wrap=True)
