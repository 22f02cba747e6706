"""``gsm8k_jsonl``: GSM8K JSONL → ``openai/gsm8k`` rows."""

from __future__ import annotations

from collections.abc import Mapping

from gapmeter.errors import DataError
from gapmeter.tasks import sources
from gapmeter.tasks.formats.registry import FileSpec, Rows, Splits, converter
from gapmeter.tasks.formats.rows import row_at, single_path, typed_field


@converter("gsm8k_jsonl")
def gsm8k_jsonl(files: Mapping[str, FileSpec]) -> Splits:
    """GSM8K ``{train,test}.jsonl`` → ``openai/gsm8k`` ``main`` rows ``{"question", "answer"}``.

    The answer keeps its ``<<...>>`` calculator annotations and ``#### <number>`` line, as on
    the hub (lm-eval's filters rely on the ``#### `` marker).
    """
    out: Splits = {}
    for split, spec in files.items():
        path = single_path("gsm8k_jsonl", split, spec)
        rows: Rows = []
        for line, row in sources.read_jsonl_numbered(path):
            where = row_at(path, line)
            question = typed_field(row, "question", where, str)
            answer = typed_field(row, "answer", where, str)
            if "#### " not in answer:
                raise DataError(f"{where}: field 'answer' has no '#### <number>' final answer")
            rows.append({"question": question, "answer": answer})
        out[split] = rows
    return out
