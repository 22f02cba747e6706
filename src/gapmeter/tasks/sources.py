"""Generic readers for benchmark files (and users' own tables: ``.xlsx`` too), with errors a user can act on.

Every reader returns a plain list (no iterators): benchmark files are small, and a list lets the
caller check counts and alignment (PIQA's labels file) before converting anything. A malformed
row raises ``DataError("<path>:<line>: <problem>")`` so the CLI prints one line that says where
to look; a missing file raises a ``DataError`` that names the path and says how to point gapmeter
at the data (``--data_dir`` or ``GAPMETER_DATA_DIR``).

Compressed files (``.bz2``, ``.gz``, ``.xz``) are read transparently by every text reader.
Text is decoded as UTF-8; a leading byte-order mark is dropped (TruthfulQA's v1 CSV has one).
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
import lzma
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gapmeter.errors import ConfigError, DataError

#: Environment variable naming the folder that holds the original benchmark files.
DATA_DIR_ENV = "GAPMETER_DATA_DIR"

_WHERE_TO_SET = f"set --data_dir or {DATA_DIR_ENV} to the folder holding the benchmark files"

_OPENERS: dict[str, Callable[[Path], Any]] = {
    ".bz2": lambda p: bz2.open(p, "rb"),
    ".gz": lambda p: gzip.open(p, "rb"),
    ".xz": lambda p: lzma.open(p, "rb"),
}

Row = dict[str, Any]
NumberedRow = tuple[int, Row]


# --------------------------------------------------------------------------- data dir


def data_dir() -> Path:
    """The benchmark data folder.

    ``$GAPMETER_DATA_DIR`` if set; else ``shared/data`` beside the repository root (the layout of
    a development checkout: ``<repo>/../shared/data``); else ``./shared/data``. The result may
    not exist: callers report a missing file with ``resolve_data_path`` instead of failing here.
    """
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env).expanduser()
    beside_repo = Path(__file__).resolve().parents[3].parent / "shared" / "data"
    if beside_repo.is_dir():
        return beside_repo
    return Path("shared") / "data"


_default_data_dir = data_dir  # ``resolve_data_path``'s parameter shadows the function's name


def resolve_data_path(rel: str, data_dir: Path | None = None) -> Path:
    """``rel`` under the data folder (``data_dir`` or the default), which must exist."""
    root = data_dir if data_dir is not None else _default_data_dir()
    path = Path(rel) if Path(rel).is_absolute() else root / rel
    if not path.exists():
        raise DataError(f"{path}: data file not found under {root}; {_WHERE_TO_SET}")
    return path


# --------------------------------------------------------------------------- raw text


def _read_bytes(path: Path) -> bytes:
    path = Path(path)
    opener = _OPENERS.get(path.suffix.lower())
    try:
        if opener is None:
            return path.read_bytes()
        with opener(path) as fh:
            return fh.read()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found; {_WHERE_TO_SET}") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, expected a data file") from None
    except (OSError, EOFError, lzma.LZMAError) as err:
        raise DataError(f"{path}: cannot read ({err}); check the file is complete") from None


def _read_text(path: Path) -> str:
    """The whole file as text; a decoding error names the line it is on."""
    raw = _read_bytes(path)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise DataError(
            f"{path}:{line}: not valid UTF-8 (byte {err.start}); re-save the file as UTF-8"
        ) from None


def _short(value: Any, limit: int = 60) -> str:
    """``repr`` of a value cut to one short line, for error messages."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------- JSON


def read_jsonl_numbered(path: Path) -> list[NumberedRow]:
    """``(line_number, object)`` for every non-blank line of a JSON-lines file.

    Converters use the line numbers to report a bad field where the user can find it.
    """
    out: list[NumberedRow] = []
    for number, line in enumerate(_read_text(path).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(
                f"{path}:{number}: bad JSON ({err.msg} at column {err.colno})"
            ) from None
        if not isinstance(obj, dict):
            raise DataError(
                f"{path}:{number}: expected a JSON object per line, got {type(obj).__name__}"
            )
        out.append((number, obj))
    return out


def read_jsonl(path: Path) -> list[Row]:
    """Every object of a JSON-lines file, in file order (blank lines are skipped)."""
    return [row for _, row in read_jsonl_numbered(path)]


def read_json(path: Path, key: str | None = None) -> list[Any]:
    """A JSON file holding a list, or a dict holding the list under ``key``.

    Item order and, inside items, dict key order are kept: several hub datasets (TruthfulQA's
    ``mc1_targets``) were built by listing a dict's keys, so that order is data.
    """
    text = _read_text(path)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(
            f"{path}:{err.lineno}: bad JSON ({err.msg} at column {err.colno})"
        ) from None
    if key is not None:
        if not isinstance(obj, dict) or key not in obj:
            raise DataError(f"{path}: expected a JSON object with a {key!r} list at the top")
        obj = obj[key]
    if not isinstance(obj, list):
        raise DataError(f"{path}: expected a JSON list at the top, got {type(obj).__name__}")
    return obj


# --------------------------------------------------------------------------- CSV


def read_csv_numbered(
    path: Path, *, header: bool, columns: list[str] | None = None, delimiter: str = ","
) -> list[NumberedRow]:
    """``(line_number, row)`` for each record of a CSV/TSV file (line where the record starts).

    Quoted cells may span lines, so the line number is the record's first line. Cells are kept
    exactly as written (no stripping): the hub copies of these files keep their whitespace.
    ``columns`` names the cells of a header-less file, or replaces the header's names; every
    record must have exactly that many cells. Completely empty lines are skipped.
    """
    text = _read_text(path)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    names = list(columns) if columns is not None else None
    out: list[NumberedRow] = []
    start = 1
    header_pending = header
    try:
        for record in reader:
            line, start = start, reader.line_num + 1
            if not record:
                continue
            if header_pending:  # the file's own header names the cells unless ``columns`` does
                header_pending = False
                names = names if names is not None else record
                continue
            if names is None:
                raise ConfigError(f"{path}: a header-less CSV needs column names (columns=...)")
            if len(record) != len(names):
                raise DataError(
                    f"{path}:{line}: {len(record)} columns, expected {len(names)} "
                    f"({', '.join(names)})"
                )
            out.append((line, dict(zip(names, record, strict=True))))
    except csv.Error as err:
        raise DataError(f"{path}:{reader.line_num}: malformed CSV ({err})") from None
    return out


def read_csv(
    path: Path, *, header: bool, columns: list[str] | None = None, delimiter: str = ","
) -> list[dict[str, str]]:
    """Each record of a CSV/TSV file as a dict (see ``read_csv_numbered``)."""
    return [
        row
        for _, row in read_csv_numbered(path, header=header, columns=columns, delimiter=delimiter)
    ]


# --------------------------------------------------------------------------- other formats


def read_parquet(path: Path) -> list[Row]:
    """Every row of a Parquet file (e.g. a hub dataset's own shard), in file order."""
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found; {_WHERE_TO_SET}")
    try:
        return pq.read_table(path).to_pylist()
    except Exception as err:  # pyarrow raises several unrelated types for a bad file
        raise DataError(f"{path}: not a readable Parquet file ({_short(str(err), 120)})") from None


def _cell(value: Any) -> Any:
    """A spreadsheet cell as a reader of the CSV would see it: empty → ``""``, a whole float
    (Excel stores every number as one) → int, dates → ISO text."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def read_xlsx_numbered(path: Path, sheet: str | None = None) -> list[NumberedRow]:
    """``(sheet_row_number, row)`` for each non-empty row under the header row of an ``.xlsx``
    sheet (the first sheet unless ``sheet`` names one); cached formula values, not formulas."""
    try:
        import openpyxl
    except ImportError:
        raise ConfigError(f"{path}: reading .xlsx needs openpyxl: pip install openpyxl") from None
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as err:  # zipfile, KeyError, InvalidFileException: all "not a workbook"
        raise DataError(f"{path}: not a readable .xlsx workbook ({_short(str(err), 120)})") from None
    try:
        if sheet is not None and sheet not in book.sheetnames:
            raise DataError(f"{path}: no sheet {sheet!r} (sheets: {', '.join(book.sheetnames)})")
        rows = (book[sheet] if sheet is not None else book.worksheets[0]).iter_rows(values_only=True)
        header = next(rows, None)
        if header is None:
            return []
        names = [str(_cell(h)).strip() for h in header]
        while names and not names[-1]:
            names.pop()
        if len(set(names)) != len(names) or "" in names:
            raise DataError(f"{path}:row 1: header cells must be non-empty and distinct, got {names}")
        out: list[NumberedRow] = []
        for number, values in enumerate(rows, start=2):
            cells = [_cell(v) for v in values]
            if not any(c != "" for c in cells):
                continue
            extra = [c for c in cells[len(names):] if c != ""]
            if extra:
                raise DataError(f"{path}:row {number}: a value beyond the last named column ({_short(extra[0])})")
            cells += [""] * (len(names) - len(cells))
            out.append((number, dict(zip(names, cells[: len(names)], strict=True))))
        return out
    finally:
        book.close()


def read_text_lines(path: Path) -> list[str]:
    """The lines of a text file (``.bz2`` etc. decompressed), without line terminators.

    Lines are split on ``\\n`` only (a trailing ``\\r`` is dropped) so that characters such as
    U+0085 or U+2028 inside a line never split it, unlike ``str.splitlines``. A final newline
    does not produce an empty last line. Unlike the other readers this returns strings: a line
    of a labels file or of a line-oriented format is not a record on its own.
    """
    text = _read_text(path)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


# --------------------------------------------------------------------------- hub


def load_hub(path: str, name: str | None, split: str, revision: str | None = None) -> list[Row]:
    """One split of a HuggingFace hub dataset as a list of rows (needs ``datasets`` + network).

    Any failure to get the data (no network, unknown dataset or split, a gated repo) becomes a
    ``DataError`` naming the dataset and split, so the caller can fall back or tell the user to
    provide local files.
    """
    try:
        import datasets
    except ImportError:
        raise ConfigError(
            f"loading {path} from the HuggingFace hub needs the 'datasets' package: "
            "pip install gapmeter[hub]"
        ) from None
    label = path if name is None else f"{path} ({name})"
    where = f"@{revision}" if revision else ""
    try:
        ds = datasets.load_dataset(path, name, split=split, revision=revision)
    except Exception as err:  # network, auth, missing split: all mean "not available here"
        reason = _short(f"{type(err).__name__}: {err}", 160).replace("\n", " ")
        raise DataError(
            f"hub dataset {label}{where} split {split!r} is unavailable (offline or not "
            f"downloadable: {reason}); provide the original files and {_WHERE_TO_SET}"
        ) from None
    return [dict(row) for row in ds]
