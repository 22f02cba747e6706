"""A tiny model whose tokenizer has a chat template, and local task docs, for the chat-option
tests (``--apply_chat_template`` and friends)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from gapmeter.tasks import formats
from gapmeter.tasks.registry import TaskRegistry

# ChatML-like, starting with the BOS text: a rendered prompt must not get a second BOS.
CHATML = (
    "{{ bos_token }}{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SYSTEM = "You are a careful assistant. Answer briefly."


@pytest.fixture(scope="session")
def chat_model_dir(llama_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny random Llama (its tokenizer prepends ``<s>``) with the CHATML template."""
    from transformers import AutoTokenizer

    out = tmp_path_factory.mktemp("chat_llama") / "model"
    shutil.copytree(llama_model_dir, out)
    tok = AutoTokenizer.from_pretrained(str(out))
    tok.chat_template = CHATML
    tok.save_pretrained(str(out))
    return out


def local_docs(task: str, data_dir: Path, limit: int) -> dict[str, list[dict[str, Any]]]:
    """A built-in task's splits from the data dir (gapmeter's converter), the evaluated split
    cut to ``limit`` docs: what lm-eval gets as its local dataset."""
    cfg = TaskRegistry.load().tasks[task].config
    layout = cfg.source.local_layouts()[0]
    files: dict[str, Path | list[Path]] = {
        split: data_dir / rel if isinstance(rel, str) else [data_dir / r for r in rel]
        for split, rel in layout.files.items()
    }
    docs = formats.convert(layout.format, files, **layout.options)
    return {s: (rows[:limit] if s == cfg.eval_split else rows) for s, rows in docs.items()}
