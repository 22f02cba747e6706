"""Terminal output that stays readable at any width, and JSON for scripts.

A rich table wider than the console wraps every cell over several lines or cuts values to
``…``; when stdout is a pipe rich assumes 80 columns (or ``$COLUMNS``), so that is the common
case, not the exception. ``print_table`` prints the table only when its natural width fits;
otherwise one record per block (the first cell, then ``column: value`` lines), soft-wrapped so
that no value is ever cut or broken by a newline (grep and copy keep working).

``emit_json`` is the ``--json`` output: one document on stdout and nothing else there.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from typing import Any

import click
from rich.console import Console, RenderableType
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

__all__ = ["WrappingGroup", "emit_json", "jsonable", "print_table", "redact_url", "stdout_console"]


class WrappingGroup(TyperGroup):
    """Plain ``--help`` of a command group that wraps each command's summary (its docstring's
    first sentence) instead of cutting it to one line with '...' as click does."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            cmd = self.get_command(ctx, name)
            if cmd is not None and not cmd.hidden:
                rows.append((name, cmd.get_short_help_str(limit=10_000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def stdout_console() -> Console:
    """The console for results. On a pipe lines are not wrapped by rich (soft wrap): a long path
    or URL stays one piece; in a terminal rich wraps prose at word boundaries."""
    return Console(soft_wrap=not sys.stdout.isatty())


def _is_empty(cell: RenderableType) -> bool:
    if isinstance(cell, Text):
        return not cell.plain.strip()
    return isinstance(cell, str) and not cell.strip()


def print_table(console: Console, table: Table) -> None:
    """``table`` as a table when it fits ``console.width`` without wrapping, else as records."""
    # Measured against an unbounded width: console.measure clamps to the console's own width.
    natural = Measurement.get(console, console.options.update_width(1_000_000), table).maximum
    if table.row_count == 0 or natural <= console.width:
        console.print(table)
        return
    if table.title:
        console.print(table.title, style="bold", soft_wrap=True)
    headers = [c.header for c in table.columns]
    columns = [list(c.cells) for c in table.columns]
    for r in range(table.row_count):
        first = True
        for header, cells in zip(headers, columns, strict=True):
            cell = cells[r]
            if _is_empty(cell):
                continue
            indent = "" if first else "  "
            label = "" if _is_empty(header) else header
            # Header and cell go out as separate pieces so each keeps its own markup handling.
            parts: list[Any] = [indent, label, ": " if label else "", cell]
            console.print(*parts, sep="", soft_wrap=True)
            first = False
    if table.caption:
        console.print(table.caption, soft_wrap=True)


def jsonable(obj: Any) -> Any:
    """Dataclasses, tuples, paths and non-finite floats made JSON-safe (NaN/inf become null:
    strict JSON parsers reject them)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [jsonable(v) for v in obj]
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if obj is None or isinstance(obj, bool | int | str):
        return obj
    if type(obj).__module__ == "numpy" and hasattr(obj, "item"):  # numpy scalars (int64 is no int)
        return jsonable(obj.item())
    return str(obj)


URL_KEYS = ("db_url", "store")


def redact_url(url: str) -> str:
    """A store URL without its password (``postgresql://user:secret@host`` → ``***@host``)."""
    if "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"


def _redact(doc: Any) -> Any:
    """Store URLs under ``URL_KEYS`` redacted, at any depth."""
    if isinstance(doc, list):
        return [_redact(v) for v in doc]
    if not isinstance(doc, dict):
        return doc
    out = {}
    for key, value in doc.items():
        out[key] = redact_url(value) if key in URL_KEYS and isinstance(value, str) else _redact(value)
    return out


def emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(_redact(jsonable(obj)), indent=2, allow_nan=False) + "\n")
    sys.stdout.flush()
