"""Served models whose replies a test scripts from the prompt: answering models with known right
and wrong answers, and judges with a known policy (correct, position-biased, unparseable), behind
``gapmeter serve``'s real app on 127.0.0.1 (``support.api_server.serving``)."""

from __future__ import annotations

import re
from collections.abc import Callable

from gapmeter.serve.models import Decoder, EchoServed, _EchoDecoder


class ScriptedServed(EchoServed):
    """``EchoServed`` (words as tokens) whose generation is ``script(prompt_text)``."""

    def __init__(self, name: str, script: Callable[[str], str]) -> None:
        super().__init__(name)
        self.script = script

    def decoder(self, ids: list[int], *, max_tokens: int, stops: list[str], temperature: float,
                seed: int | None, top_k: int) -> Decoder:
        return _EchoDecoder(self.script(self.decode(ids)), max_tokens, stops)


def answering(answers: dict[str, str]) -> Callable[[str], str]:
    """A model that answers ``Question: Q`` with ``answers[Q]`` (else "no idea")."""

    def script(prompt: str) -> str:
        found = re.findall(r"Question: (.*)\nAnswer:", prompt)
        return " " + answers.get(found[-1].strip(), "no idea") if found else " no idea"

    return script


def _section(prompt: str, name: str) -> str:
    found = re.search(rf"\[{re.escape(name)}\]\n(.*?)\n\n", prompt, re.S)
    return found.group(1) if found else ""


def fair_judge(prompt: str) -> str:
    """Grades by whether the answer contains the reference; pairwise prefers the answer that
    does (tie when both or neither). An answer containing UNREADABLE gets no verdict, ever; one
    containing LATE gets one only when asked again."""
    reference = _section(prompt, "Reference answer").lower()
    retry = "has no verdict in the required format" in prompt
    if "[Answer A]" in prompt:
        a, b = _section(prompt, "Answer A"), _section(prompt, "Answer B")
        if "UNREADABLE" in a + b:
            return " I cannot tell."
        good_a, good_b = reference in a.lower(), reference in b.lower()
        return " [[C]]" if good_a == good_b else (" A is right. [[A]]" if good_a else " B is right. [[B]]")
    answer = _section(prompt, "Answer to grade")
    if "UNREADABLE" in answer or ("LATE" in answer and not retry):
        return " It depends."
    good = reference in answer.lower()
    if "[[PASS]]" in prompt:
        return " [[PASS]]" if good else " [[FAIL]]"
    return " Matches the reference. [[9]]" if good else " Contradicts the reference. [[2]]"


def first_position_judge(prompt: str) -> str:
    """A judge with total position bias: whatever comes first wins."""
    return " The first one. [[A]]"
