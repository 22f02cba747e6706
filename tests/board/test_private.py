"""Private held-out items: the board evaluates a submitter's OpenAI-compatible endpoint on items
nobody has seen, rotates them per submitter, rate-limits, and shows the public-vs-private gap.

The endpoints are real HTTP servers on 127.0.0.1: an honest one that computes the answers and a
"tuned on the test set" one that memorised the public items' answers and guesses otherwise.
"""

from __future__ import annotations

import boardkit
import pytest

from gapmeter.commands.submit import submit
from gapmeter.engine.evaluate import evaluate
from gapmeter.spec import RunSpec
from gapmeter.tasks.registry import TaskRegistry

TASK = "board_arith2_gen"


def _public_prompts() -> dict[str, str]:
    from gapmeter.engine.plan import resolve_tasks

    reg = TaskRegistry.load([boardkit.FIXTURE_TASKS])
    task = resolve_tasks(reg, [TASK], num_fewshot=None, data_dir=None).leaves[TASK].task
    return {p.requests[0].context: f" {task.doc_to_target(p.doc)}" for p in task.plan()}


def _public_run(url: str, api_model: str, out) -> None:  # noqa: ANN001
    spec = RunSpec(
        model="openai", model_args=f"base_url={url},model={api_model},stream=false,concurrency=2",
        tasks=(TASK,), output_path=out, log_samples=True, include_path=(boardkit.FIXTURE_TASKS,),
        db=f"sqlite:///{out}.sqlite", bootstrap_iters=1000,
    )
    evaluate(spec)


@pytest.fixture
def endpoints():  # noqa: ANN201
    honest_app = boardkit.arithmetic_endpoint()
    cheat_app = boardkit.arithmetic_endpoint(memorized=_public_prompts())
    with boardkit.serve_app(honest_app) as honest, boardkit.serve_app(cheat_app) as cheat:
        yield {"honest": (honest, honest_app), "cheat": (cheat, cheat_app)}


def test_public_vs_private_gap_exposes_a_model_tuned_on_the_test_set(served, endpoints, tmp_path) -> None:
    admin = served.client(served.token("ada", "admin"))
    split = admin.post("/api/admin/private-splits", json={"task": TASK, "split": "heldout"})
    assert split.status_code == 201 and split.json()["items"] == 120
    sub = served.token("sam", "submitter")
    for name, (url, app) in endpoints.items():
        _public_run(url, name, tmp_path / name)
        submit(tmp_path / name, served.url, sub, model_name=f"{name}-model")
        app.state.prompts.clear()
        r = served.client(sub).post("/api/private-evals", json={
            "model_name": f"{name}-model", "base_url": url, "api_model": name, "tasks": [TASK], "wait": True})
        assert r.status_code == 202, r.text
        ev = r.json()["evaluations"][0]
        assert ev["status"] == "complete" and ev["n"] == 20, ev
        assert len(app.state.prompts) == 20 and all("CANARY-PROMPT-heldout" in p for p in app.state.prompts)
    cheat = served.client().get("/api/models/cheat-model").json()["private"][TASK]
    honest = served.client().get("/api/models/honest-model").json()["private"][TASK]
    assert cheat["public"] == 1.0 and cheat["private"] == 0.0 and cheat["gap"] == 1.0
    assert honest["public"] == 1.0 and honest["private"] == 1.0 and honest["gap"] == 0.0
    rows = {r["model"]: r for r in served.client().get("/api/leaderboard", params={"sort": "private_gap"}).json()["rows"]}
    assert rows["cheat-model"]["private_gap"] == 1.0
    page = served.client().get("/models/cheat-model", headers={"Accept": "text/html"}).text
    assert 'id="private-table"' in page and "100.0" in page


def test_items_rotate_per_submitter_until_exhausted(served, endpoints) -> None:
    admin = served.client(served.token("ada", "admin"))
    admin.post("/api/admin/private-splits", json={"task": TASK, "split": "heldout"})
    url, app = endpoints["honest"]
    seen: list[str] = []
    for who in ("one", "two"):
        tok = served.token(who, "submitter")
        mine: list[str] = []
        for _ in range(6):  # 120 items, 20 per evaluation
            app.state.prompts.clear()
            r = served.client(tok).post("/api/private-evals", json={
                "model_name": f"honest-{who}", "base_url": url, "api_model": "m", "wait": True})
            assert r.status_code == 202 and r.json()["evaluations"][0]["status"] == "complete"
            mine.extend(app.state.prompts)
        assert len(mine) == len(set(mine)) == 120  # no prompt shown twice to one submitter
        r = served.client(tok).post("/api/private-evals", json={"model_name": f"honest-{who}", "base_url": url,
                                                                "api_model": "m"})
        assert r.status_code == 409 and "every private item has been shown" in r.json()["error"]
        seen.append(str(sorted(mine)))
    assert seen[0] == seen[1]  # each submitter gets every item once, independently


def test_rate_limit_bad_endpoints_and_fresh_items(db_url, endpoints) -> None:
    from gapmeter.board.app import BoardSettings
    from gapmeter.board.private import PrivatePolicy

    settings = BoardSettings(db_url=db_url, include_path=(boardkit.FIXTURE_TASKS,),
                             private=PrivatePolicy(items_per_eval=10, min_interval_s=3600, max_rps=100,
                                                   allow_private_endpoints=True))  # endpoints on 127.0.0.1
    with boardkit.ServedBoard(settings) as board:
        admin = board.client(board.token("ada", "admin"))
        fresh = admin.post("/api/admin/private-splits", json={"task": TASK, "generate": 30})
        assert fresh.status_code == 201 and fresh.json()["origin"] == "generated" and fresh.json()["items"] == 30
        assert admin.post("/api/admin/private-splits", json={"task": "arith_mc", "generate": 0}).status_code == 422
        assert admin.post("/api/admin/private-splits", json={"task": "nope", "split": "x"}).status_code == 404
        sub = board.client(board.token("sam", "submitter"))
        r = sub.post("/api/private-evals", json={"model_name": "x", "base_url": "file:///etc/passwd", "api_model": "m"})
        assert r.status_code == 422
        # An endpoint that is down: the evaluation fails with a message naming no item.
        dead = f"http://127.0.0.1:{boardkit.free_port()}/v1"
        r = sub.post("/api/private-evals", json={"model_name": "x", "base_url": dead, "api_model": "m", "wait": True})
        ev = r.json()["evaluations"][0]
        assert ev["status"] == "failed" and "CANARY" not in ev["error"] and "Q:" not in ev["error"]
        r = sub.post("/api/private-evals", json={"model_name": "x", "base_url": endpoints["honest"][0], "api_model": "m"})
        assert r.status_code == 429 and "rate limit" in r.json()["error"]
        assert board.client().post("/api/private-evals", json={}).status_code == 401
        log = [e["action"] for e in admin.get("/api/admin/audit-log").json()["entries"]]
        assert "private.generated" in log and "private.evaluate" in log
