"""``hf_jsonl``: rows already in a hub dataset's schema (JSONL, JSON list or Parquet), passed through."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gapmeter.errors import DataError
from gapmeter.tasks import sources
from gapmeter.tasks.formats.registry import FileSpec, Rows, Splits, converter
from gapmeter.tasks.formats.rows import row_at, split_paths


def _read_rows_numbered(path: Path) -> list[tuple[int | str, dict[str, Any]]]:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".parquet":
        return [(f"row {i}", row) for i, row in enumerate(sources.read_parquet(path), 1)]
    if suffixes and suffixes[-1] == ".json":
        items = sources.read_json(path)
        for i, item in enumerate(items, 1):
            if not isinstance(item, dict):
                raise DataError(f"{path}: entry {i}: expected an object, got {type(item).__name__}")
        return [(f"entry {i}", item) for i, item in enumerate(items, 1)]
    return [(line, row) for line, row in sources.read_jsonl_numbered(path)]


@converter("hf_jsonl")
def hf_jsonl(files: Mapping[str, FileSpec], *, required: Sequence[str] = ()) -> Splits:
    """Rows already in a hub dataset's schema, passed through unchanged (identity format).

    For benchmarks whose original files are not available here (WinoGrande: ``sentence,
    option1, option2, answer``; BoolQ as in ``super_glue``: ``question, passage, idx, label``;
    HellaSwag in the ``Rowan/hellaswag`` schema): a JSONL export of the hub split, or the hub's
    own ``.parquet`` shard, or a ``.json`` list. Several files for one split are concatenated.
    ``required`` names fields every row must have.
    """
    out: Splits = {}
    for split, spec in files.items():
        rows: Rows = []
        for path in split_paths("hf_jsonl", split, spec):
            for line, row in _read_rows_numbered(path):
                missing = [name for name in required if name not in row]
                if missing:
                    raise DataError(
                        f"{row_at(path, line)}: field {missing[0]!r} is missing (this task needs "
                        f"{', '.join(required)})"
                    )
                rows.append(row)
        out[split] = rows
    return out
