"""Prompt templates: Jinja2 in a sandbox.

Task YAML files may come from anyone (a user's scenario, a shared catalogue), so templates are
rendered by an ``ImmutableSandboxedEnvironment``: no attribute access to internals, no mutation.
Rendering rules match lm-evaluation-harness's (StrictUndefined, trailing newline kept, a
``regex_replace`` filter) so built-in prompts come out byte-identical.
"""

from __future__ import annotations

import ast
import re
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from gapmeter.errors import ConfigError


def _regex_replace(string: str, pattern: str, repl: str, count: int = 0) -> str:
    return re.sub(pattern, repl, string, count=count)


_ENV = ImmutableSandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True)
_ENV.filters["regex_replace"] = _regex_replace


@lru_cache(maxsize=4096)
def _compile(template: str):  # noqa: ANN202 - jinja Template
    return _ENV.from_string(template)


def parse_template(template: str) -> None:
    """Raise ``jinja2.TemplateSyntaxError`` (with its line) when ``template`` does not parse."""
    _ENV.parse(template)


def render(template: str, doc: dict[str, Any], *, where: str = "template") -> str:
    """Render ``template`` with the doc's fields as variables."""
    try:
        return _compile(template).render(**doc)
    except TemplateError as err:
        raise ConfigError(f"{where}: cannot render {template!r}: {err}") from None


def resolve_text(spec: str, doc: dict[str, Any], *, where: str) -> Any:
    """A doc field when ``spec`` names one, else the rendered template (lm-eval's rule)."""
    if spec in doc:
        return doc[spec]
    return render(spec, doc, where=where)


def parse_literal(text: str, *, where: str) -> Any:
    """Parse a rendered Python literal (a list of choices, a list of indices)."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise ConfigError(f"{where}: expected a Python literal, got {text[:80]!r}") from None
