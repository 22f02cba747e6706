"""``piqa_jsonl_labels``: PIQA JSONL + labels file → ``baber/piqa`` rows."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from gapmeter.errors import ConfigError, DataError
from gapmeter.tasks import sources
from gapmeter.tasks.formats.registry import FileSpec, Rows, Splits, converter
from gapmeter.tasks.formats.rows import row_at, split_paths, typed_field


def _piqa_pair(split: str, spec: FileSpec) -> tuple[Path, Path]:
    paths = split_paths("piqa_jsonl_labels", split, spec)
    if len(paths) == 2:
        return paths[0], paths[1]
    if len(paths) == 1:  # valid.jsonl → valid-labels.lst, the authors' naming
        data = paths[0]
        return data, data.with_name(f"{data.name.split('.')[0]}-labels.lst")
    raise ConfigError(
        f"format piqa_jsonl_labels: split {split!r} takes [data.jsonl, labels.lst], "
        f"got {len(paths)} files"
    )


@converter("piqa_jsonl_labels")
def piqa_jsonl_labels(files: Mapping[str, FileSpec]) -> Splits:
    """PIQA ``valid.jsonl`` + ``valid-labels.lst`` → ``baber/piqa`` rows
    ``{"goal", "sol1", "sol2", "label": 0|1}`` (lm-eval 0.4.13's piqa reads ``baber/piqa``,
    a copy of the original ``piqa`` dataset: the same fields and order).

    Each split maps to ``[data.jsonl, labels.lst]`` (or just the data file, whose labels file is
    then ``<name>-labels.lst`` beside it). The two files are line-aligned and must have the same
    number of rows.
    """
    out: Splits = {}
    for split, spec in files.items():
        data_path, labels_path = _piqa_pair(split, spec)
        records = sources.read_jsonl_numbered(data_path)
        labels = sources.read_text_lines(labels_path)
        if len(labels) != len(records):
            raise DataError(
                f"{labels_path}: {len(labels)} labels but {data_path} has {len(records)} rows; "
                "the two files must be line-aligned (same number of lines)"
            )
        rows: Rows = []
        for number, ((line, row), label) in enumerate(zip(records, labels, strict=True), 1):
            where = row_at(data_path, line)
            if label.strip() not in ("0", "1"):
                raise DataError(
                    f"{row_at(labels_path, number)}: label {sources._short(label)} is not 0 or 1"
                )
            rows.append(
                {
                    "goal": typed_field(row, "goal", where, str),
                    "sol1": typed_field(row, "sol1", where, str),
                    "sol2": typed_field(row, "sol2", where, str),
                    "label": int(label.strip()),
                }
            )
        out[split] = rows
    return out
