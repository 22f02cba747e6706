"""Self-preference: judges rate their own (and their family's) answers higher (Panickssery et
al., 2024). A judged run whose model is the judge's, by fingerprint, name or family, is flagged."""

from __future__ import annotations

import re
from pathlib import Path

from gapmeter.models.base import parse_model_args


def model_name(model: str, model_args: str) -> str:
    """The model's own name: ``model=`` (API), else ``pretrained=``'s last component, else the backend."""
    args = parse_model_args(model_args) if model_args else {}
    for key in ("model", "pretrained", "model_name"):
        if args.get(key):
            return Path(args[key].rstrip("/")).name.lower()
    return model.lower()


def family(name: str) -> str:
    """``qwen2.5-0.5b-instruct`` → ``qwen``; ``llama-3-8b`` → ``llama``; ``gpt-4o-mini`` → ``gpt``."""
    head = re.split(r"[^a-z0-9]+", name.lower().split("/")[-1])[0]
    return head.rstrip("0123456789") or head


def self_preference(judge: tuple[str, str, str], judged: tuple[str, str, str]) -> str | None:
    """Why the judge may favour the judged model, or None. Each side is (backend, model_args,
    fingerprint)."""
    if judge[2] and judge[2] == judged[2]:
        return "the judge is the judged model (same fingerprint)"
    a, b = model_name(judge[0], judge[1]), model_name(judged[0], judged[1])
    if a == b:
        return f"the judge and the judged model have the same name ({a})"
    if family(a) == family(b):
        return f"the judge ({a}) and the judged model ({b}) are of the same family ({family(a)})"
    return None
