"""The converter registry: ``@converter(name)`` on a converter, ``convert(name, files, **options)``.

A converter takes ``{split: file or [files]}`` (and keyword-only options, the ``options:`` of a
task YAML's ``source.local``) and returns ``{split: [row, ...]}``. The package imports every
converter module, so ``FORMATS`` is complete once ``gapmeter.tasks.formats`` is imported.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from gapmeter.errors import ConfigError

Rows = list[dict[str, Any]]
Splits = dict[str, Rows]
FileSpec = Path | str | Sequence[Path | str]
Converter = Callable[..., Splits]

#: format name → converter.
FORMATS: dict[str, Converter] = {}


F = TypeVar("F", bound=Converter)


def converter(name: str) -> Callable[[F], F]:
    """Registers a converter under the format name task YAMLs use (``source.local.format``)."""

    def register(fn: F) -> F:
        if name in FORMATS:
            raise AssertionError(f"data format {name!r} is registered twice")
        FORMATS[name] = fn
        return fn

    return register


def _check_options(fmt: str, fn: Converter, options: Mapping[str, Any]) -> None:
    accepted = [
        name
        for name, p in inspect.signature(fn).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        takes = ", ".join(accepted) if accepted else "no options"
        raise ConfigError(f"format {fmt}: unknown option {unknown[0]!r} (it takes: {takes})")


def convert(fmt: str, files: Mapping[str, FileSpec], **options: Any) -> Splits:
    """``{split: rows}`` for the original ``files`` (``{split: path or [paths]}``) of format ``fmt``.

    Split names are passed through: map each hub split name to the file it comes from.
    """
    fn = FORMATS.get(fmt)
    if fn is None:
        raise ConfigError(f"unknown data format {fmt!r}; known formats: {', '.join(sorted(FORMATS))}")
    _check_options(fmt, fn, options)
    return fn(files, **options)
