"""Row checks shared by the converters: file specs → paths, typed fields, one-line DataErrors."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gapmeter.errors import ConfigError, DataError
from gapmeter.tasks import sources
from gapmeter.tasks.formats.registry import FileSpec


def split_paths(fmt: str, split: str, spec: FileSpec) -> list[Path]:
    if isinstance(spec, str | Path):
        return [Path(spec)]
    paths = [Path(p) for p in spec]
    if not paths:
        raise ConfigError(f"format {fmt}: split {split!r} has an empty file list")
    return paths


def single_path(fmt: str, split: str, spec: FileSpec) -> Path:
    paths = split_paths(fmt, split, spec)
    if len(paths) != 1:
        raise ConfigError(f"format {fmt}: split {split!r} takes one file, got {len(paths)}")
    return paths[0]


def row_at(path: Path, line: int | str) -> str:
    return f"{path}:{line}"


def typed_field(row: Mapping[str, Any], name: str, where: str, kind: type | tuple[type, ...]) -> Any:
    """``row[name]``, checked to exist and to have type ``kind`` (a one-line DataError if not)."""
    if name not in row:
        raise DataError(f"{where}: field {name!r} is missing")
    value = row[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise DataError(
            f"{where}: field {name!r} must be {names}, got {type(value).__name__} "
            f"{sources._short(value)}"
        )
    return value


def str_list(row: Mapping[str, Any], name: str, where: str) -> list[str]:
    value = typed_field(row, name, where, list)
    if not value or not all(isinstance(v, str) for v in value):
        raise DataError(f"{where}: field {name!r} must be a non-empty list of strings")
    return value
