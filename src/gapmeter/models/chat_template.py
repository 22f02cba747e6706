"""``--apply_chat_template [NAME]`` for a HuggingFace tokenizer, as lm-evaluation-harness 0.4.13
does it (``api/model.py: TemplateLM.chat_template``, ``models/huggingface.py: apply_chat_template``,
``models/api_models.py: TemplateAPI.apply_chat_template``).

Two things, kept apart as lm-eval keeps them: which template is *recorded* (results.json's
``chat_template`` and its sha; a NAME picks an entry of a tokenizer's dict of templates, and an
unknown NAME is an error), and how a chat is *rendered*: ``tokenizer.apply_chat_template`` with
its own default template, ``add_generation_prompt=True`` and ``continue_final_message`` its
opposite. (lm-eval renders with the tokenizer's default even when NAME picks another entry; we do
the same, so prompts stay identical.) The ``hf`` backend retries without the system message when
the template rejects it; the API backend does not (lm-eval's ``local-completions`` does not).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gapmeter.errors import ConfigError
from gapmeter.notices import notice


@dataclass(frozen=True)
class ChatTemplate:
    """What a backend does with ``--apply_chat_template``."""

    source: str | None  # recorded as results.json's chat_template ("" when the server applies it)
    render: Callable[[list[dict[str, str]], bool], str]  # (messages, add_generation_prompt) -> prompt


def recorded_template(tokenizer: Any, name: str | None, *, where: str) -> str:
    """The template lm-eval's ``chat_template(NAME or True)`` selects; a tokenizer without one is
    the error lm-eval ends with (transformers refuses to render), said before any work."""
    template = getattr(tokenizer, "chat_template", None) or getattr(tokenizer, "default_chat_template", None)
    if not template:
        raise ConfigError(
            f"--apply_chat_template: the tokenizer of {where} has no chat template "
            "(tokenizer.chat_template is not set); use a model with one, or drop the option"
        )
    if isinstance(template, dict):
        if name is not None:
            if name not in template:
                raise ConfigError(
                    f"--apply_chat_template {name}: the tokenizer of {where} has no template of that "
                    f"name (it has: {', '.join(sorted(template))})"
                )
            return str(template[name])
        if "default" not in template:
            raise ConfigError(
                f"--apply_chat_template: the tokenizer of {where} has several chat templates and no "
                f"default; name one (it has: {', '.join(sorted(template))})"
            )
        return str(template["default"])
    if name is not None:
        notice(f"--apply_chat_template {name}: the tokenizer of {where} has a single chat template; "
               "it is used (as lm-eval does)")
    return str(template)


def hf_renderer(tokenizer: Any, *, retry_without_system: bool) -> Callable[[list[dict[str, str]], bool], str]:
    import jinja2

    def render(messages: list[dict[str, str]], add_generation_prompt: bool) -> str:
        def apply(chat: list[dict[str, str]]) -> str:
            return str(tokenizer.apply_chat_template(
                chat, tokenize=False, add_generation_prompt=add_generation_prompt,
                continue_final_message=not add_generation_prompt,
            ))

        try:
            return apply(messages)
        except jinja2.exceptions.TemplateError as err:
            if not retry_without_system:
                raise ConfigError(f"--apply_chat_template: the chat template failed: {err}") from None
            notice("the chat template rejected the system message; rendering without it (as lm-eval does)")
            try:
                return apply([m for m in messages if m["role"] != "system"])
            except jinja2.exceptions.TemplateError as again:
                raise ConfigError(f"--apply_chat_template: the chat template failed: {again}") from None

    return render


def hf_chat_template(tokenizer: Any, name: str | None, *, where: str, retry_without_system: bool) -> ChatTemplate:
    return ChatTemplate(recorded_template(tokenizer, name, where=where),
                        hf_renderer(tokenizer, retry_without_system=retry_without_system))
