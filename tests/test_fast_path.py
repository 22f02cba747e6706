"""The shared-prefix (KV cache) loglikelihood path equals the plain path and lm-eval's HFLM.

fp32: loglikelihoods within 1e-4 and identical is_greedy, for GPT-2 (learned positions) and
Llama (RoPE, grouped-query attention) shapes, at several batch sizes; bf16: within one bf16
rounding step of the value (the plain path rounds the sum to bf16 too). End to end, per-doc
metrics of a few-shot multiple-choice task are identical with ``prefix_cache=false``. The
backend reports one ``RequestStats`` per answered request.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from gapmeter.engine.evaluate import evaluate
from gapmeter.errors import GapmeterError
from gapmeter.models.base import RequestStats
from gapmeter.models.batching import TokenBudget, run_in_group_batches
from gapmeter.models.hf import HFModel
from gapmeter.models.prefix_cache import common_prefix_len, plan_groups
from gapmeter.requests import GenerateRequest, LoglikelihoodRequest, RollingLoglikelihoodRequest
from gapmeter.spec import RunSpec

PREAMBLE = "The following are questions about science.\n\n" + "".join(
    f"Question: what is sample {i} made of?\nAnswer: mostly hydrogen and oxygen\n\n" for i in range(4)
)


def _requests() -> list[LoglikelihoodRequest]:
    reqs = []
    for q in range(4):  # MC docs: four choices sharing a context, incl. shared leading tokens
        ctx = PREAMBLE + f"Question {q}: which of these animals is a mammal ({q})?\nAnswer:"
        reqs += [LoglikelihoodRequest(ctx, c) for c in (" a dog", " a dog that barks", " the cat", " fish")]
    reqs += [  # one-token choices: identical inputs, computed once
        LoglikelihoodRequest(PREAMBLE + "Pick one.\nAnswer:", c) for c in (" A", " B", " C", " D")
    ]
    reqs += [  # Winogrande: contexts differ in the option, one continuation
        LoglikelihoodRequest(PREAMBLE + "The trophy did not fit because the trophy", " was too big."),
        LoglikelihoodRequest(PREAMBLE + "The trophy did not fit because the suitcase", " was too big."),
    ]
    reqs += [  # edge cases: trailing spaces, empty context, left truncation (max_length 96)
        LoglikelihoodRequest("Trailing spaces   ", "x y z"),
        LoglikelihoodRequest("Trailing spaces   ", "x w"),
        LoglikelihoodRequest("", "an empty context uses the prefix token"),
        LoglikelihoodRequest("A long context " * 30, " truncated"),
        LoglikelihoodRequest("A long context " * 30, " truncated with more words"),
    ]
    return reqs


def _score(model: HFModel, reqs: list[LoglikelihoodRequest]) -> tuple[list[Any], list[RequestStats]]:
    out: list[Any] = [None] * len(reqs)
    stats: list[Any] = [None] * len(reqs)

    def on_done(idx: list[int], res: list[Any], st: list[RequestStats] | None = None) -> None:
        assert st is not None and len(st) == len(idx)
        for i, r, s in zip(idx, res, st, strict=True):
            assert out[i] is None, "a request answered twice"
            out[i], stats[i] = r, s

    model.loglikelihood(reqs, on_done)
    assert all(r is not None for r in out)
    return out, stats


#: bf16 weights: KV reuse changes GEMM shapes and so bf16 rounding of activations. Measured on the
#: tiny models: up to 1.2e-3 relative, the same as lm-eval's own batch_size 8 vs 1 (1.2e-3).
BF16_REL = 2e-3


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_fast_path_equals_plain_path(tiny_model_factory: Any, kind: str, dtype: str) -> None:
    path = str(tiny_model_factory(kind))
    reqs = _requests()
    plain, _ = _score(HFModel(path, dtype=dtype, device="cpu", batch_size=1, max_length=96, prefix_cache=False), reqs)
    for bs in ("1", "3", "auto"):
        # bf16 takes the exact path by default; KV reuse is an opt-in there
        model = HFModel(path, dtype=dtype, device="cpu", batch_size=bs, max_length=96, prefix_cache=dtype != "float32" or None)
        assert model.prefix_cache, model.scoring_path
        fast, _ = _score(model, reqs)
        for n, ((ll, greedy), (pll, pgreedy)) in enumerate(zip(fast, plain, strict=True)):
            tol = 1e-4 if dtype == "float32" else max(1e-4, BF16_REL * abs(pll))
            assert ll == pytest.approx(pll, abs=tol), f"request {n}, batch_size {bs}"
            assert greedy == pgreedy, f"request {n}, batch_size {bs}"


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_fast_path_matches_lm_eval_hflm(tiny_model_factory: Any, kind: str) -> None:
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    path = str(tiny_model_factory(kind))
    reqs = _requests()
    ref = HFLM(pretrained=path, device="cpu", dtype="float32", batch_size=4, max_length=96)
    expected = ref.loglikelihood(
        [Instance("loglikelihood", {}, (r.context, r.continuation), i) for i, r in enumerate(reqs)], disable_tqdm=True
    )
    got, _ = _score(HFModel(path, dtype="float32", device="cpu", batch_size="auto", max_length=96), reqs)
    for n, ((ll, greedy), (ell, egreedy)) in enumerate(zip(got, expected, strict=True)):
        assert ll == pytest.approx(ell, abs=1e-4), f"request {n}"
        assert greedy == egreedy, f"request {n}"


def test_grouping_keeps_docs_apart_and_never_shares_a_scored_position() -> None:
    assert common_prefix_len((1, 2, 3, 4), (1, 2, 5)) == 2
    assert common_prefix_len((1, 2), (1, 2, 3)) == 2
    assert common_prefix_len((), (1,)) == 0
    desc = tuple(range(100, 110))  # a shared task description
    doc_a = desc + tuple(range(200, 260))
    doc_b = desc + tuple(range(300, 360))
    inputs = [doc_a + (1, 2), doc_a + (3,), doc_b + (4, 5, 6), doc_b + (7,), (9, 9, 9)]
    widths = [3, 2, 4, 2, 1]  # the last context token is scored: it predicts the first choice token
    groups, singles = plan_groups(inputs, widths)
    assert sorted(sorted(g.members) for g in groups) == [[0, 1], [2, 3]]
    assert singles == [4]
    for g in groups:
        assert g.prefix_len == min(len(inputs[k]) - widths[k] for k in g.members) == len(doc_a) - 1
    # inputs that share less than the minimum span are not grouped
    groups, singles = plan_groups([(1, 2, 3), (1, 2, 4)], [1, 1])
    assert groups == [] and sorted(singles) == [0, 1]


def test_group_batches_respect_fixed_size_and_recover_from_oom() -> None:
    budget = TokenBudget(batch_size=8, max_batch_size=512, device=torch.device("cpu"), probe=lambda n: None)
    # batch_size 8 = 8 full-length sequences' worth: 8 prefixes of 100 tokens; suffix rows weigh
    # 5 + 0.25 * 100 = 30 tokens each: 7 groups (28 rows, 840 tokens) fit 8 * 105, 8 do not
    shapes = [(4, 100, 5)] * 9 + [(40, 50, 5)]
    seen: list[list[int]] = []
    run_in_group_batches(list(range(10)), shapes, budget, seen.append)
    assert seen == [[0, 1, 2, 3, 4, 5, 6], [7, 8], [9]]  # a larger group still runs alone

    calls: list[list[int]] = []

    def flaky(batch: list[int]) -> None:
        calls.append(batch)
        if len(calls) == 1:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    budget = TokenBudget(batch_size="auto", max_batch_size=512, device=torch.device("cpu"), probe=lambda n: None)
    # 8192 budget tokens: two groups of 4 rows on a 3000-token prefix fit, three do not
    run_in_group_batches(list(range(4)), [(4, 3000, 5)] * 4, budget, flaky)
    assert [len(b) for b in calls] == [2, 1, 1, 1, 1]  # budget halved once, batch split, no retry

    def always(batch: list[int]) -> None:
        raise RuntimeError("out of memory")

    with pytest.raises(GapmeterError, match="shared-prefix group"):
        run_in_group_batches([0], [(4, 1000, 5)], budget, always)


def test_backend_reports_request_stats(tiny_model_factory: Any) -> None:
    path = str(tiny_model_factory("llama"))
    model = HFModel(path, dtype="float32", device="cpu", batch_size=4, max_length=96)
    reqs = _requests()
    _, stats = _score(model, reqs)
    pairs = model.encode_pairs(reqs)
    for (ctx, cont), st in zip(pairs, stats, strict=True):
        assert st.prompt_tokens == len(ctx) + len(cont) and st.completion_tokens == 0
        assert st.latency_s is not None and st.latency_s > 0 and st.batch_size >= 1

    texts = ["Some text to score. " * 20, "Short.", ""]
    got: dict[int, tuple[float, RequestStats]] = {}
    model.loglikelihood_rolling(
        [RollingLoglikelihoodRequest(t) for t in texts],
        lambda idx, res, st: got.update({i: (r, s) for i, r, s in zip(idx, res, st, strict=True)}),
    )
    assert sorted(got) == [0, 1, 2]
    assert [got[i][1].prompt_tokens for i in range(3)] == [len(model.tok_encode(t)) for t in texts]

    gen: dict[int, tuple[str, RequestStats]] = {}
    prompts = ["Question: 2+2?\nAnswer:", "Once upon a time"]
    model.generate(
        [GenerateRequest(p, ("\n\n",), 6) for p in prompts],
        lambda idx, res, st: gen.update({i: (r, s) for i, r, s in zip(idx, res, st, strict=True)}),
    )
    for i, p in enumerate(prompts):
        text, st = gen[i]
        assert st.prompt_tokens == len(model._encode_prompt(p))
        assert 0 < st.completion_tokens <= 6 and st.batch_size == 2


def test_end_to_end_metrics_identical_without_prefix_cache(llama_model_dir: Path, tmp_path: Path) -> None:
    wg = tmp_path / "data" / "winogrande"
    wg.mkdir(parents=True)
    rows = [
        {"sentence": f"Sam gave the book to Alex because _ was done reading it ({i}).", "option1": "Sam",
         "option2": "Alex", "answer": "1"}
        for i in range(8)
    ]
    for split, part in (("train", rows[4:]), ("validation", rows[:4])):
        (wg / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
    per_doc = {}
    for fast in ("true", "false"):
        out = evaluate(
            RunSpec(
                model="hf", model_args=f"pretrained={llama_model_dir},dtype=float32,prefix_cache={fast}",
                tasks=("winogrande",), num_fewshot=3, limit=4, batch_size="auto", device="cpu",
                data_dir=tmp_path / "data", db=f"sqlite:///{tmp_path}/{fast}.sqlite", output_path=None,
            )
        )
        per_doc[fast] = [s.metrics for s in out.tasks["winogrande"].scores]
    assert per_doc["true"] == per_doc["false"]


def test_end_to_end_arc_identical_without_prefix_cache(gpt2_model_dir: Path, data_dir: Path, tmp_path: Path) -> None:
    per_doc = {}
    for fast in ("auto", "false"):
        out = evaluate(
            RunSpec(
                model="hf", model_args=f"pretrained={gpt2_model_dir},dtype=float32,prefix_cache={fast}",
                tasks=("arc_challenge",), num_fewshot=5, limit=12, batch_size="8", device="cpu",
                data_dir=data_dir, db=f"sqlite:///{tmp_path}/{fast}.sqlite", output_path=tmp_path / fast,
            )
        )
        per_doc[fast] = [s.metrics for s in out.tasks["arc_challenge"].scores]
        # results.json says which path produced the numbers
        recorded = json.loads((tmp_path / fast / "results.json").read_text())["config"]["scoring_path"]
        assert recorded["loglikelihood"] == ("kv_reuse" if fast == "auto" else "exact")
    assert per_doc["auto"] == per_doc["false"]


def test_prefix_cache_only_where_the_cache_lines_up() -> None:
    from transformers import LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM

    from gapmeter.models.prefix_cache import supports_prefix_cache

    small = {"vocab_size": 64, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
             "num_attention_heads": 2, "num_key_value_heads": 1}
    assert supports_prefix_cache(LlamaForCausalLM(LlamaConfig(**small)), 2048)
    mistral = MistralForCausalLM(MistralConfig(**small, sliding_window=256))
    assert not supports_prefix_cache(mistral, 2048)  # inputs may be longer than the window
    assert supports_prefix_cache(mistral, 256)


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_scoring_path_is_chosen_by_dtype_and_said(
    tiny_model_factory: Any, kind: str, capfd: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gapmeter import notices
    from gapmeter.models.prefix_cache import prefix_cache_unsupported

    monkeypatch.setattr(notices, "_said", set())  # notes are said once per process

    path = str(tiny_model_factory(kind))
    fp32 = HFModel(path, dtype="float32", device="cpu", max_length=96)
    # the installed transformers must keep the fast path on for these architectures
    assert prefix_cache_unsupported(fp32.model, fp32.max_length) is None
    assert fp32.scoring_path["loglikelihood"] == "kv_reuse" and fp32.prefix_cache
    assert fp32.scoring_path["logits_to_keep"] is True

    bf16 = HFModel(path, dtype="bfloat16", device="cpu", max_length=96)
    assert bf16.scoring_path["loglikelihood"] == "exact" and not bf16.prefix_cache
    assert bf16.scoring_path["lm_eval_exact"] is True

    forced = HFModel(path, dtype="bfloat16", device="cpu", max_length=96, prefix_cache=True)
    assert forced.prefix_cache and forced.scoring_path["lm_eval_exact"] is False
    assert "prefix_cache=true with bfloat16 weights" in capfd.readouterr().err
    # the path is part of the model's identity: cached responses of one never serve the other
    assert forced.fingerprint() != bf16.fingerprint()


def test_a_cache_keyword_the_model_lacks_is_said_not_silent(capfd: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from gapmeter import notices
    from gapmeter.models.scoring_path import choose_scoring_path

    monkeypatch.setattr(notices, "_said", set())

    record = choose_scoring_path(
        requested=True, dtype=torch.float32, unsupported="X.forward takes no KV cache", logits_to_keep=False,
        architecture="X",
    )
    assert record["loglikelihood"] == "exact" and "takes no KV cache" in record["reason"]
    err = capfd.readouterr().err
    assert "prefix_cache=true is not applied for X" in err
    assert "X.forward takes no logits_to_keep" in err


def test_batch_scoring_is_bitwise_the_per_request_computation() -> None:
    """One log-softmax/gather/copy per batch gives lm-eval's per-request numbers exactly."""
    import torch.nn.functional as F

    from gapmeter.models.batch_scoring import ScoredRow, score_rows

    gen = torch.Generator().manual_seed(0)
    for dtype in (torch.float32, None):
        logits = (torch.randn(3, 17, 301, generator=gen) * 4).to(torch.bfloat16 if dtype is None else torch.float32)
        rows = [
            ScoredRow(0, 17, 9, [[5, 7, 9, 11, 13, 15, 17, 19, 21], [3], [300, 2]]),
            ScoredRow(1, 12, 1, [[42]]),
            ScoredRow(2, 15, 13, [list(range(13)), list(range(100, 103))]),
        ]
        got = score_rows(logits, rows, dtype)
        want = []
        for r in rows:
            for cont in r.continuations:  # lm-eval's HFLM._loglikelihood_tokens, per request
                lp = F.log_softmax(logits[r.row : r.row + 1, r.end - len(cont) : r.end], dim=-1, dtype=dtype)
                target = torch.tensor([cont])
                ll = torch.gather(lp, 2, target.unsqueeze(-1)).squeeze(-1)
                want.append((float(ll.sum()), bool((lp.argmax(dim=-1) == target).all())))
        assert got == want
    # a greedy continuation is recognised
    logits = torch.zeros(1, 3, 5)
    logits[0, 0, 2] = logits[0, 1, 4] = 1.0
    assert score_rows(logits, [ScoredRow(0, 2, 2, [[2, 4], [4]])], torch.float32)[0][1] is True


@pytest.mark.parametrize("prefix_cache", [True, False])
def test_tokenize_pipeline_chunks_change_nothing(tiny_model_factory: Any, prefix_cache: bool) -> None:
    """Tokenizing the next chunk while one is scored gives every request its own answer, once."""
    path = str(tiny_model_factory("llama"))
    reqs = _requests()
    whole = HFModel(path, dtype="float32", device="cpu", batch_size=4, max_length=96, prefix_cache=prefix_cache)
    expected, _ = _score(whole, reqs)
    chunked = HFModel(path, dtype="float32", device="cpu", batch_size=4, max_length=96, prefix_cache=prefix_cache)
    chunked.tokenize_chunk = 3  # many chunks, docs split across them
    got, stats = _score(chunked, reqs)  # _score fails on a request answered twice or never
    for n, ((ll, greedy), (ell, egreedy)) in enumerate(zip(got, expected, strict=True)):
        assert ll == pytest.approx(ell, abs=1e-4), f"request {n}"
        assert greedy == egreedy, f"request {n}"
    assert all(s.prompt_tokens and s.prompt_tokens > 0 for s in stats)
    assert chunked.phase_seconds["tokenize"] > 0
