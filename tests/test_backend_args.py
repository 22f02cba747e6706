"""Backends' ``--model_args``: declared per backend as a pydantic model, validated by the registry
before the loader runs (unknown keys and bad values refused in one line), loaded lazily."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gapmeter.errors import ConfigError
from gapmeter.models.base import BackendArgs
from gapmeter.models.registry import BACKENDS, backend, load_model

NOWHERE = "base_url=http://127.0.0.1:9/v1"


@pytest.mark.parametrize(("name", "args", "message"), [
    ("hf", "dtype=float32", "--model_args needs pretrained=PATH for --model hf"),
    ("hf", "pretrained=x,nokey=1,zz=2", "--model_args: unknown key(s) for hf: nokey, zz (known: add_bos_token, "),
    ("hf", "pretrained=x,add_bos_token=maybe", "--model_args add_bos_token='maybe': not true/false"),
    ("hf", "pretrained=x,prefix_cache=on", "--model_args prefix_cache='on': not true/false"),
    ("hf", "pretrained=x,max_length=2k", "--model_args max_length='2k': not an integer"),
    ("huggingface", "pretrained=x,trust_remote_code=t", "--model_args trust_remote_code='t': not true/false"),
    ("openai", "model=m", "--model_args needs base_url=http://HOST:PORT/v1 for --model openai"),
    ("openai", f"{NOWHERE},api=foo", "--model_args api='foo': use 'completions' or 'chat'"),
    ("openai", f"{NOWHERE},rpm=0", "--model_args rpm='0': must be > 0"),
    ("openai", f"{NOWHERE},concurrency=0", "--model_args concurrency='0': must be >= 1"),
    ("openai", f"{NOWHERE},timeout=soon", "--model_args timeout='soon': not a number"),
    ("openai", f"{NOWHERE},echo_max_tokens=2", "--model_args echo_max_tokens='2': must be <= 1"),
    ("openai", f"{NOWHERE},api_key=sk-x", "do not put API keys in --model_args"),
    ("local-completions", f"{NOWHERE},num_concurent=4", "--model_args: unknown key(s) for openai: num_concurent (known: "),
    ("vllm", "pretrained=x,bad=1", "--model_args: unknown key(s) for vllm: bad (known: "),
])
def test_bad_model_args_are_refused_in_one_line(name: str, args: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_model(name, args, device="cpu", batch_size=1)
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


def test_values_are_typed_with_todays_defaults() -> None:
    hf = backend("hf").args
    parsed = hf.parse({"pretrained": "p", "add_bos_token": "YES", "prefix_cache": "auto", "max_length": "64"})
    assert parsed.model_dump() == {
        "pretrained": "p", "revision": None, "dtype": None, "max_length": 64, "add_bos_token": True,
        "trust_remote_code": False, "max_batch_size": 512, "device": None, "batch_size": None,
        "prefix_cache": None, "softmax_dtype": "float32",
    }
    assert hf.parse({"pretrained": "p", "prefix_cache": "0"}).model_dump()["prefix_cache"] is False
    openai = backend("openai").args.parse({"base_url": "http://h/v1", "stream": "False", "rpm": "1.5"})
    assert openai.model_dump()["stream"] is False and openai.model_dump()["rpm"] == 1.5
    assert openai.model_dump()["api"] == "completions" and openai.model_dump()["echo_max_tokens"] == 0


@pytest.mark.parametrize("name", BACKENDS)
def test_every_backend_declares_its_args(name: str) -> None:
    args = backend(name).args
    assert issubclass(args, BackendArgs) and args.backend == name
    assert args.model_config.get("extra") == "forbid"


def test_listing_tasks_imports_no_backend() -> None:
    code = (
        "import runpy, sys\n"
        "sys.argv = ['gapmeter', 'tasks']\n"
        "try:\n    runpy.run_module('gapmeter.cli', run_name='__main__')\n"
        "except SystemExit as e:\n    assert not e.code, e.code\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'vllm', 'httpx')"
        " or m in ('gapmeter.models.hf', 'gapmeter.models.openai_api', 'gapmeter.models.vllm_backend')))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"
