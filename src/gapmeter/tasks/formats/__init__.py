"""Converters from benchmarks' original files to the rows of the hub datasets lm-eval reads.

lm-evaluation-harness 0.4.13 reads its benchmarks from HuggingFace hub datasets. Offline,
gapmeter reads the benchmarks' *original* files instead and converts each row into exactly the
record the hub dataset yields: the same field names, types, nesting, value formatting and, just
as important, the same row order (few-shot examples are drawn with
``random.Random(1234).sample(train_rows, k)``, so a reordered split changes every prompt).

A task YAML names a converter and maps split names to files::

    source:
      local:
        format: arc_jsonl
        files: {train: arc/ARC-Easy/ARC-Easy-Train.jsonl, test: arc/ARC-Easy/ARC-Easy-Test.jsonl}

and ``convert(fmt, files, **options)`` returns ``{split: [row, ...]}`` with the same split names.
Every converter validates every row and raises ``DataError("<file>:<line>: ...")`` naming the
field at fault, so a damaged or mismatched file fails loudly instead of skewing a score.

One module per source format, each registering its converter with ``@converter(name)``
(``registry.py``); adding a format is one module plus its import below. Where the standard
local copy of a benchmark lives is said once, by its task YAML (``source.local``).
"""

from __future__ import annotations

# Imported for their @converter registration (FORMATS is complete once this package is imported).
from gapmeter.tasks.formats import (  # noqa: F401
    agieval_jsonl,
    arc_jsonl,
    gsm8k_jsonl,
    hellaswag_llamacpp_txt,
    hf_jsonl,
    mmlu_csv,
    openbookqa_jsonl,
    piqa_jsonl_labels,
    truthfulqa_mc_json,
    user_table,
)
from gapmeter.tasks.formats.agieval_jsonl import agieval_query
from gapmeter.tasks.formats.registry import (
    FORMATS,
    Converter,
    FileSpec,
    Rows,
    Splits,
    convert,
    converter,
)

__all__ = ["FORMATS", "Converter", "FileSpec", "Rows", "Splits", "agieval_query", "convert", "converter"]
