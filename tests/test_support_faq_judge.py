"""The support-FAQ example's toy judge (examples/support_faq/tiny_judge.py): its rule, its
held-out training items, its tokenizer over gapmeter's real judge prompts, and — trained on a tiny
budget — verdicts that gapmeter's parser reads, through `gapmeter serve` and `gapmeter judge`."""

from __future__ import annotations

import csv
import importlib.util
import random
import sys
from pathlib import Path
from types import ModuleType

from support.api_server import hf_served, serving
from support.scripted_served import ScriptedServed, answering

from gapmeter.commands.judge import JudgeOptions, judge_command
from gapmeter.commands.task_init import init_task
from gapmeter.engine.evaluate import evaluate
from gapmeter.judge.prompts import pairwise_prompt, parse_pairwise, parse_single, single_prompt
from gapmeter.spec import RunSpec

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "support_faq"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"support_faq_{name}", EXAMPLE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


tj = _load("tiny_judge")
build_cases = _load("build_cases")


def test_the_rule_a_person_can_check() -> None:
    ref = "Refunds take 5 business days."
    assert tj.passes("Refunds take 5 business days.", ref)
    assert tj.passes("refunds take 5 business days", ref)  # case and punctuation do not matter
    assert not tj.passes("Refunds take 7 business days.", ref)  # a changed fact
    assert not tj.passes("Refunds take 5 businesssss days.", ref)  # a misspelt word is another word
    assert not tj.passes("Yes, PayPal is accepted.", ref)  # the answer to another question
    assert not tj.passes("Refunds take 5 business days, or 10.", ref)  # a fact added
    assert tj.passes("Go to Settings, Security, Reset password.", "Open Settings, then Security, then Reset password.")
    assert tj.pair_verdict(ref, "About a week.", ref) == "[[A]]"
    assert tj.pair_verdict("About a week.", ref, ref) == "[[B]]"
    assert tj.pair_verdict(ref, ref, ref) == tj.pair_verdict("No.", "Maybe.", ref) == "[[C]]"
    rng = random.Random(0)
    refs = [a for _, a in tj.faq_entries()]
    for ref in refs:
        for want in (True, False):
            assert tj.passes(tj.variant(ref, refs, rng, want), ref) == want


def test_training_items_are_not_the_judged_ones() -> None:
    faq = tj.faq_entries()
    assert len(faq) == 12 and faq[0] == ("How do I reset my password?", "Open Settings, then Security, then Reset password.")
    judged = {tj.key_words(a) for _, a in faq} | {tj.key_words(q) for q, _ in faq}
    generated = tj.generated_items(random.Random(0), 2000, faq)
    assert not judged & ({tj.key_words(a) for _, a in generated} | {tj.key_words(q) for q, _ in generated})
    # The calibration answers a person graded agree with the rule the judge learns.
    rows = build_cases.parse((EXAMPLE / "faq.md").read_text(encoding="utf-8"))
    assert all(r["graded_answer"] and r["human_label"] in ("pass", "fail") for r in rows)
    assert {r["human_label"] for r in rows} == {"pass", "fail"}


def test_the_tokenizer_reads_gapmeters_own_prompts(tmp_path: Path) -> None:
    faq = tj.faq_entries()
    tok = tj.build_tokenizer(tmp_path, [f"{q} {a}" for q, a in faq], tj.RUBRIC)
    (q, ref), (_, other) = faq[0], faq[1]
    for prompt in (single_prompt(q, ref, other, rubric=tj.RUBRIC, scale="pass_fail"),
                   pairwise_prompt(q, ref, ref, other, rubric=tj.RUBRIC)):
        tokens = tok.convert_ids_to_tokens(tok(prompt)["input_ids"])
        assert tj.UNK not in tokens and len(tokens) < 60  # the fixed text is a few whole tokens
        assert tokens[-1].endswith("Justification:")
    verdict = tok.convert_tokens_to_ids("[[PASS]]")
    assert tok.decode([verdict, tok.eos_token_id], skip_special_tokens=True) == "[[PASS]]"  # as served
    assert parse_single(tok.decode([verdict]), "pass_fail") == 1.0
    assert tok.convert_ids_to_tokens(tok("Reseset passssword")["input_ids"]) == [tj.UNK, tj.UNK]


class _Quiet:
    def print(self, text: str, **_: object) -> None:
        pass


def test_a_briefly_trained_judge_gives_readable_verdicts_through_serve(tmp_path: Path) -> None:
    """A few dozen steps (seconds): not a good judge yet, but every verdict it gives through the
    real path (`gapmeter serve`'s app, `gapmeter judge` single and pairwise) is one the parser reads."""
    report = tj.train(tmp_path, steps=60, every=60, single_first=20, max_seconds=60, log=lambda _: None)
    assert 0.0 <= report["held_out"] <= 1.0 and report["steps"] == 60
    rows = build_cases.parse((EXAMPLE / "faq.md").read_text(encoding="utf-8"))[:4]
    with (tmp_path / "cases.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    init = init_task(tmp_path / "cases.csv", given={})
    answers = {r["question"]: r["answer"] if i % 2 else "About a week." for i, r in enumerate(rows)}
    runs = {}
    for name, script in (("right", {r["question"]: r["answer"] for r in rows}), ("mixed", answers)):
        with serving(ScriptedServed(name, answering(script))) as server:
            evaluate(RunSpec(model="openai", model_args=f"base_url={server.url},model={name}", tasks=("cases",),
                             include_path=(init.yaml_path,), output_path=tmp_path / name, bootstrap_iters=100))
        runs[name] = str(tmp_path / name)
    rubric = tmp_path / "rubric.txt"
    rubric.write_text(tj.RUBRIC + "\n", encoding="utf-8")
    with serving(hf_served(tmp_path / "models" / "judge", name="judge")) as judge:
        args = f"base_url={judge.url},model=judge"
        single = judge_command(JudgeOptions([runs["mixed"]], "openai", args, rubric=rubric, scale="pass_fail",
                                            max_tokens=8), _Quiet(), _Quiet())
        pair = judge_command(JudgeOptions([runs["right"], runs["mixed"]], "openai", args, rubric=rubric,
                                          pairwise=True, max_tokens=8, output=tmp_path / "pairwise.json"), _Quiet(), _Quiet())
    (summary,) = single["runs"].values()
    assert summary["unparseable"] == 0 and summary["retried"] == 0
    assert summary["calibration"]["n"] == 4 and summary["calibration"]["unparseable"] == 0
    assert pair["summary"]["n_pairs"] == 4 and pair["summary"]["unparseable"] == 0
    replies = [r for p in pair["pairs"] for r in (*p["a_first"]["raw"], *p["b_first"]["raw"])]
    assert all(parse_pairwise(r) is not None for r in replies)
    assert summary["metrics"]["cases"]["n"] == 4 and 0.0 <= summary["metrics"]["cases"]["value"] <= 1.0
