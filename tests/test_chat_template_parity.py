"""``--apply_chat_template``, ``--fewshot_as_multiturn``, ``--system_instruction`` and
``--gen_kwargs`` against lm-evaluation-harness 0.4.13 (``simple_evaluate`` with ``model="hf"``).

The model is the tiny random Llama (its tokenizer prepends ``<s>``) with a ChatML-like template
that itself starts with ``{{ bos_token }}``: a rendered prompt must not get a second BOS, and the
chat prompt ends in ``<|im_start|>assistant\\n``, whose newline moves to the continuation. Each
case compares per doc: the rendered prompts and continuations (byte for byte: lm-eval's samples'
``arguments``), loglikelihoods (1e-4), is_greedy, generated text, generation kwargs; and what
results.json records (chat_template and system_instruction with their sha256, multiturn).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("lm_eval")

from support.chat_models import CHATML, SYSTEM, chat_model_dir, local_docs  # noqa: E402, F401
from support.lm_eval_ref import LmEvalResult, run_lm_eval  # noqa: E402

from gapmeter.engine.evaluate import RunOutcome, evaluate  # noqa: E402
from gapmeter.spec import RunSpec  # noqa: E402

LL_TOL = 1e-4


@dataclass(frozen=True)
class Case:
    task: str
    shots: int
    limit: int
    chat: bool
    multiturn: bool
    system: str | None
    gen_kwargs: dict[str, Any] | None = None


# Winogrande has no files here: a few hand-made hub-schema docs (multiple-input: one context per
# option, the shared continuation scored).
_WG = [
    ("The trophy didn't fit into the suitcase because the _ was too large.", "trophy", "suitcase", "1"),
    ("Sarah lent Maria her bike because _ needed it for school.", "Sarah", "Maria", "2"),
    ("The cat chased the mouse until _ hid under the couch.", "cat", "mouse", "2"),
    ("Tom poured water from the jug into the cup until the _ was full.", "jug", "cup", "2"),
    ("The lawyer asked the witness a question, but _ was reluctant to answer.", "lawyer", "witness", "2"),
    ("Anna thanked Beth for the gift because _ was kind to her.", "Anna", "Beth", "2"),
]
WINOGRANDE = {
    "train": [{"sentence": s, "option1": a, "option2": b, "answer": ans} for s, a, b, ans in _WG[:3]],
    "validation": [{"sentence": s, "option1": a, "option2": b, "answer": ans} for s, a, b, ans in _WG[3:]],
}

CASES = {
    "arc-0shot-chat-system": Case("arc_easy", 0, 5, True, True, SYSTEM),
    "arc-3shot-multiturn": Case("arc_easy", 3, 5, True, True, None),
    "arc-3shot-singleturn-system": Case("arc_easy", 3, 5, True, False, SYSTEM),
    "arc-2shot-system-no-template": Case("arc_easy", 2, 4, False, False, SYSTEM),
    "winogrande-2shot-multiturn": Case("winogrande", 2, 3, True, True, None),
    "winogrande-2shot-singleturn-system": Case("winogrande", 2, 3, True, False, SYSTEM),
    # MMLU's description ("The following are ... about anatomy.\n\n") joins the system message
    "mmlu-1shot-system-no-template": Case("mmlu_anatomy", 1, 3, False, False, SYSTEM),
    "mmlu-1shot-singleturn-system": Case("mmlu_anatomy", 1, 3, True, False, SYSTEM),
    "gsm8k-2shot-multiturn-system": Case("gsm8k", 2, 2, True, True, SYSTEM, {"max_gen_toks": 12}),
    "gsm8k-0shot-chat-genkwargs": Case("gsm8k", 0, 2, True, True, None, {"max_gen_toks": 10, "until": ["\n"]}),
}


@dataclass
class Pair:
    ref: LmEvalResult
    ours: RunOutcome
    case: Case
    results: dict[str, Any]


_CACHE: dict[str, Pair] = {}


@pytest.fixture(scope="module")
def run_pair(
    tmp_path_factory: pytest.TempPathFactory, data_dir: Path, chat_model_dir: Path  # noqa: F811
) -> Callable[[str], Pair]:
    def get(case_id: str) -> Pair:
        if case_id in _CACHE:
            return _CACHE[case_id]
        case = CASES[case_id]
        work = tmp_path_factory.mktemp(f"chat_{case_id}")
        if case.task == "winogrande":
            docs, gm_data = WINOGRANDE, _write_docs(WINOGRANDE, work / "data" / "winogrande")
        else:
            docs, gm_data = local_docs(case.task, data_dir, case.limit), data_dir
        ref = run_lm_eval(
            chat_model_dir, case.task, docs,
            num_fewshot=case.shots, limit=case.limit, work_dir=work / "lm_eval",
            gen_kwargs=case.gen_kwargs,
            chat={"apply_chat_template": case.chat, "fewshot_as_multiturn": case.multiturn,
                  "system_instruction": case.system},
        )
        ours = evaluate(RunSpec(
            model="hf", model_args=f"pretrained={chat_model_dir},dtype=float32", tasks=(case.task,),
            num_fewshot=case.shots, limit=case.limit, batch_size="1", device="cpu", data_dir=gm_data,
            db=f"sqlite:///{work}/g.sqlite", output_path=work / "out",
            apply_chat_template=case.chat, fewshot_as_multiturn=case.multiturn if case.chat else None,
            system_instruction=case.system, gen_kwargs=dict(case.gen_kwargs or {}),
        ))
        results = json.loads((work / "out" / "results.json").read_text())
        _CACHE[case_id] = Pair(ref, ours, case, results)
        return _CACHE[case_id]

    return get


def _write_docs(docs: dict[str, list[dict[str, Any]]], task_dir: Path) -> Path:
    task_dir.mkdir(parents=True, exist_ok=True)
    for split, rows in docs.items():
        (task_dir / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return task_dir.parent


def _ref_by_doc(pair: Pair) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    for s in pair.ref.samples[pair.case.task]:
        out.setdefault(s["doc_id"], s)
    return out


def _unwrap(x: Any) -> Any:
    while isinstance(x, list | tuple) and len(x) == 1 and not isinstance(x[0], float):
        x = x[0]
    return x


@pytest.mark.parametrize("case_id", list(CASES))
def test_same_prompts_and_requests(run_pair: Callable[[str], Pair], case_id: str) -> None:
    pair = run_pair(case_id)
    ref = _ref_by_doc(pair)
    plans = pair.ours.tasks[pair.case.task].plans
    assert sorted(ref) == [p.doc_id for p in plans] == list(range(pair.case.limit))
    for plan in plans:
        ref_args = [tuple(a) for a in ref[plan.doc_id]["arguments"]]
        assert len(plan.fewshot_ids) == pair.case.shots
        if pair.case.task == "gsm8k":
            (ctx, kwargs), req = ref_args[0], plan.requests[0]
            assert req.context == ctx, f"doc {plan.doc_id}: prompt differs"
            assert req.args()[1] == kwargs, f"doc {plan.doc_id}: gen kwargs differ"
        else:
            ours = [(r.context, r.continuation) for r in plan.requests]
            assert ours == ref_args, f"doc {plan.doc_id}: requests differ"
        context = plan.requests[0].args()[0]
        if pair.case.chat:  # the template ran, once: one BOS, the generation prompt at the end
            assert context.startswith("<s><|im_start|>") and not context.startswith("<s><s>")
            assert context.endswith("<|im_start|>assistant\n")
            turns = context.count("<|im_start|>user")
            shots = pair.case.shots
            assert turns == (shots + 1 if pair.case.multiturn and shots else 1)
        if pair.case.system is not None:
            assert pair.case.system in context


@pytest.mark.parametrize("case_id", list(CASES))
def test_same_responses(run_pair: Callable[[str], Pair], case_id: str) -> None:
    pair = run_pair(case_id)
    ref = _ref_by_doc(pair)
    for score in pair.ours.tasks[pair.case.task].scores:
        resps = ref[score.doc_id]["resps"]
        assert len(resps) == len(score.responses)
        for i, (r, ours) in enumerate(zip(resps, score.responses, strict=True)):
            r = _unwrap(r)
            where = f"doc {score.doc_id} request {i}"
            if isinstance(r, str):
                assert ours == r, f"{where}: generated text differs"
            else:
                assert math.isclose(ours[0], r[0], rel_tol=0, abs_tol=LL_TOL), f"{where}: {ours[0]} vs {r[0]}"
                assert bool(ours[1]) == bool(r[1]), f"{where}: is_greedy differs"


@pytest.mark.parametrize("case_id", list(CASES))
def test_recorded_like_lm_eval(run_pair: Callable[[str], Pair], case_id: str) -> None:
    pair = run_pair(case_id)
    ref = pair.ref.raw["general_config"]
    for key in ("chat_template", "chat_template_sha", "system_instruction", "system_instruction_sha"):
        assert pair.results[key] == ref[key], key
    if pair.case.chat:
        assert pair.results["chat_template"] == CHATML
        assert pair.results["fewshot_as_multiturn"] == ref["fewshot_as_multiturn"] == pair.case.multiturn
    assert pair.results["config"]["gen_kwargs"] == pair.ref.raw["config"]["gen_kwargs"]
