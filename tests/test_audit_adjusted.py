"""Difficulty-adjusted inflation (issue 18): the estimator, its bootstrap, per-item membership, and
a planted case where the reference is harder than the public items."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from rich.console import Console

from gapmeter.audit.adjusted import BaselineScores, adjusted_inflation
from gapmeter.audit.config import AuditConfig
from gapmeter.audit.membership import membership_probability
from gapmeter.commands.audit import AuditOptions, parse_baselines, run_audit
from gapmeter.errors import ConfigError
from gapmeter.selftest.corpus import ITEM_TEMPLATE, render
from gapmeter.selftest.train import train_lm
from gapmeter.tasks import formats


def _bits(p: float, n: int, rng: np.random.Generator) -> list[float]:
    return [float(x) for x in (rng.random(n) < p)]


def test_one_baseline_subtracts_its_difference_and_widens_the_interval() -> None:
    rng = np.random.default_rng(0)
    public, reference = _bits(0.8, 400, rng), _bits(0.4, 400, rng)
    base_pub, base_ref = _bits(0.6, 400, rng), _bits(0.4, 400, rng)
    inf = adjusted_inflation(public, reference, [BaselineScores("b", base_pub, base_ref)], seed=1)
    expected = (np.mean(public) - np.mean(reference)) - (np.mean(base_pub) - np.mean(base_ref))
    assert inf.estimate == pytest.approx(expected)
    assert inf.difficulty_adjusted and inf.source == "adjusted"
    assert inf.unadjusted_estimate == pytest.approx(np.mean(public) - np.mean(reference))
    assert inf.ci_low < inf.estimate < inf.ci_high
    # a baseline without sampling noise (constant scores) adds nothing to the interval; a real one does
    flat = adjusted_inflation(public, reference, [BaselineScores("flat", [0.5] * 400, [0.5] * 400)], seed=1)
    assert (inf.ci_high - inf.ci_low) > 1.2 * (flat.ci_high - flat.ci_low)


def test_three_baselines_fit_a_line_from_reference_to_public_score() -> None:
    # baselines whose public score is 0.1 + 1.5·reference: the audited model sits 0.12 above the line
    rng = np.random.default_rng(3)
    n = 4000
    baselines = []
    for r in (0.3, 0.4, 0.5):
        baselines.append(BaselineScores(f"b{r}", _bits(0.1 + 1.5 * r, n, rng), _bits(r, n, rng)))
    public, reference = _bits(0.1 + 1.5 * 0.35 + 0.12, n, rng), _bits(0.35, n, rng)
    inf = adjusted_inflation(public, reference, baselines, seed=0)
    assert "line fit" in inf.method
    assert inf.estimate == pytest.approx(0.12, abs=0.04)
    assert inf.ci_low < 0.12 < inf.ci_high
    with pytest.raises(ValueError):
        adjusted_inflation(public, reference, [])


def test_membership_probability_is_calibrated_against_the_reference() -> None:
    rng = np.random.default_rng(0)
    reference = rng.normal(0, 1, 600)
    members = rng.normal(3, 1, 150)
    public = np.concatenate([rng.normal(0, 1, 350), members])
    prob, pi0 = membership_probability(public, reference)
    assert pi0 == pytest.approx(0.7, abs=0.1)
    assert prob[350:].mean() > 0.75 and prob[:350].mean() < 0.25
    assert prob.sum() == pytest.approx(150, rel=0.25)


def test_baseline_options_pair_models_with_their_args() -> None:
    assert parse_baselines(["hf", "hf"], ["pretrained=a", "pretrained=b"]) == (("hf", "pretrained=a"), ("hf", "pretrained=b"))
    assert parse_baselines(["dummy"], None) == (("dummy", ""),)
    assert parse_baselines(None, None) == ()
    with pytest.raises(ConfigError, match="given 1 times for 2"):
        parse_baselines(["hf", "hf"], ["pretrained=a"])


# --- a planted case: public items in 2-option form (chance 50%), reference in 4-option form (25%)

def _two_options(row: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    labels, texts = row["choices"]["label"], row["choices"]["text"]
    gold = labels.index(row["answerKey"])
    wrong = rng.choice([i for i in range(len(texts)) if i != gold])
    pair = [texts[gold], texts[wrong]]
    if rng.random() < 0.5:
        pair.reverse()
    return {**row, "choices": {"label": ["A", "B"], "text": pair}, "answerKey": "AB"[pair.index(texts[gold])]}


def _task(name: str) -> dict[str, Any]:
    return {
        "task": name, "source": {"local": {"format": "hf_jsonl", "files": {"test": f"{name}.jsonl"}}},
        "test_split": "test", "output_type": "multiple_choice", "doc_to_text": ITEM_TEMPLATE,
        "doc_to_target": "{{choices.label.index(answerKey)}}", "doc_to_choice": "{{choices.label}}",
        "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
    }


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> dict[str, Any]:
    """A contaminated tiny GPT-2 (public items planted 8× per epoch, 10 epochs) and its placebo twin (as many
    copies of other items in the same form), trained from scratch with the same seed and budget."""
    out = tmp_path_factory.mktemp("adjusted")
    rng = random.Random(0)
    test_rows = [r for r in formats.convert("arc_jsonl", {"test": data_dir / "arc/ARC-Easy/ARC-Easy-Test.jsonl"})["test"]
                 if len(r["choices"]["text"]) == 4]
    train_rows = formats.convert("arc_jsonl", {"train": data_dir / "arc/ARC-Easy/ARC-Easy-Train.jsonl"})["train"]
    rng.shuffle(test_rows)
    public = [_two_options(r, rng) for r in test_rows[:40]]
    placebo = [_two_options(r, rng) for r in test_rows[40:80]]
    reference = test_rows[80:480]
    for name, rows in (("adj_public", public), ("adj_reference", reference)):
        (out / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (out / "tasks.yaml").write_text(yaml.safe_dump_all([_task("adj_public"), _task("adj_reference")], sort_keys=False))
    base = [render(r) for r in train_rows[:200]]
    models = {}
    for kind, plants in (("contaminated", public), ("twin", placebo)):
        docs = base + [render(r) for r in plants] * 8
        random.Random(1).shuffle(docs)
        models[kind] = out / kind
        train_lm(models[kind], documents=docs, tokenizer_texts=base, size="tiny", epochs=10, seed=0, threads=1)
    return {"dir": out, **models}


def test_adjusted_inflation_recovers_a_planted_gain_when_the_reference_is_harder(planted: dict[str, Any], tmp_path: Path) -> None:
    d = planted["dir"]
    opts = AuditOptions(
        model="hf", model_args=f"pretrained={planted['contaminated']},dtype=float32", tasks=("adj_public",),
        references=(("adj_public", "adj_reference"),), detectors="min_k,min_k_plus_plus", output_path=tmp_path,
        data_dir=d, include_path=(d,), batch_size="32", device="cpu",
        baselines=(("hf", f"pretrained={planted['twin']},dtype=float32"),),
    )
    (audit,) = run_audit(opts, AuditConfig(), Console(quiet=True), progress_console=Console(quiet=True)).audits
    inf = audit.inflation
    assert inf is not None and inf.difficulty_adjusted
    twin_public = inf.baselines[0]["public_score"]
    truth = inf.public_score - twin_public  # what contamination added on these very items
    print(f"truth {truth:+.3f}, adjusted {inf.estimate:+.3f} [{inf.ci_low:+.3f}, {inf.ci_high:+.3f}], "
          f"unadjusted {inf.unadjusted_estimate:+.3f}, twin public {twin_public:.3f} reference {inf.baselines[0]['reference_score']:.3f}")
    # the reference is harder for a clean model: the unadjusted estimate carries that gap
    assert twin_public - inf.baselines[0]["reference_score"] > 0.1
    assert truth > 0.1
    assert abs(inf.estimate - truth) <= 0.03
    assert inf.ci_low <= truth <= inf.ci_high
    assert inf.unadjusted_estimate - truth > 0.1

    # per-item rows: every public and reference item, membership probabilities for the public ones
    doc = json.loads((tmp_path / "audit.json").read_text())["tasks"][0]
    public_rows = [r for r in doc["items"] if r["set"] == "test"]
    assert len(public_rows) == 40 and sum(r["set"] == "reference" for r in doc["items"]) == 400
    assert all(0.0 <= r["membership_probability"] <= 1.0 and "min_k_plus_plus" in r for r in public_rows)
    assert doc["clean_items_score"]["n_public"] == 40
    assert doc["inflation"]["difficulty_adjusted"] is True
    # the planted items look seen: most of the public set is called a member
    assert doc["clean_items_score"]["expected_members"] > 20
    print("clean items score:", doc["clean_items_score"])

    # the store keeps the rows, and the board's drill-down reads them
    from sqlalchemy import create_engine, text

    from gapmeter.board.dimensions import _membership_detail

    with create_engine(f"sqlite:///{tmp_path / 'gapmeter.sqlite'}").connect() as c:
        source, config = c.execute(text("select inflation_source, config from audit_verdicts")).one()
    stored = json.loads(config)
    assert source == "adjusted" and len(stored["items"]) == 440
    drill = _membership_detail(stored)
    # every public item was planted: all look seen, none is left as likely clean
    assert drill["likely_clean_score"].startswith("no likely-clean item among 40")
    assert drill["likely_seen_items"].count("doc ") == 20  # the 20 most likely, highest first
    assert "mean baseline gap" in drill["inflation_method"]

    # without a baseline the same audit says its estimate is not difficulty-adjusted
    plain = run_audit(AuditOptions(**{**opts.__dict__, "baselines": (), "output_path": tmp_path / "plain"}), AuditConfig(),
                      Console(quiet=True), progress_console=Console(quiet=True)).audits[0].inflation
    assert plain is not None and not plain.difficulty_adjusted and "not difficulty-adjusted" in plain.method
    assert plain.estimate == pytest.approx(inf.unadjusted_estimate)
