"""`gapmeter judge` end to end: two models answer a user's CSV through `gapmeter serve`'s app on
127.0.0.1 (scripted answers), a judge served the same way grades them (scripted policies: fair,
position-biased), verdicts are stored as a run metric that `compare` reads, κ against human labels
is checked against scikit-learn, and position swaps are computed from the judge's two answers."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from sqlalchemy import select
from support.api_server import serving
from support.scripted_served import ScriptedServed, answering, fair_judge, first_position_judge

from gapmeter.commands.judge import JudgeOptions, judge_command
from gapmeter.commands.task_init import init_task
from gapmeter.compare.report import compare_stored
from gapmeter.compare.runs import open_run
from gapmeter.engine.evaluate import evaluate
from gapmeter.judge.agreement import cohen_kappa
from gapmeter.judge.identity import family, self_preference
from gapmeter.judge.pairwise import pair_outcome
from gapmeter.judge.prompts import parse_pairwise, parse_single
from gapmeter.spec import RunSpec
from gapmeter.store.models import DocRecord, MetricValue, Run

CASES = [  # id, question, reference, category, an answer a human graded, the human's grade
    ("r1", "How do I reset my password?", "Settings > Security > Reset", "account",
     "Settings > Security > Reset, then confirm by email", "pass"),
    ("r2", "Can I change my username?", "No, usernames are permanent", "account", "Yes you can", "fail"),
    ("r3", "How long do refunds take?", "5 business days", "billing", "About 5 business days", "pass"),
    ("r4", "Do you accept PayPal?", "Yes, PayPal is accepted", "billing", "Yes, PayPal is accepted", "pass"),
    ("r5", "Is there a student discount?", "20% with a student email", "billing", "", ""),
    ("r6", "Where is my invoice?", "Billing > Invoices", "billing", "In the app", "pass"),  # a lenient human
]
# Model "good" is right on r1, r3, r4, r6 (r6 late-parseable), wrong on r2, unreadable on r5.
GOOD = {"How do I reset my password?": "Go to Settings > Security > Reset.",
        "Can I change my username?": "Yes, anytime.",
        "How long do refunds take?": "Refunds take 5 business days.",
        "Do you accept PayPal?": "Yes, PayPal is accepted at checkout.",
        "Is there a student discount?": "UNREADABLE",
        "Where is my invoice?": "LATE: see Billing > Invoices."}
# Model "weak" is right on r1 only, and wordier.
WEAK = {q: "Please contact our support team by email and we will get back to you soon." for q in GOOD}
WEAK["How do I reset my password?"] = "Settings > Security > Reset"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("judge")
    with (root / "faq.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "question", "answer", "category", "graded_answer", "human_label"])
        w.writerows(CASES)
    init = init_task(root / "faq.csv", given={})
    assert init.columns["human_label"] == "human_label" and init.columns["graded_answer"] == "graded_answer"
    out = {}
    for name, answers in (("good", GOOD), ("weak", WEAK)):
        with serving(ScriptedServed(name, answering(answers))) as server:
            spec = RunSpec(model="openai", model_args=f"base_url={server.url},model={name}", tasks=("faq",),
                           include_path=(init.yaml_path,), output_path=root / name, bootstrap_iters=1000)
            evaluate(spec)
        out[name] = root / name
    return out


def _judge(refs: list[Path], url: str, **kw: object) -> dict:
    opts = JudgeOptions([str(r) for r in refs], "openai", f"base_url={url},model=judge-x", max_tokens=32, **kw)  # type: ignore[arg-type]
    return judge_command(opts, _Quiet(), _Quiet())


class _Quiet:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def print(self, text: str, **_: object) -> None:
        self.lines.append(text)


def test_single_grading_is_stored_as_a_metric_with_calibration_and_cost(runs: dict[str, Path]) -> None:
    with serving(ScriptedServed("judge-x", fair_judge)) as judge:
        first = _judge([runs["good"]], judge.url, scale="pass_fail")
        doc = _judge([runs["good"]], judge.url, scale="pass_fail")  # again: every reply from the store
    run_id = next(iter(doc["runs"]))
    assert first["runs"][run_id]["judge"]["cost"]["computed_now"] == 13
    assert doc["runs"][run_id]["judge"]["cost"]["computed_now"] == 0
    assert {k: v for k, v in doc["runs"][run_id].items() if k != "judge"} == \
        {k: v for k, v in first["runs"][run_id].items() if k != "judge"}
    s = doc["runs"][run_id]
    # r5 has no verdict even when asked again: counted, not scored; r6's verdict came on the retry.
    assert s["unparseable"] == 1 and s["retried"] == 2
    m = s["metrics"]
    assert m["faq_account"]["value"] == pytest.approx(0.5) and m["faq_account"]["n"] == 2
    assert m["faq_billing"]["value"] == pytest.approx(1.0) and m["faq_billing"]["n"] == 3
    assert m["faq"]["value"] == pytest.approx(4 / 5) and m["faq"]["is_group"]
    # Calibration: the judge grades the 5 answers humans graded (r1-r4, r6) and disagrees on r6.
    judged, human = [1.0, 0.0, 1.0, 1.0, 0.0], [1.0, 0.0, 1.0, 1.0, 1.0]
    from sklearn.metrics import cohen_kappa_score

    cal = s["calibration"]
    assert cal["n"] == 5 and cal["accuracy"] == pytest.approx(0.8) and cal["unparseable"] == 0
    assert [i["judge"] for i in cal["items"]] == judged
    assert cal["kappa"] == pytest.approx(cohen_kappa_score(judged, human))
    assert cal["kappa_ci95"][0] <= cal["kappa"] <= cal["kappa_ci95"][1]
    cost = s["judge"]["cost"]
    # Measured when computed, stored like a run's request timings: the same on the cached second pass.
    assert cost["requests"] == 6 + 2 + 5 and cost["latency_s"]["p50"] is not None and cost["prompt_tokens"] > 0
    assert cost["latency_s"] == first["runs"][run_id]["judge"]["cost"]["latency_s"]

    run = open_run(str(runs["good"]))
    with run.sessions() as db:
        rec = db.scalars(select(DocRecord.record).where(DocRecord.run_id == run.id, DocRecord.doc_id == 2,
                                                        DocRecord.task == "faq_billing")).one()
        rows = {r.task: r.value for r in db.scalars(select(MetricValue).where(MetricValue.metric == "judge_pass"))}
    assert rows == {"faq_account": 0.5, "faq_billing": 1.0, "faq": pytest.approx(0.8)}
    j = rec["judge"]["judge_pass"]  # r5: two raw replies, no verdict, no metric value
    assert not j["parsed"] and len(j["raw"]) == 2 and "[Answer to grade]\nUNREADABLE" in j["prompt"]
    assert "Rubric: The answer must agree with the reference answer" in j["prompt"]  # the default rubric
    assert "judge_pass,none" not in rec["metrics"]
    results = json.loads((runs["good"] / "results.json").read_text())
    assert results["results"]["faq_billing"]["judge_pass,none"] == 1.0
    assert results["gapmeter"]["judge"]["judge_pass"]["unparseable"] == 1
    # lm-eval's copy beside the samples files, and the document `export` writes, carry it too.
    (lm_eval_copy,) = (runs["good"] / results["model_name_sanitized"]).glob("results_*.json")
    assert json.loads(lm_eval_copy.read_text())["results"]["faq_billing"]["judge_pass,none"] == 1.0
    with run.sessions() as db:
        stored = db.get(Run, run.id).spec["results_document"]
    assert stored["results"]["faq_billing"]["judge_pass,none"] == 1.0
    # The board's drill-down shows the judge's prompt and raw replies.
    from gapmeter.board.views import _sample_view

    view = _sample_view(rec, "exact_match,none", None)
    assert view["judge"]["judge_pass"]["raw"] == j["raw"]
    import httpx

    from gapmeter.board.app import create_app
    from gapmeter.board.context import BoardSettings
    from gapmeter.serve.runner import ServerThread

    with ServerThread(create_app(BoardSettings(db_url=run.db_url))) as board:
        page = httpx.get(f"{board.url.removesuffix('/v1')}/runs/{run.id}", params={"task": "faq_billing"}, timeout=60)
    assert page.status_code == 200
    assert "judge_pass: unparseable by judge-x" in page.text and "judge_pass: 1.0 by judge-x" in page.text
    assert "[Answer to grade]\nUNREADABLE" in page.text and "judge_pass" in page.text.split('id="metrics"')[1]


def test_judged_scores_compare_with_paired_tests(runs: dict[str, Path], tmp_path: Path) -> None:
    rubric = tmp_path / "rubric.txt"
    rubric.write_text("Only the facts of the reference count.\n")
    with serving(ScriptedServed("judge-x", fair_judge)) as judge:
        _judge([runs["good"]], judge.url, rubric=rubric)
        doc = _judge([runs["weak"]], judge.url, rubric=rubric)
    weak = next(iter(doc["runs"].values()))
    assert weak["metrics"]["faq"]["value"] == pytest.approx((9 + 2 * 5) / 6)  # only r1 right
    report = compare_stored(open_run(str(runs["good"])), open_run(str(runs["weak"])), metric="judge_score",
                            iters=2000)
    row = next(r for r in report.rows if r.unit.name == "faq")
    # Paired on the 5 items both runs have a verdict for (r5 of "good" is unparseable): r1 tie, r2 2 vs 2,
    # r3, r4, r6: 9 vs 2 → mean difference 21/5.
    assert row.unit.metric == "judge_score" and row.result.n == 5
    assert row.result.diff == pytest.approx(21 / 5) and row.result.ci_low > 0
    with open_run(str(runs["weak"])).sessions() as db:
        rec = db.scalars(select(DocRecord.record).where(DocRecord.task == "faq_account", DocRecord.doc_id == 0)).one()
    assert "Rubric: Only the facts of the reference count.\n" in rec["judge"]["judge_score"]["prompt"]
    assert weak["judge"]["rubric_sha"] != "" and weak["scale"] == "1-10"


def test_pairwise_in_both_orders_with_a_fair_and_a_position_biased_judge(runs: dict[str, Path], tmp_path: Path) -> None:
    with serving(ScriptedServed("judge-x", fair_judge)) as judge:
        fair = _judge([runs["good"], runs["weak"]], judge.url, pairwise=True, output=tmp_path / "fair.json")
    s = fair["summary"]
    # r1: both right → tie (consistent); r2 neither → tie; r3, r4, r6: good wins; r5 unreadable → left out.
    assert (s["n_scored"], s["unparseable"], s["wins_a"], s["wins_b"], s["ties"]) == (5, 1, 3, 0, 2)
    assert s["inconsistent"] == 0 and s["win_rate_a"] == pytest.approx((3 + 0.5 * 2) / 5)
    assert s["verbosity"]["mean_word_diff_a_minus_b"] < 0  # the weak model is wordier
    stored = json.loads((tmp_path / "fair.json").read_text())
    pair = stored["pairs"][0]
    assert pair["a_first"]["prompt"] != pair["b_first"]["prompt"] and pair["b_first"]["raw"]
    # Stored in both runs as a metric (won 1, tie 0.5, lost 0), per item with both prompts.
    good, weak = open_run(str(runs["good"])), open_run(str(runs["weak"]))
    with good.sessions() as db:
        row = db.scalars(select(MetricValue).where(MetricValue.run_id == good.id, MetricValue.task == "faq",
                                                   MetricValue.metric == f"pairwise_vs_{weak.id[:8]}")).one()
    assert row.value == pytest.approx(0.8) and row.n == 5
    with weak.sessions() as db:
        rec = db.scalars(select(DocRecord.record).where(DocRecord.run_id == weak.id, DocRecord.task == "faq_billing",
                                                        DocRecord.doc_id == 0)).one()
    detail = rec["judge"][f"pairwise_vs_{good.id[:8]}"]
    assert detail["verdict"] == 0.0 and detail["consistent"] and len(detail["raw"]) == 2
    assert detail["swapped_prompt"] != detail["prompt"]

    with serving(ScriptedServed("judge-x", first_position_judge)) as judge:
        biased = _judge([runs["good"], runs["weak"]], judge.url, pairwise=True, output=tmp_path / "biased.json")
    s = biased["summary"]
    # "A" in both orders names a different run each time: every pair inconsistent → tie.
    assert s["n_scored"] == 6 and s["inconsistent"] == 6 and s["inconsistent_rate"] == 1.0
    assert s["ties"] == 6 and s["win_rate_a"] == pytest.approx(0.5)


def test_self_preference_is_flagged(runs: dict[str, Path]) -> None:
    with serving(ScriptedServed("good", fair_judge)) as judge:
        opts = JudgeOptions([str(runs["weak"]), str(runs["good"])], "openai", f"base_url={judge.url},model=good",
                            pairwise=True, max_tokens=32, output=runs["good"].parent / "self.json")
        err = _Quiet()
        doc = judge_command(opts, _Quiet(), err)
    run_good = open_run(str(runs["good"])).id
    assert list(doc["judge"]["self_preference"]) == [run_good]
    assert any("self-preference" in line for line in err.lines)
    assert family("qwen2.5-0.5b-instruct") == family("Qwen2-7B") == "qwen"
    assert self_preference(("hf", "pretrained=/m/llama-3-8b", "f1"), ("openai", "model=llama-2-13b", "f2"))
    assert self_preference(("openai", "model=gpt-4o", "f1"), ("hf", "pretrained=/m/qwen2", "f2")) is None


def test_verdict_parsing_and_kappa_edges() -> None:
    assert parse_single("Good. [[8]]", "1-10") == 8.0 and parse_single("Rating: 3", "1-10") == 3.0
    assert parse_single("[[11]]", "1-10") is None and parse_single("hmm", "1-10") is None
    assert parse_single("PASS", "pass_fail") == 1.0 and parse_single("PASS or FAIL?", "pass_fail") is None
    assert parse_pairwise("[[C]]") == "tie" and parse_pairwise("[[B]]") == "B" and parse_pairwise("B") is None
    assert pair_outcome("A", "B") == ("a", True) and pair_outcome("A", "A") == ("tie", False)
    assert pair_outcome("tie", "tie") == ("tie", True) and pair_outcome(None, "A") == (None, False)
    from sklearn.metrics import cohen_kappa_score

    # Every level 1..5 present: scikit-learn's index distances equal our value distances.
    a, b = [1, 2, 3, 4, 4, 5, 3, 2], [1, 3, 3, 4, 5, 5, 2, 2]
    assert cohen_kappa(a, b, weights="quadratic") == pytest.approx(cohen_kappa_score(a, b, weights="quadratic"))
    assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b))
    # A level nobody used (6) does not bring 5 and 7 closer: distances are the scores' own.
    assert cohen_kappa([1, 5, 7], [1, 7, 7], weights="quadratic") != cohen_kappa_score([1, 5, 7], [1, 7, 7], weights="quadratic")


def test_cli_judge_json_and_one_line_errors(runs: dict[str, Path]) -> None:
    import subprocess
    import sys

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "gapmeter.cli", "judge", *args], capture_output=True, text=True,
                              timeout=300)

    with serving(ScriptedServed("judge-x", fair_judge)) as judge:
        proc = cli(str(runs["weak"]), "--judge_model", "openai", "--judge_model_args",
                   f"base_url={judge.url},model=judge-x", "--scale", "pass_fail", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    summary = next(iter(doc["runs"].values()))
    assert summary["metric"] == "judge_pass" and summary["metrics"]["faq"]["value"] == pytest.approx(1 / 6)
    bad = cli(str(runs["weak"]), "--scale", "1-5")
    assert bad.returncode == 2 and "--scale '1-5': use one of 1-10, pass_fail" in bad.stderr
    assert "Traceback" not in bad.stderr
    one = cli("--pairwise", str(runs["weak"]))
    assert one.returncode == 2 and "--pairwise compares two runs, got 1" in one.stderr
    empty = runs["weak"].parent / "empty_rubric.txt"
    empty.write_text("  \n")
    no_rubric = cli(str(runs["weak"]), "--rubric", str(empty))
    assert no_rubric.returncode == 2 and "the file is empty" in no_rubric.stderr


def test_a_failing_judge_server_gives_unparseable_items_not_losses(runs: dict[str, Path]) -> None:
    from gapmeter.serve.faults import FaultConfig

    with serving(ScriptedServed("judge-x", fair_judge), faults=FaultConfig(rate_500=1.0)) as judge:
        opts = JudgeOptions([str(runs["weak"])], "openai", f"base_url={judge.url},model=judge-x,max_retries=0",
                            scale="pass_fail", max_tokens=32)
        err = _Quiet()
        doc = judge_command(opts, _Quiet(), err)
    s = next(iter(doc["runs"].values()))
    assert s["unparseable"] == 6 and s["metrics"] == {}
    assert any("nothing stored" in line for line in err.lines)
    assert s["judge"]["cost"]["failed"] == 12 + 5 * 2  # items and calibration items, each asked twice
