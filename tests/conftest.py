"""Shared pytest fixtures: tiny random models and the benchmark data dir.

Helpers live in ``tests/support`` and are imported as ``support.*``
(``from support.tiny_models import build_model``, ``from support.lm_eval_ref import
run_lm_eval``); this conftest puts ``tests/`` on ``sys.path`` so that works under any
pytest import mode.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

# Everything must work offline: set before transformers/datasets/lm_eval are imported.
for _var in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ[_var] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

_TESTS_DIR = str(Path(__file__).resolve().parent)
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)

import pytest  # noqa: E402
from support.services import service_missing  # noqa: E402
from support.tiny_models import build_model, default_data_dir  # noqa: E402

TinyModelFactory = Callable[..., Path]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The benchmark data dir (``$GAPMETER_DATA_DIR``, else ``<repo>/../shared/data``, else
    ``/work/shared/data``); tests using it are skipped when it is absent (failed under
    ``GAPMETER_REQUIRE_SERVICES=1``, as in CI)."""
    d = default_data_dir()
    if not d.is_dir():
        service_missing(f"benchmark data dir {d} not found (set GAPMETER_DATA_DIR)")
    return d


@pytest.fixture(scope="session")
def tiny_model_factory(tmp_path_factory: pytest.TempPathFactory) -> TinyModelFactory:
    """``factory(kind, *, seed=0, size="tiny") -> Path``: builds (once per session and
    arguments) a tiny random model + tokenizer dir loadable by ``from_pretrained`` / HFLM."""
    cache: dict[tuple[str, int, str], Path] = {}

    def factory(kind: str, *, seed: int = 0, size: str = "tiny") -> Path:
        key = (kind, seed, size)
        if key not in cache:
            out = tmp_path_factory.mktemp(f"tiny_{kind}_{size}_s{seed}")
            cache[key] = build_model(kind, out, seed=seed, size=size)
        return cache[key]

    return factory


@pytest.fixture(scope="session")
def gpt2_model_dir(tiny_model_factory: TinyModelFactory) -> Path:
    """A tiny random GPT-2 (no BOS added by its tokenizer), seed 0."""
    return tiny_model_factory("gpt2")


@pytest.fixture(scope="session")
def llama_model_dir(tiny_model_factory: TinyModelFactory) -> Path:
    """A tiny random Llama (tokenizer prepends ``<s>``), seed 0."""
    return tiny_model_factory("llama")
