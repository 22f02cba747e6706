"""``--apply_chat_template`` through ``--model openai``, against a real server on 127.0.0.1.

- ``api=chat``: the chat endpoint receives the messages lm-eval 0.4.13's
  ``local-chat-completions`` sends (system message, few-shot examples as user/assistant turns),
  checked by running lm-eval itself against the same server and comparing what arrived.
- ``api=completions`` with ``tokenizer=``: the client renders the chat with the tokenizer's
  template; the requests and loglikelihoods are the ``hf`` backend's (whose chat prompts are
  lm-eval's, tests/test_chat_template_parity.py).
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("lm_eval")

from support.api_server import hf_served, serving  # noqa: E402
from support.chat_models import SYSTEM, chat_model_dir, local_docs  # noqa: E402, F401
from support.lm_eval_ref import write_local_task_yaml  # noqa: E402

from gapmeter.engine.evaluate import evaluate  # noqa: E402
from gapmeter.errors import ConfigError  # noqa: E402
from gapmeter.serve.models import EchoServed, HFServed  # noqa: E402
from gapmeter.spec import RunSpec  # noqa: E402


class RecordingEcho(EchoServed):
    """The echo model, keeping every chat request's messages as they arrived."""

    def __init__(self) -> None:
        super().__init__(reply=" 42")
        self.received: list[list[dict[str, Any]]] = []

    def chat_prompt(self, messages: list[dict[str, Any]]) -> str:
        self.received.append(copy.deepcopy(messages))
        return super().chat_prompt(messages)


class RecordingHF(HFServed):
    """The hf model served, keeping the prompts that arrived as text and as token ids."""

    def __init__(self, base: HFServed) -> None:
        super().__init__(base.hf, base.name)
        self.texts: list[str] = []
        self.id_prompts: list[list[int]] = []

    def encode(self, text: str) -> tuple[list[int], list[int]]:
        self.texts.append(text)
        return super().encode(text)

    def token_strings(self, ids: list[int]) -> list[str]:
        self.id_prompts.append(list(ids))
        return super().token_strings(ids)


def _spec(model_args: str, task: str, shots: int, limit: int, work: Path, data_dir: Path, **kw: Any) -> RunSpec:
    work.mkdir(parents=True, exist_ok=True)
    return RunSpec(model="openai" if "base_url" in model_args else "hf", model_args=model_args, tasks=(task,),
                   num_fewshot=shots, limit=limit, device="cpu", data_dir=data_dir, bootstrap_iters=0,
                   db=f"sqlite:///{work}/g.sqlite", output_path=work / "out", **kw)


@pytest.mark.parametrize("multiturn", [True, False])
def test_chat_endpoint_gets_lm_evals_messages(multiturn: bool, data_dir: Path, tmp_path: Path) -> None:
    import lm_eval
    from lm_eval.tasks import TaskManager

    served = RecordingEcho()
    with serving(served) as server:
        write_local_task_yaml("gsm8k", local_docs("gsm8k", data_dir, 3), tmp_path / "lm_eval")
        lm_eval.simple_evaluate(
            model="local-chat-completions",
            model_args={"base_url": f"{server.url}/chat/completions", "model": "echo", "max_retries": 1},
            tasks=["gsm8k"], num_fewshot=2, limit=3, bootstrap_iters=0,
            task_manager=TaskManager(include_path=str(tmp_path / "lm_eval"), include_defaults=False),
            apply_chat_template=True, fewshot_as_multiturn=multiturn, system_instruction=SYSTEM,
            random_seed=0, numpy_random_seed=1234, torch_random_seed=1234, fewshot_random_seed=1234,
        )
        theirs, served.received = served.received, []
        outcome = evaluate(_spec(f"base_url={server.url},model=echo,api=chat,concurrency=1", "gsm8k", 2, 3,
                                 tmp_path, data_dir, apply_chat_template=True,
                                 fewshot_as_multiturn=multiturn, system_instruction=SYSTEM))
        ours = served.received
    assert len(theirs) == len(ours) == 3
    assert sorted(map(json.dumps, ours)) == sorted(map(json.dumps, theirs))
    for messages in ours:
        assert messages[0] == {"role": "system", "content": SYSTEM}
        roles = [m["role"] for m in messages[1:]]
        assert roles == (["user", "assistant"] * 2 + ["user"] if multiturn else ["user"])
    assert [s.responses for s in outcome.tasks["gsm8k"].scores] == [[" 42"]] * 3
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["chat_template"] == "" and results["chat_template_sha"] is None  # the server's
    assert results["fewshot_as_multiturn"] is multiturn


def test_completions_render_the_template_like_hf(chat_model_dir: Path, data_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    options = {"apply_chat_template": True, "fewshot_as_multiturn": True, "system_instruction": SYSTEM}
    ref = evaluate(_spec(f"pretrained={chat_model_dir},dtype=float32", "arc_easy", 2, 3, tmp_path / "hf",
                         data_dir, **options))
    with serving(hf_served(chat_model_dir)) as server:
        got = evaluate(_spec(f"base_url={server.url},model=tiny,api=completions,tokenizer={chat_model_dir}",
                             "arc_easy", 2, 3, tmp_path / "api", data_dir, **options))
    ref_plans, got_plans = ref.tasks["arc_easy"].plans, got.tasks["arc_easy"].plans
    assert [p.requests for p in got_plans] == [p.requests for p in ref_plans]
    assert got_plans[0].requests[0].context.startswith("<s><|im_start|>system\n" + SYSTEM)
    for a, b in zip(got.tasks["arc_easy"].scores, ref.tasks["arc_easy"].scores, strict=True):
        for (ll_a, greedy_a), (ll_b, greedy_b) in zip(a.responses, b.responses, strict=True):
            assert math.isclose(ll_a, ll_b, abs_tol=1e-4) and greedy_a == greedy_b
    recorded = json.loads((tmp_path / "api" / "out" / "results.json").read_text())
    assert recorded["chat_template"] == json.loads((tmp_path / "hf" / "out" / "results.json").read_text())["chat_template"]


def test_completions_without_tokenizer_say_what_to_add(data_dir: Path, tmp_path: Path) -> None:
    with serving(EchoServed()) as server, pytest.raises(ConfigError, match="add tokenizer=PATH"):
        evaluate(_spec(f"base_url={server.url},model=echo,api=completions", "arc_easy", 0, 1, tmp_path, data_dir,
                       apply_chat_template=True, fewshot_as_multiturn=True))
    assert not (tmp_path / "out" / "results.json").exists()


def test_completions_generate_from_the_rendered_prompt_like_hf(chat_model_dir: Path, data_dir: Path,  # noqa: F811
                                                              tmp_path: Path) -> None:
    options = {"apply_chat_template": True, "fewshot_as_multiturn": True, "system_instruction": SYSTEM,
               "gen_kwargs": {"max_gen_toks": 8}}
    ref = evaluate(_spec(f"pretrained={chat_model_dir},dtype=float32", "gsm8k", 1, 2, tmp_path / "hf",
                         data_dir, **options))
    served = RecordingHF(hf_served(chat_model_dir))
    with serving(served) as server:
        got = evaluate(_spec(f"base_url={server.url},model=tiny,api=completions,tokenizer={chat_model_dir}",
                             "gsm8k", 1, 2, tmp_path / "api", data_dir, **options))
    assert [p.requests for p in got.tasks["gsm8k"].plans] == [p.requests for p in ref.tasks["gsm8k"].plans]
    # token ids went out, as lm-eval's local-completions sends them: the template's BOS and no
    # other (a server adding BOS to a text prompt would double it)
    assert served.texts == []
    bos = served.tokenizer.bos_token_id
    prompts = [ids for ids in served.id_prompts if len(ids) > 1]  # not the generated tokens' decoding
    assert len(prompts) == 2
    assert all(ids[0] == bos and ids[1] != bos for ids in prompts)
    assert [s.responses for s in got.tasks["gsm8k"].scores] == [s.responses for s in ref.tasks["gsm8k"].scores]
