"""Prompts as chat turns: lm-evaluation-harness 0.4.13's ``--apply_chat_template``,
``--fewshot_as_multiturn`` and ``--system_instruction`` (``api/task.py: fewshot_context``,
``build_qa_turn``; ``api/utils.py: Message``, ``multiturn_to_singleturn``).

A prompt is a list of messages: an optional system message (the system instruction and the task's
description, joined by the few-shot delimiter), a user/assistant pair per few-shot example and a
user message for the evaluated doc. Without a chat template the messages are joined as plain text
(each with its delimiter), which is the plain layout plus the system instruction in front. With
one, the backend renders them: every turn as its own message (multiturn), or all but the system
message collapsed into one user message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

# (messages, add_generation_prompt) -> the prompt string the backend will see
ChatRender = Callable[[list[dict[str, str]], bool], str]


@dataclass(frozen=True)
class PromptFormat:
    """How prompts are laid out beyond the task's own templates (``None`` fields: lm-eval's default)."""

    system_instruction: str | None = None
    render: ChatRender | None = None  # set when --apply_chat_template is on
    fewshot_as_multiturn: bool = False

    @property
    def chat(self) -> bool:
        return self.render is not None


@dataclass
class Message:
    role: str  # system | user | assistant
    content: str
    delimiter: str = ""  # appended when rendered as plain text, never sent as chat content

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}

    def to_text(self) -> str:
        return self.content + self.delimiter


def maybe_delimit(prefix: str | None, suffix: str | None, delimiter: str = " ") -> str:
    """Join two texts, with ``delimiter`` only when neither has whitespace at the join."""
    if not prefix:
        return suffix or ""
    if not suffix:
        return prefix
    if prefix[-1].isspace() or suffix[0].isspace():
        return prefix + suffix
    return prefix + delimiter + suffix


def qa_turn(question: str, answer: str | None, *, target_delimiter: str, fewshot_delimiter: str) -> list[Message]:
    """A user message and, when there is an answer, the assistant's (``build_qa_turn``; gapmeter's
    tasks have no ``gen_prefix``)."""
    has_answer = answer is not None and answer != ""
    turn = [Message("user", question, target_delimiter if has_answer else "")]
    if has_answer:
        assert answer is not None
        turn.append(Message("assistant", answer, fewshot_delimiter))
    return turn


def single_turn(messages: list[Message]) -> list[dict[str, str]]:
    """Everything after the system message as one user message (``multiturn_to_singleturn``)."""
    system, rest = (messages[0], messages[1:]) if messages[0].role == "system" else (None, messages)
    if rest[-1].role == "assistant":
        users = rest[:-1]
        text = "".join(m.to_text() for m in users[:-1]) + users[-1].content
        out = [{"role": "user", "content": text}, rest[-1].to_dict()]
    else:
        text = "".join(m.to_text() for m in rest[:-1]) + rest[-1].content
        out = [{"role": "user", "content": text}]
    return [system.to_dict(), *out] if system is not None else out


def render(messages: list[Message], fmt: PromptFormat) -> str:
    """The prompt string: plain text, or the backend's rendering of the chat."""
    if fmt.render is None:
        return "".join(m.to_text() for m in messages)
    chat = [m.to_dict() for m in messages] if fmt.fewshot_as_multiturn else single_turn(messages)
    # gapmeter's tasks have no gen_prefix, so the prompt always ends with the generation prompt
    return fmt.render(chat, True)
