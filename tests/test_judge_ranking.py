"""Judged scores ranked like every score: three runs of one task in one real SQLite store, graded
by a scripted judge behind ``gapmeter serve``; the board (over HTTP) ranks the task by
``judge_score`` when told to (``gapmeter board --metric TASK=judge_score``), with CI-overlap ties,
and ``gapmeter compare`` ranks the three runs on it."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.api_server import serving
from support.scripted_served import ScriptedServed, answering, fair_judge
from test_judge import CASES, GOOD

from gapmeter.commands.board import parse_metric_choices
from gapmeter.commands.judge import JudgeOptions, judge_command
from gapmeter.commands.task_init import init_task
from gapmeter.compare.runs import open_run
from gapmeter.engine.evaluate import evaluate
from gapmeter.errors import GapmeterError
from gapmeter.judge.items import run_items
from gapmeter.outcomes import MetricResult
from gapmeter.spec import RunSpec
from gapmeter.store.runs import add_metric

# "wrong" answers every question wrongly: 2 on every item, a zero-width CI below the others'.
WRONG = {q: "Please contact support." for q in GOOD}


class _Quiet:
    def print(self, text: str, **_: object) -> None:
        pass


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    root = tmp_path_factory.mktemp("judged_board")
    with (root / "faq.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "question", "answer", "category", "graded_answer", "human_label"])
        w.writerows(CASES)
    init = init_task(root / "faq.csv", given={})
    yaml_text = init.yaml_path.read_text(encoding="utf-8")  # a dimension, for `gapmeter profile`
    init.yaml_path.write_text(yaml_text.replace("  test_split: test", "  dimension: knowledge\n  test_split: test", 1),
                              encoding="utf-8")
    db = str(root / "store.sqlite")
    # "good" and "twin" answer alike (a tie on every score); "wrong" is worse on the judge's scores only.
    for name, answers in (("good", GOOD), ("twin", GOOD), ("wrong", WRONG)):
        with serving(ScriptedServed(name, answering(answers))) as server:
            spec = RunSpec(model="openai", model_args=f"base_url={server.url},model={name}", tasks=("faq",),
                           include_path=(init.yaml_path,), output_path=root / name, bootstrap_iters=200, db=db)
            evaluate(spec)
    with serving(ScriptedServed("judge-x", fair_judge)) as judge:
        opts = JudgeOptions([str(root / n) for n in ("good", "twin", "wrong")], "openai",
                            f"base_url={judge.url},model=judge-x", max_tokens=32)
        judge_command(opts, _Quiet(), _Quiet())
    return db, root


def _judge_pass_fail(root: Path) -> None:
    """Adds ``judge_pass`` to the three runs (again: every verdict comes from the store's cache)."""
    with serving(ScriptedServed("judge-x", fair_judge)) as judge:
        opts = JudgeOptions([str(root / n) for n in ("good", "twin", "wrong")], "openai",
                            f"base_url={judge.url},model=judge-x", max_tokens=32, scale="pass_fail")
        judge_command(opts, _Quiet(), _Quiet())


def _board(db: str, metrics: dict[str, str]):  # noqa: ANN202 - a ServerThread
    from gapmeter.board.app import create_app
    from gapmeter.board.context import BoardSettings
    from gapmeter.serve.runner import ServerThread

    return ServerThread(create_app(BoardSettings(db_url=f"sqlite:///{db}", metrics=metrics)))


def _get_leaderboard(url: str) -> dict:
    r = httpx.get(f"{url.removesuffix('/v1')}/api/leaderboard", params={"tasks": "faq"}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def _leaderboard(db: str, metrics: dict[str, str]) -> dict:
    with _board(db, metrics) as board:
        return _get_leaderboard(board.url)


def test_board_ranks_a_task_by_its_judge_score_with_ties(store: tuple[str, Path]) -> None:
    db, _ = store
    default = _leaderboard(db, {})
    assert default["primary_metric"]["faq"] != "judge_score,none"
    judged = _leaderboard(db, parse_metric_choices(["faq=judge_score"]))
    assert judged["primary_metric"] == {"faq": "judge_score,none"}
    rows = {r["model"]: r for r in judged["rows"]}
    # good/twin: 9, 2, 9, 9, 9 on the 5 readable items (r5 has no verdict); wrong: 2 on all 6.
    assert rows["good"]["scores"]["faq"]["value"] == pytest.approx(38 / 5)
    assert rows["good"]["scores"]["faq"]["n"] == 5 and rows["wrong"]["scores"]["faq"]["n"] == 6
    assert rows["wrong"]["scores"]["faq"]["value"] == pytest.approx(2.0)
    lo, hi = rows["good"]["quality_ci95"]
    assert lo < 38 / 5 < hi and hi > 2.0 and lo > 2.0  # the CI is real and lies above "wrong"'s
    assert [rows[m]["rank"] for m in ("good", "twin", "wrong")] == [1, 1, 3]
    assert [r["model"] for r in judged["rows"]][-1] == "wrong"
    # The exact-match default cannot tell the three apart: every model ties.
    assert {r["rank"] for r in default["rows"]} == {1}


def test_a_running_board_ranks_by_a_judge_metric_added_after_it_started(store: tuple[str, Path]) -> None:
    db, root = store
    with _board(db, {"faq": "judge_pass,none"}) as board:
        _get_leaderboard(board.url)  # the board has read (and cached) the three runs' metrics
        _judge_pass_fail(root)
        judged = _get_leaderboard(board.url)
    assert judged["primary_metric"] == {"faq": "judge_pass,none"}
    rows = {r["model"]: r for r in judged["rows"]}
    assert [rows[m]["scores"]["faq"]["value"] for m in ("good", "twin", "wrong")] == pytest.approx([0.8, 0.8, 0.0])
    assert [rows[m]["rank"] for m in ("good", "twin", "wrong")] == [1, 1, 3]


def test_a_request_chooses_the_metric_a_task_is_ranked_by(store: tuple[str, Path]) -> None:
    """``?metric=TASK=METRIC`` (API and page) ranks one request's leaderboard by that metric, with
    the same CI-overlap rule; other requests (cached per parameters) keep the board's default."""
    db, _ = store
    with _board(db, {}) as board:
        root = board.url.removesuffix("/v1")

        def get(path: str, **params: Any) -> httpx.Response:
            return httpx.get(f"{root}{path}", params={"tasks": "faq", **params}, timeout=60)

        for _ in range(2):  # the second round is served from the page cache: each key its own body
            default = get("/api/leaderboard").json()
            judged = get("/api/leaderboard", metric="faq=judge_score").json()
            assert default["primary_metric"]["faq"] != "judge_score,none" and default["metric_choice"] == {}
            assert {r["rank"] for r in default["rows"]} == {1}
            assert judged["primary_metric"] == {"faq": "judge_score,none"}
            assert judged["metric_choice"] == {"faq": "judge_score,none"}
            rows = {r["model"]: r for r in judged["rows"]}
            assert rows["good"]["scores"]["faq"]["value"] == pytest.approx(38 / 5)
            assert [rows[m]["rank"] for m in ("good", "twin", "wrong")] == [1, 1, 3]
        page = get("/", metric="faq=judge_score,none")
        assert page.status_code == 200 and "judge_score,none" in page.text
        assert 'name="metric" value="faq=judge_score,none"' in page.text  # the form keeps the choice
        assert "&amp;metric=faq%3Djudge_score%2Cnone" in page.text  # and so do the sort links
        assert "judge_score,none" not in get("/").text
        bad = {"nope=judge_score": "the board has no task 'nope'",
               "faq=no_such_metric": "no run on the board has no_such_metric,none for faq",
               "faq": "expected TASK=METRIC", "faq=judge_score,a,b": "expected TASK=METRIC"}
        for value, message in bad.items():
            for path in ("/api/leaderboard", "/"):
                r = get(path, metric=value)
                assert r.status_code == 400 and message in r.text, (path, value, r.status_code, r.text)
        r = httpx.get(f"{root}/api/leaderboard", params=[("metric", "faq=judge_score"), ("metric", "faq=judge_pass")],
                      timeout=60)
        assert r.status_code == 400 and "chosen twice" in r.text


def test_metric_choice_errors_are_one_line() -> None:
    assert parse_metric_choices(["a=m", "b=m,strict"]) == {"a": "m,none", "b": "m,strict"}
    for bad in (["a"], ["=m"], ["a="], ["a=m,f,g"], ["a=m", "a=n"]):
        with pytest.raises(GapmeterError, match="--metric"):
            parse_metric_choices(bad)


def test_compare_ranks_three_judged_runs(store: tuple[str, Path]) -> None:
    db, root = store
    out = subprocess.run(
        [sys.executable, "-m", "gapmeter.cli", "compare", *(str(root / n) for n in ("good", "twin", "wrong")),
         "--db", db, "--metric", "judge_score", "--json", "--bootstrap_iters", "500"],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    (st,) = doc["standings"]
    assert st["unit"]["metric"] == "judge_score" and st["unit"]["name"] == "faq"
    assert [e["run"]["label"] for e in st["entries"]] == ["good", "twin", "wrong"]
    assert [e["value"] for e in st["entries"]] == pytest.approx([38 / 5, 38 / 5, 2.0])
    assert [e["rank"] for e in st["entries"]] == [1, 1, 3]  # paired tests on the same items: a tie, then a loss
    wrong = doc["comparisons"][1]["rows"][0]
    assert wrong["result"]["test"] == "paired-bootstrap" and wrong["result"]["n"] == 5 and wrong["verdict"] == "better"


def test_profile_on_a_judge_metric(store: tuple[str, Path], tmp_path: Path) -> None:
    db, root = store

    def profile(metric: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gapmeter.cli", "profile", str(root / "good"), str(root / "wrong"), "--db", db,
             "--metric", metric, "--output_path", str(tmp_path / metric), "--json"],
            capture_output=True, text=True, timeout=300,
        )

    _judge_pass_fail(root)
    passed = profile("judge_pass")
    assert passed.returncode == 0, passed.stderr
    good, wrong = json.loads(passed.stdout)["profiles"]
    assert good["dimensions"]["knowledge"]["value"] == pytest.approx(4 / 5)  # r1, r3, r4, r6 of 5 readable
    assert wrong["dimensions"]["knowledge"]["value"] == pytest.approx(0.0)
    assert good["dimensions"]["knowledge"]["tasks"][0]["unit"]["metric"] == "judge_pass"
    # A 1-10 judge score: the registry declares its range, so it enters rescaled, (s - 1) / 9, and says so.
    scored = profile("judge_score")
    assert scored.returncode == 0, scored.stderr
    good, wrong = json.loads(scored.stdout)["profiles"]
    knowledge = good["dimensions"]["knowledge"]
    assert knowledge["value"] == pytest.approx(((4 * 9 + 2) / 5 - 1) / 9)  # 9 on r1 r3 r4 r6, 2 on r2
    assert wrong["dimensions"]["knowledge"]["value"] == pytest.approx((2 - 1) / 9)
    assert knowledge["tasks"][0]["rescaled_from"] == [1.0, 10.0]
    assert any("judge_score rescaled from 1-10 to 0-1" in note for note in good["notes"])
    assert (tmp_path / "judge_score" / "profile.html").read_text(encoding="utf-8").count("rescaled to 0-1") >= 1
    # A metric outside 0-1 whose range nobody declared is still refused, in one line.
    run = open_run(str(root / "good"), db)
    add_metric(run.sessions, run.id, "my_rating", {(item.task, item.doc_id): (4.0, {}) for item in run_items(run, ["faq"])},
               [MetricResult("faq", "my_rating", "none", 4.0, 0.0, 5)], detail_key="my_rating")
    unknown = profile("my_rating")
    assert unknown.returncode != 0 and "0-1 score" in unknown.stderr and "Traceback" not in unknown.stderr


def test_a_chosen_metric_no_run_has_is_said_not_silently_dropped(capsys: pytest.CaptureFixture[str]) -> None:
    from types import SimpleNamespace

    from gapmeter.board.readmodel import SnapshotCache

    cache = SnapshotCache({"cases": "judge_score,none"}, chosen_metrics={"cases": "judge_score,none"})
    runs: Any = {"r1": SimpleNamespace(value_keys=(("cases", "exact_match,none"),))}
    assert cache._primary(runs) == {"cases": "exact_match,none"}
    assert "board --metric cases=judge_score,none: no visible run has it" in capsys.readouterr().err
