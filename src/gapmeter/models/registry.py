"""``--model NAME`` → a backend instance.

A backend registers its loader with ``@register_backend(name, args=ItsArgs)`` in its own module;
the table below names that module and the aliases, so a backend's module (and torch, vLLM or an
HTTP client) is imported only when that backend is used: ``gapmeter tasks`` imports none of them.
``ItsArgs`` (a ``BackendArgs`` pydantic model) declares the ``--model_args`` keys the backend
takes, with their types and defaults: ``load_model`` validates the parsed pairs with it (unknown
keys and bad values refused in one line) and hands the loader the validated model. Adding a
backend is one row here, its args model, and the decorator on its loader.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from gapmeter.errors import ConfigError
from gapmeter.models.base import BackendArgs, ModelBackend, parse_model_args

ArgsT = TypeVar("ArgsT", bound=BackendArgs, contravariant=True)


class BackendLoader(Protocol[ArgsT]):
    """Builds a backend from its validated ``--model_args`` (a loader may also take the raw
    ``key=value`` pairs, for direct callers, and validate them itself with ``ArgsT.parse``)."""

    def __call__(self, args: ArgsT, *, device: str | None, batch_size: int | str) -> ModelBackend: ...


# The decorator hands the loader back with its own type (e.g. ``-> HFModel``), checked against
# the loader contract (and so its backend against ``ModelBackend``) by the bound.
L = TypeVar("L", bound=BackendLoader[Any])


# name -> (module that registers it, other names that select it)
BACKEND_MODULES: dict[str, tuple[str, tuple[str, ...]]] = {
    "hf": ("gapmeter.models.hf", ("huggingface", "hf-auto")),
    # Any OpenAI-compatible server; lm-eval's names for it work too.
    "openai": ("gapmeter.models.openai_api", ("local-completions", "openai-completions")),
    "vllm": ("gapmeter.models.vllm_backend", ()),  # optional extra gapmeter[vllm]
}
BACKENDS = tuple(BACKEND_MODULES)
BACKEND_ALIASES = {alias: name for name, (_, aliases) in BACKEND_MODULES.items() for alias in (name, *aliases)}


@dataclass(frozen=True)
class Backend:
    """A registered backend: the model of its ``--model_args`` and the loader that takes it."""

    args: type[BackendArgs]
    loader: BackendLoader[Any]

    def load(self, args: dict[str, str], *, device: str | None, batch_size: int | str) -> ModelBackend:
        return self.loader(self.args.parse(args), device=device, batch_size=batch_size)


_REGISTERED: dict[str, Backend] = {}


def register_backend(name: str, *, args: type[BackendArgs]) -> Callable[[L], L]:
    """Decorator for a backend's loader, in the module ``BACKEND_MODULES[name]`` names."""
    if name not in BACKEND_MODULES:
        raise AssertionError(f"backend {name!r} has no row in BACKEND_MODULES")
    if args.backend != name:
        raise AssertionError(f"{args.__name__}.backend is {args.backend!r}, registered as {name!r}")

    def register(loader: L) -> L:
        _REGISTERED[name] = Backend(args, loader)
        return loader

    return register


def backend(name: str) -> Backend:
    """The registered backend ``name`` (or an alias), its module imported now."""
    check_backend(name)
    canonical = BACKEND_ALIASES[name]
    importlib.import_module(BACKEND_MODULES[canonical][0])  # runs its @register_backend
    found = _REGISTERED.get(canonical)
    if found is None:
        raise AssertionError(f"backend {canonical} is registered but its module registers no loader")
    return found


def check_backend(name: str) -> None:
    if name not in BACKEND_ALIASES:
        raise ConfigError(f"unknown model backend {name!r}; available: {', '.join(BACKENDS)}")


def load_model(name: str, model_args: str, *, device: str | None, batch_size: str | int) -> ModelBackend:
    """``--model NAME --model_args TEXT`` → the backend, its arguments validated first."""
    check_backend(name)
    args = parse_model_args(model_args)
    return backend(name).load(args, device=device, batch_size=batch_size)
