"""``agieval_jsonl``: AGIEval v1 English multiple-choice JSONL → ``hails/agieval-*`` rows."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gapmeter.errors import DataError
from gapmeter.tasks import sources
from gapmeter.tasks.formats.registry import FileSpec, Rows, Splits, converter
from gapmeter.tasks.formats.rows import row_at, single_path, str_list, typed_field

_LETTERS = "ABCDEFG"

#: Options missing from three SAT-en questions in AGIEval's original v1 files (microsoft/AGIEval
#: up to at least b1187aa). ruixiangcui/AGIEval later added them, and the hails/agieval-sat-en*
#: hub datasets lm-eval 0.4.13 reads were built from that fixed copy (commit 5c77d073): the
#: hub's dataset_info sizes match these files only with the options added. Keyed by question;
#: applied only to a row whose options are exactly the three listed (first option checked).
_AGIEVAL_MISSING_OPTIONS: dict[str, tuple[str, str]] = {
    "Which point about the resources that will be highly valued in space is implicit in "
    "Passage 1 and explicit in Passage 2 ?": (
        "(A)They may be different resources from those that are valuable on Earth.",
        "(D)They may increase in value as those same resources become rare on Earth.",
    ),
    "Do the data in the table provide support for the authors' claim that infection with "
    "varroa mites increases a honeybee's susceptibility to secondary infections?": (
        "(A)Yes, because the data provide evidence that infection with a pathogen caused the "
        "colonies to undergo colony collapse disorder.",
        "(D)No, because the data do not indicate whether the honeybees had been infected with "
        "mites.",
    ),
    "Based on the passage, in studying the Venus flytrap, Volkov and his colleagues made the "
    "most extensive use of which type of evidence?": (
        "(A)Mathematical models to predict the electrical charge required to close the Venus "
        "flytrap",
        "(D)Published theories of scientists who developed earlier models of the Venus flytrap",
    ),
}


def agieval_query(passage: str | None, question: str, options: list[str]) -> str:
    """AGIEval's zero-shot English multiple-choice prompt, as the hails/agieval-* hub data has it.

    Reproduces ``convert_zero_shot`` for ``english_qa_datasets`` in AGIEval's
    ``src/dataset_loader.py``: the passage with no separator, ``"Q: "``, the question, one
    space, ``"Answer Choices: "``, the options joined by single spaces (each keeps its own
    ``(A)`` prefix), a newline, then ``"A: Among A through <last letter>, the answer is"``.
    A one-option record counts as five options (AGIEval's rule, kept for fidelity).
    """
    count = len(options) if len(options) != 1 else 5
    return (
        (passage if passage is not None else "")
        + "Q: "
        + question
        + " "
        + "Answer Choices: "
        + " ".join(options)
        + "\n"
        + f"A: Among A through {_LETTERS[count - 1]}, the answer is"
    )


def _agieval_options(row: Mapping[str, Any], where: str, errata: bool) -> list[str]:
    if row.get("options") is None:
        raise DataError(
            f"{where}: field 'options' is missing or null; agieval_jsonl converts the English "
            "multiple-choice tasks (not the cloze task 'math')"
        )
    options = str_list(row, "options", where)
    question = row.get("question")
    fix = _AGIEVAL_MISSING_OPTIONS.get(question) if errata and isinstance(question, str) else None
    if fix is not None and len(options) == 3 and options[0] == fix[0]:
        options = [*options, fix[1]]
    if len(options) > len(_LETTERS):
        raise DataError(f"{where}: field 'options' has {len(options)} options; at most 7")
    return options


@converter("agieval_jsonl")
def agieval_jsonl(files: Mapping[str, FileSpec], *, errata: bool = True) -> Splits:
    """AGIEval v1 English multiple-choice JSONL (``passage, question, options, label, ...``) →
    the ``hails/agieval-<task>`` rows lm-eval 0.4.13 reads: ``{"query", "choices", "gold"}``.

    ``query`` is ``agieval_query(...)``; ``choices`` is the ``options`` list unchanged, letter
    prefixes included (``"(A)2"``), which is what lm-eval scores; ``gold`` is a one-item list
    with the label's 0-based index (``"C"`` → ``[2]``). Verified for lsat-ar, lsat-lr, lsat-rc,
    logiqa-en, sat-math, sat-en, sat-en-without-passage and aqua-rat: the converted splits have
    exactly the byte sizes recorded in the hub datasets' ``dataset_info``. The hub has one split,
    ``test``. ``errata`` adds the three SAT-en options missing from the v1 files (see
    ``_AGIEVAL_MISSING_OPTIONS``); without it one of those rows has a label beyond its options
    and is rejected.
    """
    out: Splits = {}
    for split, spec in files.items():
        path = single_path("agieval_jsonl", split, spec)
        rows: Rows = []
        for line, row in sources.read_jsonl_numbered(path):
            where = row_at(path, line)
            passage = typed_field(row, "passage", where, (str, type(None))) if "passage" in row else None
            question = typed_field(row, "question", where, str)
            options = _agieval_options(row, where, errata)
            label = typed_field(row, "label", where, str)
            if label not in _LETTERS[: len(options)]:
                raise DataError(
                    f"{where}: field 'label' is {sources._short(label)} but there are "
                    f"{len(options)} options ({_LETTERS[0]}-{_LETTERS[len(options) - 1]})"
                )
            rows.append(
                {
                    "query": agieval_query(passage, question, options),
                    "choices": options,
                    "gold": [_LETTERS.index(label)],
                }
            )
        out[split] = rows
    return out
