"""The board's JSON API, on SQLite and on a real PostgreSQL server: leaderboard, pages'
mirrors, submissions re-scored server-side, tokens and roles, admin actions, audit log."""

from __future__ import annotations

import json
import time

import boardkit
import pytest

from gapmeter.commands.submit import build_payload, submit


def _results(run: boardkit.LocalRun) -> dict:
    return json.loads((run.out_dir / "results.json").read_text())["results"]


def test_health_reports_the_schema_head(served) -> None:
    h = served.client().get("/health").json()
    assert h["status"] == "ok" and h["schema"] == h["schema_head"]


def test_local_runs_are_ranked_with_their_stored_scores_and_cis(served, local_runs) -> None:
    runs, _ = local_runs
    board = served.client().get("/api/leaderboard").json()
    assert board["tasks"] == ["arith_gen", "arith_mc"]
    assert board["primary_metric"] == {"arith_gen": "exact_match,first-number", "arith_mc": "acc,none"}
    rows = {r["model"]: r for r in board["rows"]}
    assert set(rows) == set(runs)
    for name, run in runs.items():
        res = _results(run)
        s = rows[name]["scores"]["arith_mc"]
        assert s["value"] == pytest.approx(res["arith_mc"]["acc,none"])
        assert s["stderr"] == pytest.approx(res["arith_mc"]["acc_stderr,none"])
        assert s["ci95"][0] < s["value"] < s["ci95"][1] and s["n"] == boardkit.LIMIT
        mean = (res["arith_mc"]["acc,none"] + res["arith_gen"]["exact_match,first-number"]) / 2
        assert rows[name]["quality"] == pytest.approx(mean)
    # Tie-aware: rank 1 + number of models whose CI lies entirely above.
    a, b = rows["arith-large"], rows["arith-small"]
    if a["quality_ci95"][0] > b["quality_ci95"][1]:
        assert (a["rank"], b["rank"]) == (1, 2)
    else:
        assert a["rank"] == b["rank"] == 1
    assert board["rows"][0]["quality"] >= board["rows"][1]["quality"] or a["rank"] == b["rank"]


def test_sorting_filtering_and_weights(served) -> None:
    c = served.client()
    by_name = c.get("/api/leaderboard", params={"sort": "name"}).json()["rows"]
    assert [r["model"] for r in by_name] == ["arith-large", "arith-small"]
    desc = c.get("/api/leaderboard", params={"sort": "name", "desc": "true"}).json()["rows"]
    assert [r["model"] for r in desc] == ["arith-small", "arith-large"]
    only = c.get("/api/leaderboard", params={"q": "SMALL"}).json()
    assert [r["model"] for r in only["rows"]] == ["arith-small"] and only["total"] == 1
    one_task = c.get("/api/leaderboard", params={"tasks": "arith_mc"}).json()
    assert one_task["tasks"] == ["arith_mc"]
    assert all(r["quality"] == r["scores"]["arith_mc"]["value"] for r in one_task["rows"])
    by_task = c.get("/api/leaderboard", params={"sort": "task:arith_gen"}).json()["rows"]
    values = [r["scores"]["arith_gen"]["value"] for r in by_task]
    assert values == sorted(values, reverse=True)
    # Speed only: the model with the lower latency p50 comes first; cost only: the cheaper.
    speed = c.get("/api/leaderboard", params={"w_quality": 0, "w_speed": 1}).json()["rows"]
    lat = [r["efficiency"]["latency_p50_s"] for r in speed]
    assert None not in lat and lat == sorted(lat) and speed[0]["weighted_score"] == 1.0
    cost = c.get("/api/leaderboard", params={"w_quality": 0, "w_cost": 1}).json()["rows"]
    usd = [r["efficiency"]["cost_per_1k_items_usd"] for r in cost]
    assert None not in usd and usd == sorted(usd)
    for r in speed:  # p95 from the run's request timings, never below the median
        e = r["efficiency"]
        assert e["source"] == "efficiency records" and e["latency_p95_s"] >= e["latency_p50_s"] > 0
    assert c.get("/api/leaderboard", params={"sort": "nonsense"}).status_code == 422
    assert c.get("/api/leaderboard", params={"tasks": "no_such_task"}).status_code == 422
    assert c.get("/api/leaderboard", params={"w_cost": -1}).status_code == 422


def test_model_run_samples_pareto_and_compare_mirrors(served, local_runs) -> None:
    runs, _ = local_runs
    c = served.client()
    m = c.get("/api/models/arith-large").json()
    assert m["radar"]["tasks"] == ["arith_mc", "arith_gen"] or set(m["radar"]["tasks"]) == {"arith_mc", "arith_gen"}
    assert [r["run_id"] for r in m["runs"]] == [runs["arith-large"].run_id]
    run = c.get(f"/api/runs/{runs['arith-large'].run_id}").json()
    assert run["config"]["spec"]["limit"] == boardkit.LIMIT and "db" not in run["config"]["spec"]
    assert "results_document" not in run["config"]["spec"]  # its paths and store URL stay local
    all_items = c.get(f"/api/runs/{runs['arith-large'].run_id}/samples", params={"task": "arith_gen", "limit": 500}).json()
    ok = c.get(f"/api/runs/{runs['arith-large'].run_id}/samples", params={"task": "arith_gen", "outcome": "correct"}).json()
    bad = c.get(f"/api/runs/{runs['arith-large'].run_id}/samples", params={"task": "arith_gen", "outcome": "incorrect"}).json()
    assert all_items["total"] == boardkit.LIMIT == ok["total"] + bad["total"]
    assert all(i["correct"] for i in ok["items"]) and not any(i["correct"] for i in bad["items"])
    first = all_items["items"][0]
    assert first["prompt"].startswith("Q: ") and first["target"] is not None
    score = _results(runs["arith-large"])["arith_gen"]["exact_match,first-number"]
    assert ok["total"] / boardkit.LIMIT == pytest.approx(score)
    pareto = c.get("/api/pareto").json()
    assert {p["model"] for p in pareto["points"]} == set(runs) and pareto["speed_axis"] == "latency"
    assert pareto["frontier_speed"] and pareto["frontier_cost"]
    cmp = c.get("/api/compare", params={"a": "arith-large", "b": "arith-small"}).json()
    rows = {r["task"]: r for r in cmp["tasks"]}
    p = rows["arith_mc"]["paired"]
    assert p["n"] == boardkit.LIMIT
    assert p["diff"] == pytest.approx(rows["arith_mc"]["score_a"] - rows["arith_mc"]["score_b"])
    assert p["a_better"] + p["b_better"] + p["ties"] == boardkit.LIMIT
    assert c.get("/api/models/nobody").status_code == 404
    assert c.get("/api/runs/nope").status_code == 404
    assert c.get("/api/compare", params={"a": "arith-large", "b": "nobody"}).status_code == 404


def test_submission_is_rescored_stored_and_idempotent(served, local_runs) -> None:
    runs, _ = local_runs
    tok = served.token("alice", "submitter")
    first = submit(runs["arith-small"].out_dir, served.url, tok, model_name="alice-small")
    assert not first["duplicate"] and "re-scored" in first["checks"]["tasks"]["arith_mc"]
    again = submit(runs["arith-small"].out_dir, served.url, tok, model_name="alice-small")
    assert again["duplicate"] and again["run_id"] == first["run_id"]
    c = served.client(tok)
    rows = {r["model"]: r for r in c.get("/api/leaderboard").json()["rows"]}
    assert rows["alice-small"]["scores"]["arith_mc"]["value"] == rows["arith-small"]["scores"]["arith_mc"]["value"]
    assert rows["alice-small"]["submitter"] == "alice"
    subs = c.get("/api/submissions").json()["submissions"]
    assert len(subs) == 1 and subs[0]["samples"] == 2 * boardkit.LIMIT
    # Someone else cannot submit under alice's model name.
    bob = served.token("bob", "submitter")
    r = served.client(bob).post("/api/submissions", json=build_payload(runs["arith-large"].out_dir, "alice-small"))
    assert r.status_code == 409 and "belongs to another submitter" in r.json()["error"]


def _counts(served) -> tuple[int, int, int]:
    from sqlalchemy import func, select

    from gapmeter.store.models import DocRecord, MetricValue, Run

    with served.ctx.sessions() as s:
        return tuple(s.scalar(select(func.count()).select_from(t)) for t in (Run, DocRecord, MetricValue))  # type: ignore[return-value]


def _tamper(payload: dict, how: str) -> dict:
    if how == "aggregate":
        payload["results"]["results"]["arith_mc"]["acc,none"] += 0.05
    elif how == "stderr":
        payload["results"]["results"]["arith_mc"]["acc_stderr,none"] *= 0.5
    elif how == "per_doc_metric":
        m = payload["samples"]["arith_gen"][3]["metrics"]
        m["exact_match,first-number"] = 1.0 - m["exact_match,first-number"]
    elif how == "response":
        payload["samples"]["arith_gen"][5]["resps"][0][0] = " 12345"
    elif how == "missing_sample":
        payload["samples"]["arith_mc"].pop()
    elif how == "duplicate_doc":
        payload["samples"]["arith_mc"][1]["doc_id"] = 0
    elif how == "wrong_doc":
        payload["samples"]["arith_mc"][2]["doc_hash"] = "0" * 64
    elif how == "wrong_prompt":
        payload["samples"]["arith_gen"][0]["arguments"]["gen_args_0"]["arg_0"] = "Q: 1+1=?\nA:"
    elif how == "unknown_task":
        payload["results"]["configs"]["no_such_task"] = {}
        payload["samples"]["no_such_task"] = []
    elif how == "yaml_path_task":
        payload["results"]["configs"]["/etc/passwd.yaml"] = {}
        payload["samples"]["/etc/passwd.yaml"] = []
    elif how == "version":
        payload["results"]["versions"]["arith_mc"] = 99.0
    elif how == "extra_field":
        payload["surprise"] = 1
    elif how == "mc_response_shape":
        payload["samples"]["arith_mc"][0]["resps"][0][0] = "not a loglikelihood"
    return payload


TAMPERING = ["aggregate", "stderr", "per_doc_metric", "response", "missing_sample", "duplicate_doc",
             "wrong_doc", "wrong_prompt", "unknown_task", "yaml_path_task", "version", "extra_field",
             "mc_response_shape"]


def test_inconsistent_and_malformed_uploads_are_refused_and_change_nothing(served, local_runs) -> None:
    runs, _ = local_runs
    tok = served.token("mallory", "submitter")
    c = served.client(tok)
    before = _counts(served)
    for how in TAMPERING:
        payload = _tamper(build_payload(runs["arith-small"].out_dir, f"tampered-{how}"), how)
        r = c.post("/api/submissions", json=payload)
        assert r.status_code in (400, 409, 413, 422), (how, r.status_code, r.text)
        assert r.json()["error"], how
    for body, ctype in [(b"{not json", "application/json"), (b"[1, 2]", "application/json"),
                        (b"\xff\xfe", "application/json"), (b"", "application/json")]:
        r = c.post("/api/submissions", content=body, headers={"Content-Type": ctype})
        assert r.status_code in (400, 422) and "malformed" in r.json()["error"]
    r = c.post("/api/submissions", content=b"x" * 10, headers={"Content-Encoding": "gzip"})
    assert r.status_code == 400 and "gzip" in r.json()["error"]
    assert _counts(served) == before
    with served.ctx.sessions() as s:
        from sqlalchemy import select

        from gapmeter.store.board_tables import BoardAuditEntry
        assert not list(s.scalars(select(BoardAuditEntry).where(BoardAuditEntry.action == "submission.accept")))


def test_oversized_upload_is_refused(db_url, local_runs) -> None:
    from gapmeter.board.app import BoardSettings

    with boardkit.ServedBoard(BoardSettings(db_url=db_url, max_upload_bytes=50_000)) as board:
        tok = board.token("big", "submitter")
        body = json.dumps(build_payload(local_runs[0]["arith-small"].out_dir)).encode()
        r = board.client(tok).post("/api/submissions", content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 413 and "too large" in r.json()["error"]
        import gzip  # a small gzip that inflates past the limit (a zip bomb) is refused too

        bomb = gzip.compress(b" " * 5_000_000)
        r = board.client(tok).post("/api/submissions", content=bomb, headers={"Content-Encoding": "gzip"})
        assert r.status_code == 413
        assert board.client().get("/api/leaderboard").json()["total"] == 0


def test_tokens_roles_and_revocation(served) -> None:
    from gapmeter.board.auth import revoke_tokens

    viewer = served.token("vic", "viewer")
    sub = served.token("sue", "submitter")
    admin = served.token("ada", "admin")
    routes = [("get", "/api/admin/audit-log"), ("get", "/api/admin/tokens"), ("get", "/api/admin/private-splits"),
              ("post", "/api/admin/annotations"), ("get", "/admin")]
    for method, path in routes:
        assert getattr(served.client(), method)(path).status_code == 401, path
        assert getattr(served.client("gmb_wrong"), method)(path).status_code == 401, path
        assert getattr(served.client(viewer), method)(path).status_code == 403, path
        assert getattr(served.client(sub), method)(path).status_code == 403, path
    assert served.client().post("/api/submissions", json={}).status_code == 401
    assert served.client(viewer).post("/api/submissions", json={}).status_code == 403
    assert served.client(admin).get("/api/admin/audit-log").status_code == 200
    assert served.client(viewer).get("/api/whoami").json() == {"name": "vic", "role": "viewer"}
    bad_scheme = served.client().get("/api/whoami", headers={"Authorization": f"Basic {viewer}"})
    assert bad_scheme.status_code == 401
    with served.ctx.sessions() as s:
        revoke_tokens(s, actor="test", name="ada")
        s.commit()
    assert served.client(admin).get("/api/admin/audit-log").status_code == 401
    # Tokens are stored hashed: the secret is nowhere in the database.
    with served.ctx.sessions() as s:
        from sqlalchemy import select

        from gapmeter.store.board_tables import BoardToken
        stored = [(t.token_hash, t.prefix) for t in s.scalars(select(BoardToken))]
    assert all(viewer not in h and len(p) == 10 for h, p in stored)


def test_admin_hides_and_annotates_and_every_change_is_logged(served, local_runs) -> None:
    runs, _ = local_runs
    admin = served.client(served.token("ada", "admin"))
    rid = runs["arith-small"].run_id
    r = admin.post(f"/api/admin/runs/{rid}/visibility", json={"hidden": True, "reason": "duplicate entry"})
    assert r.status_code == 200
    assert [x["model"] for x in served.client().get("/api/leaderboard").json()["rows"]] == ["arith-large"]
    assert served.client().get("/api/models/arith-small").status_code == 404
    assert served.client().get(f"/api/runs/{rid}").status_code == 404
    shown = admin.get("/api/leaderboard", params={"show_hidden": "true"}).json()["rows"]
    assert {x["model"] for x in shown} == {"arith-large", "arith-small"}
    assert served.client().get("/api/leaderboard", params={"show_hidden": "true"}).status_code == 403
    admin.post(f"/api/admin/runs/{rid}/visibility", json={"hidden": False})
    note = admin.post("/api/admin/annotations", json={"model_name": "arith-large", "text": "trained 1000 steps"})
    assert note.status_code == 201
    row = served.client().get("/api/leaderboard", params={"q": "large"}).json()["rows"][0]
    assert row["annotations"] == ["trained 1000 steps"]
    assert admin.delete(f"/api/admin/annotations/{note.json()['id']}").status_code == 200
    actions = [e["action"] for e in admin.get("/api/admin/audit-log").json()["entries"]]
    assert actions[:4] == ["annotation.delete", "annotation.add", "run.show", "run.hide"]
    assert "token.create" in actions


def test_require_token_mode_and_openapi(db_url) -> None:
    from gapmeter.board.app import BoardSettings

    with boardkit.ServedBoard(BoardSettings(db_url=db_url, require_token=True)) as board:
        assert board.client().get("/api/leaderboard").status_code == 401
        assert board.client().get("/").status_code == 401
        assert board.client().get("/health").status_code == 200
        assert board.client(board.token("v", "viewer")).get("/api/leaderboard").status_code == 200
        schema = board.client().get("/openapi.json").json()
        for path in ("/api/leaderboard", "/api/models/{name}", "/api/runs/{run_id}", "/api/runs/{run_id}/samples",
                     "/api/pareto", "/api/compare", "/api/submissions", "/api/private-evals", "/api/admin/audit-log"):
            assert path in schema["paths"], path


def test_behind_a_reverse_proxy_root_path(db_url, local_runs) -> None:
    from gapmeter.board.app import BoardSettings

    boardkit.copy_runs(local_runs[1], db_url)
    with boardkit.ServedBoard(BoardSettings(db_url=db_url, root_path="/gm")) as board:
        c = board.client()
        # A proxy that strips the prefix, and one that forwards the full path: both work.
        for prefix in ("", "/gm"):
            assert c.get(f"{prefix}/health").status_code == 200
            page = c.get(f"{prefix}/", headers={"Accept": "text/html"}).text
            assert 'href="/gm/models/arith-large"' in page and 'src="/gm/static/plotly.min.js"' in page
        assert c.get("/gm/static/plotly.min.js").status_code == 200
        assert c.get("/openapi.json").json()["servers"] == [{"url": "/gm"}]


def test_logs_are_json_lines(served, caplog) -> None:
    import logging

    from gapmeter.board.jsonlog import JsonFormatter

    with caplog.at_level(logging.INFO, logger="gapmeter.board"):
        served.client().get("/api/leaderboard", headers={"X-Request-ID": "req-42"})
        # The access line is written once the answer has been sent, on the server's thread: the
        # client can see the answer first (a loaded machine made this test flaky).
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(getattr(r, "request_id", None) == "req-42" for r in caplog.records):
            time.sleep(0.02)
    rec = next(r for r in caplog.records if getattr(r, "request_id", None) == "req-42")
    line = json.loads(JsonFormatter().format(rec))
    assert line["message"] == "request" and line["status"] == 200 and line["path"] == "/api/leaderboard"
    assert line["ms"] >= 0 and line["level"] == "info"


def test_audit_verdicts_flag_models_with_evidence(served, local_runs) -> None:
    """Rows as ``gapmeter audit`` writes them (matched to runs by model fingerprint)."""
    from sqlalchemy import select

    from gapmeter.store.models import AuditDetectorResult, AuditVerdict, Run

    runs, _ = local_runs
    with served.ctx.sessions() as s:
        fp = s.scalar(select(Run.model_fingerprint).where(Run.id == runs["arith-large"].run_id))
        s.add(AuditVerdict(audit_id="aud1", model="hf", model_fingerprint=fp, task="arith_mc", verdict="contaminated",
                           reason="2 detectors below alpha after Holm", inflation=0.12, inflation_ci_low=0.05,
                           inflation_ci_high=0.19))
        s.add(AuditDetectorResult(audit_id="aud1", model_fingerprint=fp, task="arith_mc", detector="ts_guessing",
                                  p_value=0.0004, p_holm=0.0012, effect=0.31, effect_name="exact-match rate", n=40))
        s.add(AuditDetectorResult(audit_id="aud1", model_fingerprint=fp, task="arith_mc", detector="min_k",
                                  skipped="needs a reference model"))
        s.commit()
    c = served.client()
    rows = {r["model"]: r for r in c.get("/api/leaderboard").json()["rows"]}
    assert rows["arith-large"]["audit"]["flagged"] and not rows["arith-small"]["audit"]["flagged"]
    assert [r["model"] for r in c.get("/api/leaderboard", params={"flagged": "true"}).json()["rows"]] == ["arith-large"]
    audit = c.get("/api/models/arith-large").json()["audit"][0]
    assert audit["verdict"] == "contaminated" and audit["p_value"] == 0.0012 and audit["effect"] == 0.12
    assert "ts_guessing" in audit["detail"] and "skipped" in audit["detail"]["min_k"]
    page = c.get("/", headers={"Accept": "text/html"}).text
    assert 'href="/models/arith-large#audit">⚑ flagged' in page


def test_cache_seconds_bounds_rebuilds_and_zero_is_always_current(db_url, local_runs) -> None:
    from gapmeter.board.app import BoardSettings

    with boardkit.ServedBoard(BoardSettings(db_url=db_url, cache_seconds=3600)) as board:
        tok = board.token("alice", "submitter")
        assert board.client().get("/api/leaderboard").json()["total"] == 0
        submit(local_runs[0]["arith-small"].out_dir, board.url, tok, model_name="late")
        assert board.client().get("/api/leaderboard").json()["total"] == 0  # served from the cache
        board.ctx.cache.max_age_s = 0
        assert board.client().get("/api/leaderboard").json()["total"] == 1
