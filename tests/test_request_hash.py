"""Request hashes key every response cache, doc hashes pair items across runs: they must never
change across versions."""

import datetime

from gapmeter.requests import (
    GenerateRequest,
    LoglikelihoodRequest,
    RollingLoglikelihoodRequest,
    doc_hash,
    request_hash,
)

# Computed with the original implementation (json of dataclasses.asdict, sorted keys).
PINNED = [
    (GenerateRequest('a\u00e9"x', ("\n", "Q:"), 8, (("temperature", 0.5), ("do_sample", True))),
     "8411fc2f73cae70c2c496a93c384bdafc33537ea03b11c9396898371c0ff3ec1"),
    (LoglikelihoodRequest("ctx", " cont"), "9ba506d066c667d4e7ea9c934601c7bb4c6f013bc735049667f797d8a043d70b"),
    (RollingLoglikelihoodRequest("t"), "fe1caec248c43d7c793c95e40262c97e06630bc22077e5ad13eb3007fa009f25"),
    (GenerateRequest("c", (), 256), "9075e9e3970df8fb799880a98d25f157dfbb607259c1336b8d43ac044be6f926"),
]


def test_request_hashes_are_pinned() -> None:
    for request, expected in PINNED:
        assert request_hash(request) == expected, request


def test_kind_and_every_argument_change_the_hash() -> None:
    base = GenerateRequest("c", ("\n",), 8)
    variants = [GenerateRequest("d", ("\n",), 8), GenerateRequest("c", ("\n\n",), 8), GenerateRequest("c", ("\n",), 9),
                GenerateRequest("c", ("\n",), 8, (("temperature", 0.1),))]
    assert len({request_hash(r) for r in [base, *variants]}) == 5
    assert request_hash(LoglikelihoodRequest("a", "b")) != request_hash(RollingLoglikelihoodRequest("ab"))


def test_doc_hashes_are_pinned() -> None:
    # Computed with the original implementation (engine/evaluate.py before issue 22): stored
    # records, submissions and private splits pair items by these hashes.
    assert doc_hash({"question": 'Qu\u00e9 "x"', "choices": ["a", "b"], "answer": 1, "n": 2.5}) == (
        "310d5a9cad6cbb38d1d350a7c1ef5d5179bfe73bc3adbf8a02e9928bfa5d4562")
    assert doc_hash({"b": 1, "a": None, "when": datetime.date(2024, 1, 2)}) == (
        "e39cfc65901386dc4496e102eced2f25f5723c8154645e0111d6accc8e8c97b9")


def test_shown_generation_options_change_the_logged_arguments_not_the_request() -> None:
    # lm-eval logs only the generation options the task (or --gen_kwargs) set; gapmeter's request
    # still carries all of them, and its hash and equality ignore how it is shown.
    full = GenerateRequest("Q: 1+1?\nA:", ("\n",), 256, (("do_sample", False), ("temperature", 0.0)))
    shown = GenerateRequest("Q: 1+1?\nA:", ("\n",), 256, (("do_sample", False), ("temperature", 0.0)),
                            shown=("until", "do_sample", "temperature"))
    assert request_hash(shown) == request_hash(full) and shown == full
    assert full.args()[1] == {"until": ["\n"], "max_gen_toks": 256, "do_sample": False, "temperature": 0.0}
    assert list(shown.args()[1].items()) == [("until", ["\n"]), ("do_sample", False), ("temperature", 0.0)]


def test_generation_defaults_are_lm_evals() -> None:
    # lm-eval's TaskConfig.__post_init__: no generation_kwargs -> default_gen_kwargs(fewshot
    # delimiter); a block without `until` -> until = [fewshot_delimiter].
    from gapmeter.tasks.schema import TaskConfig

    base = {"task": "t", "output_type": "generate_until", "doc_to_text": "x", "doc_to_target": "y",
            "test_split": "test", "fewshot_delimiter": "\n###\n",
            "source": {"local": {"format": "gsm8k_jsonl", "files": {"test": "a"}}}}
    gen = TaskConfig.model_validate(base).generation_kwargs
    assert gen is not None and gen.until == ["\n###\n"] and gen.max_gen_toks == 256 and not gen.do_sample
    gen = TaskConfig.model_validate({**base, "generation_kwargs": {"do_sample": False}}).generation_kwargs
    assert gen is not None and gen.until == ["\n###\n"] and gen.model_fields_set == {"do_sample"}
    gen = TaskConfig.model_validate({**base, "generation_kwargs": {"until": ["Q:"]}}).generation_kwargs
    assert gen is not None and gen.until == ["Q:"]
