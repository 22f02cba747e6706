"""The run options lm-eval users bring: run identity, ``--gen_kwargs`` parsing as lm-eval's CLI
parses it, ``--fewshot_as_multiturn``'s rule, template selection, and the CLI's one-line errors.
(Prompt parity with lm-eval is tests/test_chat_template_parity.py.)"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support.chat_models import CHATML, chat_model_dir  # noqa: F401

from gapmeter.cli import optional_values
from gapmeter.errors import ConfigError
from gapmeter.models.chat_template import recorded_template
from gapmeter.spec import RunSpec, parse_gen_kwargs, resolve_fewshot_as_multiturn
from gapmeter.tasks.chat import Message, single_turn


def _spec(**kw: Any) -> RunSpec:
    return RunSpec(model="hf", model_args="pretrained=/m", tasks=("arc_easy", "gsm8k"), **kw)


def test_run_id_without_the_options_is_unchanged() -> None:
    # Pinned from the RunSpec before these options existed: stored runs keep their ids.
    assert _spec().run_id("fp") == "1f3cce852c727a8a"
    assert _spec(num_fewshot=3, limit=5).run_id("fp") == "44d5dd544e7f033d"
    # fewshot_as_multiturn without a template changes no prompt, so no id either
    assert _spec(fewshot_as_multiturn=False).run_id("fp") == "1f3cce852c727a8a"


def test_each_option_changes_the_run_id() -> None:
    ids = {
        _spec().run_id("fp"),
        _spec(apply_chat_template=True, fewshot_as_multiturn=True).run_id("fp"),
        _spec(apply_chat_template=True, fewshot_as_multiturn=False).run_id("fp"),
        _spec(apply_chat_template="tool_use", fewshot_as_multiturn=True).run_id("fp"),
        _spec(system_instruction="Be brief.").run_id("fp"),
        _spec(gen_kwargs={"temperature": 0.5}).run_id("fp"),
    }
    assert len(ids) == 6


@pytest.mark.parametrize(("values", "expected"), [
    (["temperature=0,top_p=0.9"], {"temperature": 0, "top_p": 0.9}),
    (["max_gen_toks=64,do_sample=true,until=['\\n\\n', 'Q:']"],
     {"max_gen_toks": 64, "do_sample": True, "until": ["\n\n", "Q:"]}),
    (["temperature=0.8", "top_p=0.95"], {"temperature": 0.8, "top_p": 0.95}),
    (["top_k=5", "top_k=7"], {"top_k": 7}),
    (['{"until": ["</s>"], "max_gen_toks": 8}'], {"until": ["</s>"], "max_gen_toks": 8}),
    (["stop=hello world"], {"stop": "hello world"}),
    (["x=-1"], {"x": -1.0}),  # "-1".isnumeric() is False: lm-eval's float
    ([], {}),
])
def test_gen_kwargs_parse_as_lm_eval_cli(values: list[str], expected: dict[str, Any]) -> None:
    got = parse_gen_kwargs(values)
    assert got == expected
    assert [type(v) for v in got.values()] == [type(v) for v in expected.values()]


def test_gen_kwargs_match_lm_eval_parser() -> None:
    from lm_eval._cli.utils import key_val_to_dict

    text = "temperature=0,max_gen_toks=12,until=['a,b', 'c'],do_sample=False,name=x"
    assert parse_gen_kwargs([text]) == key_val_to_dict(text)


@pytest.mark.parametrize("bad", [["temperature"], ["{not json"]])
def test_gen_kwargs_bad_input(bad: list[str]) -> None:
    with pytest.raises(ConfigError, match="--gen_kwargs"):
        parse_gen_kwargs(bad)


def test_fewshot_as_multiturn_rule() -> None:
    assert resolve_fewshot_as_multiturn(True, None) is True
    assert resolve_fewshot_as_multiturn("chatml", None) is True
    assert resolve_fewshot_as_multiturn(True, False) is False
    assert resolve_fewshot_as_multiturn(False, None) is None
    assert resolve_fewshot_as_multiturn(False, False) is False
    with pytest.raises(ConfigError, match="needs --apply_chat_template"):
        resolve_fewshot_as_multiturn(False, True)


def test_optional_values_on_the_command_line() -> None:
    assert optional_values(["run", "--apply_chat_template", "--tasks", "x"]) == \
        ["run", "--apply_chat_template=", "--tasks", "x"]
    assert optional_values(["run", "--tasks", "x", "--apply_chat_template"]) == \
        ["run", "--tasks", "x", "--apply_chat_template="]
    assert optional_values(["run", "--apply_chat_template", "chatml", "--fewshot_as_multiturn"]) == \
        ["run", "--apply_chat_template", "chatml", "--fewshot_as_multiturn=true"]
    assert optional_values(["run", "--fewshot_as_multiturn", "false"]) == ["run", "--fewshot_as_multiturn", "false"]
    assert optional_values(["compare", "--apply_chat_template"]) == ["compare", "--apply_chat_template"]


def test_single_turn_joins_all_but_the_system_message() -> None:
    msgs = [Message("system", "S"), Message("user", "Q1", " "), Message("assistant", "A1", "\n\n"),
            Message("user", "Q2")]
    assert single_turn(msgs) == [{"role": "system", "content": "S"},
                                 {"role": "user", "content": "Q1 A1\n\nQ2"}]


class _Tok:
    def __init__(self, template: Any) -> None:
        self.chat_template = template


def test_template_selection_as_lm_eval() -> None:
    assert recorded_template(_Tok("T"), None, where="m") == "T"
    assert recorded_template(_Tok({"default": "D", "tool_use": "U"}), None, where="m") == "D"
    assert recorded_template(_Tok({"default": "D", "tool_use": "U"}), "tool_use", where="m") == "U"
    with pytest.raises(ConfigError, match="no template of that name"):
        recorded_template(_Tok({"default": "D"}), "nope", where="m")
    with pytest.raises(ConfigError, match="no default"):
        recorded_template(_Tok({"a": "A"}), None, where="m")
    with pytest.raises(ConfigError, match="has no chat template"):
        recorded_template(_Tok(None), None, where="m")


def _gapmeter(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gapmeter.cli", *args], capture_output=True, text=True, timeout=300)


def test_cli_multiturn_without_template_is_one_line(tmp_path: Path) -> None:
    done = _gapmeter("run", "--model_args", f"pretrained={tmp_path}", "--tasks", "arc_easy",
                     "--fewshot_as_multiturn")
    assert done.returncode == 2
    assert "--fewshot_as_multiturn needs --apply_chat_template" in done.stderr
    assert "Traceback" not in done.stderr


def test_cli_model_without_template_is_one_line(llama_model_dir: Path, data_dir: Path, tmp_path: Path) -> None:
    done = _gapmeter("run", "--model_args", f"pretrained={llama_model_dir}", "--tasks", "arc_easy",
                     "--limit", "1", "--device", "cpu", "--apply_chat_template", "--data_dir", str(data_dir),
                     "--output_path", str(tmp_path / "out"))
    assert done.returncode == 2, done.stderr
    assert "has no chat template" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out" / "results.json").exists()


def test_cli_options_reach_the_run(chat_model_dir: Path, data_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "out"
    done = _gapmeter("run", "--model_args", f"pretrained={chat_model_dir},dtype=float32", "--tasks", "gsm8k",
                     "--limit", "1", "--num_fewshot", "1", "--device", "cpu", "--data_dir", str(data_dir),
                     "--output_path", str(out), "--apply_chat_template", "--fewshot_as_multiturn", "false",
                     "--system_instruction", "Be brief.", "--gen_kwargs", "max_gen_toks=4,until=['\\n\\n']",
                     "--log_samples")
    assert done.returncode == 0, done.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["chat_template"] == CHATML
    assert results["fewshot_as_multiturn"] is False
    assert results["system_instruction"] == "Be brief."
    assert results["system_instruction_sha"] == hashlib.sha256(b"Be brief.").hexdigest()
    assert results["config"]["gen_kwargs"] == {"max_gen_toks": 4, "until": ["\n\n"]}
    # the samples file's layout is not this test's subject: find the prompt and kwargs anywhere in it
    sample = json.loads(next(out.rglob("samples_gsm8k*.jsonl")).read_text().splitlines()[0])
    strings, dicts = _walk(sample["arguments"])
    (context,) = [s for s in strings if s.startswith("<s>")]
    (kwargs,) = [d for d in dicts if "max_gen_toks" in d]
    assert context.startswith("<s><|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n")
    assert context.count("<|im_start|>user") == 1  # one shot, collapsed into the user turn
    assert kwargs["max_gen_toks"] == 4 and kwargs["until"] == ["\n\n"]


def _walk(value: Any) -> tuple[list[str], list[dict[str, Any]]]:
    strings: list[str] = []
    dicts: list[dict[str, Any]] = []
    if isinstance(value, str):
        strings.append(value)
    elif isinstance(value, dict):
        dicts.append(value)
        for v in value.values():
            s, d = _walk(v)
            strings += s
            dicts += d
    elif isinstance(value, list | tuple):
        for v in value:
            s, d = _walk(v)
            strings += s
            dicts += d
    return strings, dicts


def test_gen_kwargs_override_generation_tasks_only(data_dir: Path) -> None:
    from gapmeter.engine.plan import resolve_tasks
    from gapmeter.tasks.registry import TaskRegistry

    leaves = resolve_tasks(TaskRegistry.load(), ["gsm8k", "arc_easy"], num_fewshot=0, data_dir=data_dir).leaves
    gsm8k, arc = leaves["gsm8k"].task, leaves["arc_easy"].task
    plain = gsm8k.plan(num_fewshot=0, limit=1)[0].requests[0]
    req = gsm8k.plan(num_fewshot=0, limit=1, gen_kwargs={"until": "Q:", "temperature": 0.5, "top_p": 0.9})[0].requests[0]
    assert req.context == plain.context
    assert req.args()[1] == {**plain.args()[1], "until": ["Q:"], "temperature": 0.5, "top_p": 0.9}
    assert arc.plan(num_fewshot=0, limit=1, gen_kwargs={"max_gen_toks": 3}) == arc.plan(num_fewshot=0, limit=1)
    with pytest.raises(ConfigError, match="--gen_kwargs max_gen_toks"):
        gsm8k.plan(num_fewshot=0, limit=1, gen_kwargs={"max_gen_toks": "many"})
