"""Judge prompts and the parsing of their verdicts.

The formats follow the MT-Bench judge (Zheng et al., 2023): a short justification, then the
verdict in double brackets (``[[7]]``, ``[[PASS]]``, ``[[A]]``), which a model rarely writes by
accident. A reply without a readable verdict is asked once more with ``retry_prompt``; if it
still has none the item is counted as unparseable, never scored.
"""

from __future__ import annotations

import re
from typing import Literal

Scale = Literal["1-10", "pass_fail"]
SCALES: tuple[str, ...] = ("1-10", "pass_fail")

DEFAULT_RUBRIC = (
    "The answer must agree with the reference answer on every fact that matters to the user; "
    "it must not invent facts or steps; a shorter answer is not worse if it is complete."
)

_SCALE_TEXT = {
    "1-10": "an integer from 1 (wrong or useless) to 10 (as correct and helpful as the reference), "
            "written as [[N]], e.g. [[7]]",
    "pass_fail": "[[PASS]] if the answer is acceptable under the rubric, else [[FAIL]]",
}


def single_prompt(question: str, reference: str, answer: str, *, rubric: str, scale: Scale) -> str:
    return (
        "You are grading an assistant's answer to a user's question against a reference answer.\n"
        f"Rubric: {rubric.strip()}\n\n"
        f"[Question]\n{question.strip()}\n\n[Reference answer]\n{reference.strip()}\n\n"
        f"[Answer to grade]\n{answer.strip()}\n\n"
        f"Give a one-sentence justification, then on the last line the verdict: {_SCALE_TEXT[scale]}.\n"
        "Justification:"
    )


def pairwise_prompt(question: str, reference: str, first: str, second: str, *, rubric: str) -> str:
    return (
        "You are comparing two assistants' answers to the same user question, using a reference answer.\n"
        f"Rubric: {rubric.strip()}\n"
        "Do not let the order of the answers or their length influence you.\n\n"
        f"[Question]\n{question.strip()}\n\n[Reference answer]\n{reference.strip()}\n\n"
        f"[Answer A]\n{first.strip()}\n\n[Answer B]\n{second.strip()}\n\n"
        "Give a one-sentence justification, then on the last line the verdict: [[A]] if A is better, "
        "[[B]] if B is better, [[C]] for a tie.\nJustification:"
    )


def retry_prompt(prompt: str, reply: str, kind: str) -> str:
    """The same question again, with the unreadable reply and the required format spelled out."""
    example = {"1-10": "[[7]]", "pass_fail": "[[PASS]] or [[FAIL]]", "pairwise": "[[A]], [[B]] or [[C]]"}[kind]
    return f"{prompt} {reply.strip()}\n\nYour reply has no verdict in the required format. Reply with the verdict only: {example}\nVerdict:"


_BRACKETS = re.compile(r"\[\[\s*([^\[\]]{1,10}?)\s*\]\]")
_RATING = re.compile(r"(?:rating|score|verdict)\s*[:=]\s*(\d+(?:\.\d+)?)|\b(\d+(?:\.\d+)?)\s*/\s*10\b", re.IGNORECASE)


def parse_single(reply: str, scale: Scale) -> float | None:
    """The verdict as a number (1–10, or 1.0/0.0 for pass/fail), or None when there is none."""
    tokens = _BRACKETS.findall(reply)
    if scale == "pass_fail":
        words = [t.upper() for t in tokens if t.upper() in ("PASS", "FAIL")]
        if not words:
            bare = re.findall(r"\b(PASS|FAIL)\b", reply.upper())
            words = bare if len(set(bare)) == 1 else []
        return None if not words else (1.0 if words[-1] == "PASS" else 0.0)
    numbers = [t for t in tokens if re.fullmatch(r"\d+(?:\.\d+)?", t)]
    if not numbers:
        numbers = [a or b for a, b in _RATING.findall(reply)]
    if not numbers:
        return None
    value = float(numbers[-1])
    return value if 1.0 <= value <= 10.0 else None


def parse_pairwise(reply: str) -> str | None:
    """``"A"``, ``"B"`` or ``"tie"`` from the reply, or None."""
    tokens = [t.upper() for t in _BRACKETS.findall(reply) if t.upper() in ("A", "B", "C", "TIE")]
    if not tokens:
        return None
    return "tie" if tokens[-1] in ("C", "TIE") else tokens[-1]
