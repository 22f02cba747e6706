"""RunSpec: everything that says what a run is, so a result can be traced to what produced it."""

from __future__ import annotations

import ast
import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gapmeter.errors import ConfigError
from gapmeter.tasks.fewshot import DEFAULT_FEWSHOT_SEED

DEFAULT_BOOTSTRAP_ITERS = 100_000


@dataclass(frozen=True)
class RunSpec:
    model: str
    model_args: str
    tasks: tuple[str, ...]
    num_fewshot: int | None = None
    limit: int | None = None
    fewshot_seed: int = DEFAULT_FEWSHOT_SEED
    bootstrap_iters: int = DEFAULT_BOOTSTRAP_ITERS
    # lm-eval's prompt options (docs/lm-eval.md): False / True / a template name
    apply_chat_template: bool | str = False
    fewshot_as_multiturn: bool | None = None  # resolved by resolve_fewshot_as_multiturn
    system_instruction: str | None = None
    gen_kwargs: dict[str, Any] = field(default_factory=dict)  # over each generate task's generation_kwargs
    # Execution options: they never change a number, so they are not part of the run's identity.
    batch_size: str = "1"
    device: str | None = None
    output_path: Path | None = None
    log_samples: bool = False
    data_dir: Path | None = None
    include_path: tuple[Path, ...] = field(default_factory=tuple)
    db: str | None = None
    gpu_hour_cost: float | None = None  # $ per hour of the machine (local models): cost = time × rate
    prices: Path | None = None  # price table overriding the built-in one (cost/prices.yaml)

    def identity(self) -> dict[str, Any]:
        """The fields that determine the results (hashed into the run id)."""
        return {
            "model": self.model,
            "model_args": self.model_args,
            "tasks": list(self.tasks),
            "num_fewshot": self.num_fewshot,
            "limit": self.limit,
            "fewshot_seed": self.fewshot_seed,
            "bootstrap_iters": self.bootstrap_iters,
            "data_dir": str(self.data_dir) if self.data_dir else None,
            # Only when set: a run without them keeps the id it had before they existed.
            **({"prompt_format": self.prompt_format_identity()} if self.formats_prompts else {}),
            **({"gen_kwargs": self.gen_kwargs} if self.gen_kwargs else {}),
        }

    @property
    def formats_prompts(self) -> bool:
        """A chat template or a system instruction changes every prompt."""
        return bool(self.apply_chat_template) or self.system_instruction is not None

    def prompt_format_identity(self) -> dict[str, Any]:
        return {
            "apply_chat_template": self.apply_chat_template,
            "fewshot_as_multiturn": bool(self.fewshot_as_multiturn) if self.apply_chat_template else False,
            "system_instruction": self.system_instruction,
        }

    def run_id(self, model_fingerprint: str) -> str:
        payload = json.dumps({**self.identity(), "fingerprint": model_fingerprint}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("output_path", "data_dir", "prices"):
            out[key] = str(out[key]) if out[key] is not None else None
        out["include_path"] = [str(p) for p in self.include_path]
        out["tasks"] = list(self.tasks)
        return out


def resolve_fewshot_as_multiturn(apply_chat_template: bool | str, value: bool | None) -> bool | None:
    """lm-eval 0.4.13's rule (``EvaluatorConfig._validate_arguments``): on by default with a chat
    template, an error when asked for without one, off when said so."""
    if value is None and apply_chat_template:
        return True
    if value is True and not apply_chat_template:
        raise ConfigError("--fewshot_as_multiturn needs --apply_chat_template (as in lm-eval)")
    return value


def parse_gen_kwargs(values: list[str] | None) -> dict[str, Any]:
    """``--gen_kwargs`` as lm-eval's CLI reads it (``MergeDictAction``): a JSON object, or
    ``key=value`` items split on top-level commas, each value typed by
    ``handle_cli_value_string`` (true/false, int, float, a Python literal, else the text);
    repeated options merge, later keys win."""
    out: dict[str, Any] = {}
    if not values:
        return out
    first = values[0].strip()
    try:
        parsed = json.loads(first)
    except json.JSONDecodeError:
        if "{" in first:
            raise ConfigError(f"--gen_kwargs {first!r}: invalid JSON (use double quotes)") from None
        parsed = None
    if isinstance(parsed, dict):
        return dict(parsed)
    for value in values:
        for item in _split_top_level(value):
            if "=" not in item:
                raise ConfigError(f"--gen_kwargs: expected key=value, got {item!r}")
            key, raw = item.split("=", 1)
            out[key] = _cli_value(raw)
    return out


def _cli_value(text: str) -> Any:
    if text.lower() == "true":
        return True
    if text.lower() == "false":
        return False
    if text.isnumeric():
        return int(text)
    try:
        return float(text)
    except ValueError:
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text


def _split_top_level(text: str) -> list[str]:
    """Split on commas outside brackets, braces and quotes (lm-eval's ``split_top_level``)."""
    parts: list[str] = []
    buf: list[str] = []
    depth = 0
    quote: str | None = None
    for char in text:
        if quote is not None:
            if char == quote:
                quote = None
        elif char in "\"'":
            quote = char
        elif char in "[({":
            depth += 1
        elif char in "])}":
            depth = max(depth - 1, 0)
        elif char == "," and depth == 0:
            parts.append("".join(buf))
            buf = []
            continue
        buf.append(char)
    parts.append("".join(buf))
    return [part for part in parts if part]
