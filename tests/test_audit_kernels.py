"""The audit's fused GELU swap (audit/kernels.py) changes nothing a detector reads beyond 1e-5,
and leaves the backend as it found it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from transformers.activations import GELUTanh, NewGELUActivation

from gapmeter.audit.kernels import fused_activations
from gapmeter.audit.responses import RequestRunner
from gapmeter.audit.tokens import token_scorer_for
from gapmeter.models.hf import load_hf
from gapmeter.requests import GenerateRequest, LoglikelihoodRequest, RollingLoglikelihoodRequest

TEXTS = [
    "Question: Which gas do plants take in?\nA. oxygen\nB. carbon dioxide\nC. helium\nD. neon\nAnswer: B",
    "Question: What makes a shadow?\nA. light blocked by an object\nB. sound\nC. heat\nAnswer: A",
    "The water cycle moves water between the ocean, the air and the land.",
]


def _everything(backend: Any) -> tuple[list[Any], list[Any], list[Any], list[Any]]:
    runner = RequestRunner(backend)  # fresh memo: every call computes
    scorer = token_scorer_for(backend)
    assert scorer is not None
    stats = scorer.token_stats(TEXTS)
    ll = runner.run([LoglikelihoodRequest(t[:-2], t[-2:]) for t in TEXTS[:2]]
                    + [LoglikelihoodRequest(TEXTS[0][:-2], " " + x) for x in "ACD"])
    rolling = runner.run([RollingLoglikelihoodRequest("\n\n".join(TEXTS * 40))])  # several windows
    gen = runner.run([GenerateRequest(t[:40], ("\n",), 12, (("do_sample", False), ("temperature", 0.0))) for t in TEXTS])
    return stats, ll, rolling, gen


def test_fused_gelu_matches_the_model_and_is_undone(gpt2_model_dir: Path) -> None:
    backend = load_hf({"pretrained": str(gpt2_model_dir), "dtype": "float32"}, device="cpu", batch_size=4)
    before = _everything(backend)
    with fused_activations(backend) as swapped:
        assert swapped == backend.model.config.n_layer  # one activation per block
        assert not any(type(m) is NewGELUActivation for m in backend.model.modules())
        during = _everything(backend)
    assert sum(type(m) is NewGELUActivation for m in backend.model.modules()) == backend.model.config.n_layer
    assert not any(type(m) is GELUTanh for m in backend.model.modules())
    for a, b in zip(before[0], during[0], strict=True):
        for field in ("logp", "mu", "sigma"):
            np.testing.assert_allclose(getattr(b, field), getattr(a, field), rtol=0, atol=1e-5)
    for (la, ga), (lb, gb) in zip(before[1], during[1], strict=True):
        assert abs(la - lb) < 1e-5 and ga == gb
    assert abs(before[2][0] - during[2][0]) <= 1e-5 * max(1.0, abs(before[2][0]))  # a sum over ~1k tokens
    assert before[3] == during[3]


def test_backends_without_a_torch_model_are_left_alone() -> None:
    class Remote:
        model = "gpt-x"

    with fused_activations(Remote()) as swapped:
        assert swapped == 0
