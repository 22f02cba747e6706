"""``--model NAME`` → a backend instance.

A backend registers its loader with ``@register_backend(name)`` in its own module; the table below
names that module and the aliases, so a backend's module (and torch, vLLM or an HTTP client) is
imported only when that backend is used: ``gapmeter tasks`` imports none of them. Adding a backend
is one row here plus the decorator on its loader.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Protocol

from gapmeter.errors import ConfigError
from gapmeter.models.base import ModelBackend, parse_model_args


class BackendLoader(Protocol):
    """Builds a backend from its parsed ``--model_args`` (unknown keys and bad values refused)."""

    def __call__(self, args: dict[str, str], *, device: str | None, batch_size: int | str) -> ModelBackend: ...


# name -> (module that registers it, other names that select it)
BACKEND_MODULES: dict[str, tuple[str, tuple[str, ...]]] = {
    "hf": ("gapmeter.models.hf", ("huggingface", "hf-auto")),
    # Any OpenAI-compatible server; lm-eval's names for it work too.
    "openai": ("gapmeter.models.openai_api", ("local-completions", "openai-completions")),
    "vllm": ("gapmeter.models.vllm_backend", ()),  # optional extra gapmeter[vllm]
}
BACKENDS = tuple(BACKEND_MODULES)
BACKEND_ALIASES = {alias: name for name, (_, aliases) in BACKEND_MODULES.items() for alias in (name, *aliases)}

_LOADERS: dict[str, BackendLoader] = {}


def register_backend(name: str) -> Callable[[BackendLoader], BackendLoader]:
    """Decorator for a backend's loader, in the module ``BACKEND_MODULES[name]`` names."""
    if name not in BACKEND_MODULES:
        raise AssertionError(f"backend {name!r} has no row in BACKEND_MODULES")

    def register(loader: BackendLoader) -> BackendLoader:
        _LOADERS[name] = loader
        return loader

    return register


def check_backend(name: str) -> None:
    if name not in BACKEND_ALIASES:
        raise ConfigError(f"unknown model backend {name!r}; available: {', '.join(BACKENDS)}")


def load_model(name: str, model_args: str, *, device: str | None, batch_size: str | int) -> ModelBackend:
    check_backend(name)
    args = parse_model_args(model_args)
    backend = BACKEND_ALIASES[name]
    importlib.import_module(BACKEND_MODULES[backend][0])  # runs its @register_backend
    loader = _LOADERS.get(backend)
    if loader is None:
        raise AssertionError(f"backend {backend} is registered but its module registers no loader")
    return loader(args, device=device, batch_size=batch_size)
