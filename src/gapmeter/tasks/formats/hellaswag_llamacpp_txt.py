"""``hellaswag_llamacpp_txt``: llama.cpp's derived HellaSwag text → ``Rowan/hellaswag``-schema rows."""

from __future__ import annotations

from collections.abc import Mapping

from gapmeter.errors import DataError
from gapmeter.tasks import sources
from gapmeter.tasks.formats.registry import FileSpec, Rows, Splits, converter
from gapmeter.tasks.formats.rows import row_at, single_path


@converter("hellaswag_llamacpp_txt")
def hellaswag_llamacpp_txt(files: Mapping[str, FileSpec], *, split_name: str = "val") -> Splits:
    """llama.cpp's HellaSwag text (6 lines per item: ``label: context``, gold 0-3, 4 endings) →
    rows in the ``Rowan/hellaswag`` schema, as far as the file allows.

    NOT comparable with lm-eval's numbers on the original data. The file keeps only
    ``activity_label + ": " + ctx`` (the hub's raw ``ctx = ctx_a + " " + ctx_b``), partly
    cleaned already: ``[header]``/``[step]``/``[substeps]`` removed, `` [title]`` → ``. ``,
    spaces stripped; other ``[...]`` remain (lm-eval's ``process_docs`` removes them). The
    ``ctx_a``/``ctx_b`` boundary is lost, so the context goes to ``ctx_a`` and ``ctx_b`` is
    ``""``: lm-eval's ``ctx_b.capitalize()`` quirk cannot be reproduced (item 0 reads "...on a
    roof. he" where lm-eval's prompt has "He"), and the endings were already cleaned. Missing
    fields get placeholders: ``ind`` is the item's position, ``source_id`` and ``split_type``
    are ``""``, ``split`` is ``split_name``. ``label`` is a string, as on the hub. For exact
    parity give ``hf_jsonl`` the hub's own rows (its parquet shard or a JSONL export).
    """
    out: Splits = {}
    for split, spec in files.items():
        path = single_path("hellaswag_llamacpp_txt", split, spec)
        lines = sources.read_text_lines(path)
        if len(lines) % 6:
            raise DataError(
                f"{path}: {len(lines)} lines, not a multiple of 6 (context, label, 4 endings per "
                "item); the file is truncated or not in llama.cpp's HellaSwag format"
            )
        rows: Rows = []
        for index in range(len(lines) // 6):
            first = index * 6
            head, label = lines[first], lines[first + 1]
            activity, sep, ctx = head.partition(": ")
            if not sep:
                raise DataError(
                    f"{row_at(path, first + 1)}: expected '<activity label>: <context>', got "
                    f"{sources._short(head)}"
                )
            if label not in ("0", "1", "2", "3"):
                raise DataError(
                    f"{row_at(path, first + 2)}: gold label {sources._short(label)} is not 0-3"
                )
            rows.append(
                {
                    "ind": index,
                    "activity_label": activity,
                    "ctx_a": ctx,
                    "ctx_b": "",
                    "ctx": ctx,
                    "endings": lines[first + 2 : first + 6],
                    "source_id": "",
                    "split": split_name,
                    "split_type": "",
                    "label": label,
                }
            )
        out[split] = rows
    return out
