"""A user's own cases in a table (CSV, JSONL, Parquet, XLSX) → validated docs.

``gapmeter task init`` writes a task whose source is this converter (format ``user_table``), so the
file is read and checked the same way at init and at every run. Each row becomes::

    {"id": str, "input": str, "target": str,              # every task
     "choices": [str, ...], "answer": int,                # when the table has choices
     "category": str,                                      # when those columns exist
     "graded_answer": str, "human_label": str}             # a human's grade of an answer
                                                          # (calibrates `gapmeter judge`)

``columns`` maps these roles to the table's column names (``choices`` is one list column or a list
of columns, e.g. ``[A, B, C, D]``). Every malformed row is named with its file, row and field; the
file is refused unless ``skip_invalid`` is true, and then the skipped rows travel with the docs
(``TableRows.skipped``) so that the run counts them in results.json.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gapmeter.errors import ConfigError, DataError
from gapmeter.tasks import sources
from gapmeter.tasks.formats.registry import converter

ROLES = ("input", "target", "choices", "id", "category", "human_label", "graded_answer")
TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json", ".parquet", ".xlsx")
_LETTERS = "ABCDEFGHIJ"
#: How many malformed rows an error message lists before it says "and N more".
_LISTED = 50


class TableRows(list[dict[str, Any]]):
    """The valid docs of a table, and one ``file:row: field ...: problem`` line per skipped row."""

    def __init__(self, rows: Sequence[dict[str, Any]], skipped: Sequence[str] = ()) -> None:
        super().__init__(rows)
        self.skipped = list(skipped)


def read_table(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """``(where, row)`` per row of a table file; ``where`` is ``file:line`` or ``file:row N``."""
    path = Path(path)
    suffix = next((s for s in reversed([x.lower() for x in path.suffixes]) if s in TABLE_SUFFIXES), "")
    if suffix in (".csv", ".tsv"):
        delimiter = "\t" if suffix == ".tsv" else ","
        return [(f"{path}:{line}", row) for line, row in
                sources.read_csv_numbered(path, header=True, delimiter=delimiter)]
    if suffix == ".xlsx":
        return [(f"{path}:row {n}", row) for n, row in sources.read_xlsx_numbered(path)]
    if suffix == ".parquet":
        return [(f"{path}:row {i}", row) for i, row in enumerate(sources.read_parquet(path), 1)]
    if suffix == ".jsonl":
        return [(f"{path}:{line}", row) for line, row in sources.read_jsonl_numbered(path)]
    if suffix == ".json":
        items = sources.read_json(path)
        bad = next((i for i, item in enumerate(items, 1) if not isinstance(item, dict)), None)
        if bad is not None:
            raise DataError(f"{path}:entry {bad}: expected an object")
        return [(f"{path}:entry {i}", item) for i, item in enumerate(items, 1)]
    raise ConfigError(f"{path}: unknown table type; use one of {', '.join(TABLE_SUFFIXES)}")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value.strip() if isinstance(value, str) else str(value)


def _choice_list(row: Mapping[str, Any], spec: str | list[str], where: str) -> list[str]:
    """The row's choices: one list column (a list, or JSON text of one), or several columns
    whose empty cells are left out (a 3-option row in a 4-column table)."""
    if isinstance(spec, list):
        return [t for t in (_text(row.get(c)) for c in spec) if t]
    value: Any = row.get(spec)
    if isinstance(value, str) and value.strip().startswith("["):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as err:
            raise DataError(f"{where}: field {spec!r}: not a JSON list ({err.msg})") from None
    if hasattr(value, "tolist"):
        value = value.tolist()
    if not isinstance(value, list):
        raise DataError(f"{where}: field {spec!r}: expected a list of choices, got {sources._short(value)}")
    return [_text(v) for v in value]


def _gold_index(target: str, choices: list[str], present: list[str] | None, spec: str | list[str],
                where: str, field: str) -> int:
    """The answer as an index into ``choices``: a choice column's name or letter (``B``: the
    second choice column, wherever empty ones were left out), the choice's text, or a 0-based index.
    ``present`` are the choice columns that had a value (None for a list column)."""
    upper = target.upper()
    if present is not None and isinstance(spec, list):
        column = target if target in spec else spec[_LETTERS.index(upper)] if (
            len(upper) == 1 and upper in _LETTERS[: len(spec)]) else None
        if column is not None:
            if column not in present:
                raise DataError(f"{where}: field {field!r}: the answer {target!r} names choice column {column!r}, "
                                "which is empty")
            return present.index(column)
    elif len(upper) == 1 and upper in _LETTERS[: len(choices)]:
        return _LETTERS.index(upper)
    if target in choices:
        return choices.index(target)
    if target.isdigit() and int(target) < len(choices):
        return int(target)
    raise DataError(
        f"{where}: field {field!r}: {sources._short(target)} is none of the {len(choices)} choices "
        f"(give a letter A-{_LETTERS[len(choices) - 1]}, the choice's text or a 0-based index)"
    )


def row_doc(row: Mapping[str, Any], columns: Mapping[str, Any], where: str) -> dict[str, Any]:
    """One row as a doc, or a ``DataError`` naming the row and the field at fault."""
    doc: dict[str, Any] = {}
    for role in ("input", "target"):
        name = columns[role]
        if name not in row:
            raise DataError(f"{where}: field {name!r} is missing")
        doc[role] = _text(row[name])
        if not doc[role]:
            raise DataError(f"{where}: field {name!r} ({role}) is empty")
    if columns.get("choices"):
        spec = columns["choices"]
        choices = _choice_list(row, spec, where)
        present = [c for c in spec if _text(row.get(c))] if isinstance(spec, list) else None
        field = spec if isinstance(spec, str) else ", ".join(spec)
        if len(choices) < 2:
            raise DataError(f"{where}: field {field!r}: needs at least 2 non-empty choices, has {len(choices)}")
        if any(not c for c in choices):
            raise DataError(f"{where}: field {field!r}: a choice is empty")
        doc["choices"] = choices
        doc["answer"] = _gold_index(doc["target"], choices, present, spec, where, columns["target"])
        doc["target"] = choices[doc["answer"]]
    for role in ("id", "category"):
        name = columns.get(role)
        if name:
            doc[role] = _text(row.get(name))
            if not doc[role]:
                raise DataError(f"{where}: field {name!r} ({role}) is empty")
    for role in ("graded_answer", "human_label"):
        name = columns.get(role)
        if name and _text(row.get(name)):
            doc[role] = _text(row.get(name))
    return doc


def validate_table(path: Path, columns: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """Every row checked: ``(docs of the valid rows, one problem line per malformed row)``.

    Ids must be unique (a duplicate is a malformed row). Without an id column a row's id is its
    1-based position: items then pair across runs only while the file keeps its order.
    """
    docs: list[dict[str, Any]] = []
    problems: list[str] = []
    seen: dict[str, str] = {}
    for position, (where, row) in enumerate(read_table(path), 1):
        try:
            doc = row_doc(row, columns, where)
        except DataError as err:
            problems.append(str(err))
            continue
        if "id" in doc:
            if doc["id"] in seen:
                problems.append(f"{where}: field {columns['id']!r}: id {doc['id']!r} repeats {seen[doc['id']]}")
                continue
            seen[doc["id"]] = where
        else:
            doc["id"] = str(position)
        docs.append({"id": doc.pop("id"), **doc})
    return docs, problems


_AT_RUN = "set skip_invalid: true in the task YAML's source options (or `gapmeter task init --skip_invalid`)"


def problems_message(path: Path, problems: Sequence[str], *, how_to_skip: str = _AT_RUN) -> str:
    listed = "\n".join(f"  {p}" for p in problems[:_LISTED])
    more = f"\n  ... and {len(problems) - _LISTED} more" if len(problems) > _LISTED else ""
    return (f"{path}: {len(problems)} malformed row(s); fix them, or {how_to_skip} to run without them "
            f"(they are counted in results.json):\n{listed}{more}")


@converter("user_table")  # a user's own cases (`gapmeter task init`)
def user_table(
    files: Mapping[str, Any],
    *,
    columns: Mapping[str, Any],
    category: str | None = None,
    skip_invalid: bool = False,
) -> dict[str, list[dict[str, Any]]]:
    """The ``user_table`` format: each split's table validated (see module doc); ``category``
    keeps only that category's rows (one subtask per category)."""
    unknown = sorted(set(columns) - set(ROLES))
    if unknown or not columns.get("input") or not columns.get("target"):
        raise ConfigError(f"format user_table: columns needs input and target (roles: {', '.join(ROLES)}), "
                          f"got {dict(columns)}")
    if category is not None and not columns.get("category"):
        raise ConfigError("format user_table: category= needs a category column in columns")
    out: dict[str, list[dict[str, Any]]] = {}
    for split, spec in files.items():
        paths = [spec] if isinstance(spec, str | Path) else list(spec)
        if len(paths) != 1:
            raise ConfigError(f"format user_table: split {split!r} takes one file, got {len(paths)}")
        path = Path(paths[0])
        docs, problems = validate_table(path, columns)
        if problems and not skip_invalid:
            raise DataError(problems_message(path, problems))
        if category is not None:
            docs = [d for d in docs if d["category"] == category]
        out[split] = TableRows(docs, problems)
    return out
