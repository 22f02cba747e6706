"""End to end in real headless Chromium (Debian ``chromium`` driven by Playwright with
``executable_path``): sorting, filtering, weights, drill-down, plots rendered, XSS inert.
Screenshots go to ``tests/board/artifacts/``."""

from __future__ import annotations

from pathlib import Path

import boardkit
import pytest
from conftest import chromium_path

from gapmeter.commands.submit import submit

ARTIFACTS = Path(__file__).parent / "artifacts"


@pytest.fixture(scope="module")
def browser():  # noqa: ANN201
    exe = chromium_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, headless=True, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def board(local_runs, tmp_path_factory):  # noqa: ANN001, ANN201
    from gapmeter.board.app import BoardSettings

    db = f"sqlite:///{tmp_path_factory.mktemp('e2e') / 'board.sqlite'}"
    boardkit.copy_runs(local_runs[1], db)
    with boardkit.ServedBoard(BoardSettings(db_url=db, include_path=(boardkit.FIXTURE_TASKS,))) as b:
        tok = b.token("alice", "submitter")
        submit(local_runs[0]["arith-small"].out_dir, b.url, tok, model_name="alice-small-copy")
        yield b


@pytest.fixture
def page(browser, request):  # noqa: ANN001, ANN201
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = ctx.new_page()
    problems: list[str] = []
    pg.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    pg.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    pg.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    pg.problems = problems  # type: ignore[attr-defined]
    yield pg
    ARTIFACTS.mkdir(exist_ok=True)
    pg.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    ctx.close()


def shot(page, name: str) -> None:  # noqa: ANN001
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _models(page) -> list[str]:  # noqa: ANN001
    return page.eval_on_selector_all("#leaderboard tbody tr[data-model]", "rows => rows.map(r => r.dataset.model)")


def test_leaderboard_sorts_filters_and_reweights(page, board) -> None:
    page.goto(board.url + "/")
    assert sorted(_models(page)) == ["alice-small-copy", "arith-large", "arith-small"]
    page.click("a[data-sort=name]")
    assert _models(page) == ["alice-small-copy", "arith-large", "arith-small"]
    page.click("a[data-sort=name]")
    assert _models(page) == ["arith-small", "arith-large", "alice-small-copy"]
    page.click("a[data-sort='task:arith_gen']")
    values = page.eval_on_selector_all("#leaderboard td.score[data-task=arith_gen]", "c => c.map(x => parseFloat(x.dataset.value))")
    assert values == sorted(values, reverse=True)
    page.fill("#q", "arith")
    page.click("#apply")
    assert sorted(_models(page)) == ["arith-large", "arith-small"]
    assert page.inner_text("#total") == "2"
    page.fill("#q", "")
    page.uncheck("input.task-box[value=arith_gen]")
    page.click("#apply")
    headers = page.eval_on_selector_all("#leaderboard th.task a", "a => a.map(x => x.textContent.trim())")
    assert headers == ["arith_mc"]
    page.goto(board.url + "/")
    # Speed only: the fastest local run (latency p50) first; the copy has no timing, so it
    # scores the worst possible (0) on speed.
    page.fill("#w_quality", "0")
    page.fill("#w_speed", "10")
    page.click("#apply")
    assert "w_speed=10" in page.url
    shot(page, "leaderboard-weighted-by-speed")
    order = _models(page)
    api = board.client().get("/api/leaderboard", params={"w_quality": 0, "w_speed": 10}).json()["rows"]
    assert order == [r["model"] for r in api]
    walls = {r["model"]: r["efficiency"]["latency_p50_s"] for r in api}
    assert order[0] == min((m for m in walls if walls[m] is not None), key=lambda m: walls[m])
    assert next(r for r in api if r["model"] == "alice-small-copy")["weighted_score"] == 0.0
    assert page.is_visible("#leaderboard td.weighted")
    assert page.problems == []  # type: ignore[attr-defined]


def test_drill_down_from_model_to_items(page, board) -> None:
    page.goto(board.url + "/")
    page.click("#leaderboard a[href$='/models/arith-large']")
    page.wait_for_selector("#radar[data-rendered=true] svg.main-svg")
    shot(page, "model-page-radar")
    assert page.locator("#per-task tbody tr").count() == 2
    page.click("#per-task a[href*='task=arith_gen']")
    assert "/runs/" in page.url
    total = int(page.inner_text("#sample-total"))
    assert total == boardkit.LIMIT and page.locator("#samples-table tbody tr").count() == 25
    page.select_option("#outcome", "incorrect")
    page.click("#apply-samples")
    shot(page, "run-items-incorrect")
    wrong = int(page.inner_text("#sample-total"))
    classes = page.eval_on_selector_all("#samples-table tbody tr", "r => r.map(x => x.className)")
    assert classes and set(classes) == {"incorrect"}
    page.select_option("#outcome", "correct")
    page.click("#apply-samples")
    right = int(page.inner_text("#sample-total"))
    assert right + wrong == total
    assert page.locator("pre.prompt").first.inner_text().startswith("Q: ")
    assert page.problems == []  # type: ignore[attr-defined]


def test_pareto_and_compare_render(page, board) -> None:
    page.goto(board.url + "/pareto")
    page.wait_for_selector("#pareto-speed[data-rendered=true] svg.main-svg")
    shot(page, "pareto-page")
    assert page.locator("#pareto-speed .point").count() >= 2
    page.wait_for_selector("#pareto-cost[data-rendered=true] svg.main-svg")
    # The uploaded copy has no efficiency records: listed, but not plotted at a made-up cost.
    assert page.locator("#pareto-cost .point").count() == 2
    page.goto(board.url + "/compare")
    page.select_option("#model-a", "arith-large")
    page.select_option("#model-b", "arith-small")
    page.click("#compare-go")
    rows = page.locator("#compare-table tbody tr")
    assert rows.count() == 2 and "40" in rows.first.inner_text()
    assert page.problems == []  # type: ignore[attr-defined]


def test_xss_payloads_do_not_execute(page, board) -> None:
    from test_security import XSS_MODEL, XSS_NOTE, XSS_PAGES, add_xss_run

    add_xss_run(board.ctx.sessions)
    admin = board.token("ada", "admin")
    board.client(admin).post("/api/admin/annotations", json={"model_name": XSS_MODEL, "text": XSS_NOTE})
    page.context.add_cookies([{"name": "gapmeter_token", "value": admin, "url": board.url}])
    for path in XSS_PAGES:
        page.goto(board.url + path.replace("#", "%23"))
        page.wait_for_load_state("load")
    page.goto(board.url + "/")
    assert XSS_MODEL in page.inner_text("#leaderboard")  # the payload is shown as text
    problems = [p for p in page.problems if "404" not in p and "422" not in p]  # type: ignore[attr-defined]
    assert problems == []
