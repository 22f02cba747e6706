"""Issue 19, each item reproduced against a real board and a real recording HTTP server on
127.0.0.1 standing in for the submitter's endpoint; each test fails if its item regresses.

1. credentials: the board's environment never reaches an endpoint; options are structured
2. ownership, admin delete, audit log with the full request and the result
3. SSRF: non-public addresses refused after DNS, re-checked per connection (redirects);
   one error message whatever answered
4. no 500 on out-of-range integers or deep nesting
5. model names checked after normalising; the drill-down shows the board's doc and target
6. token expiry, the server-set cookie, /login and /logout with a bad cookie, /docs under the CSP
7. submissions deduplicated by content
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boardkit
import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy import func, select, update

from gapmeter.board.app import BoardSettings
from gapmeter.board.endpoint import FAILED
from gapmeter.board.private import PrivatePolicy
from gapmeter.store.board_tables import BoardToken, PrivateEval, PrivateExposure
from gapmeter.store.models import Run, utcnow

TASK = "board_arith2_gen"
OPERATOR_KEY = "sk-operator-CANARY-4f1c"
OTHER_SECRET = "board-secret-CANARY-9a2e"


# ------------------------------------------------------------------ a recording endpoint
def recording_endpoint(mode: str = "ok", redirect_to: str = "") -> FastAPI:
    """Every request (method, path, headers, body) lands in ``app.state.seen``. ``mode``: ok
    (answers ``Q: a+b=?`` prompts), redirect (307 to ``redirect_to``), html404 (a live web server
    that is no OpenAI endpoint), error500, garbage (200 with a body that is not JSON)."""
    app = FastAPI()
    app.state.seen = []

    @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "DELETE"])
    async def anything(path: str, request: Request) -> Response:
        body = await request.body()
        app.state.seen.append({"method": request.method, "path": "/" + path, "headers": dict(request.headers),
                               "body": body.decode("utf-8", "replace")})
        if mode == "redirect":
            return RedirectResponse(redirect_to, status_code=307)
        if mode == "html404":
            return Response("<html>nginx</html>", status_code=404, media_type="text/html")
        if mode == "error500":
            return JSONResponse({"error": {"message": "boom"}}, status_code=500)
        if mode == "garbage":
            return Response("not json at all", media_type="text/plain")
        prompt = json.loads(body).get("prompt", "")
        ans = boardkit._solve(prompt)
        return JSONResponse({"id": "x", "object": "text_completion", "choices": [
            {"index": 0, "text": f" {ans}\n" if ans is not None else " ?\n", "finish_reason": "stop"}]})

    return app


@contextmanager
def serve_on(app: FastAPI, host: str = "127.0.0.1") -> Iterator[str]:
    import socket
    import threading
    import time

    import uvicorn

    with socket.socket() as s:
        s.bind((host, 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False,
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "endpoint did not start"
        time.sleep(0.02)
    try:
        yield f"http://{host}:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(10)


@contextmanager
def a_board(tmp_path, **policy: Any) -> Iterator[boardkit.ServedBoard]:  # noqa: ANN001
    settings = BoardSettings(
        db_url=f"sqlite:///{tmp_path / 'board.sqlite'}", include_path=(boardkit.FIXTURE_TASKS,),
        private=PrivatePolicy(items_per_eval=5, min_interval_s=0, max_rps=500, **policy),
    )
    with boardkit.ServedBoard(settings) as board:
        admin = board.client(board.token("ada", "admin"))
        assert admin.post("/api/admin/private-splits", json={"task": TASK, "split": "heldout"}).status_code == 201
        board.admin = admin  # type: ignore[attr-defined]
        yield board


def evaluate(client: httpx.Client, url: str, name: str = "my-model", **extra: Any) -> httpx.Response:
    return client.post("/api/private-evals", json={"model_name": name, "base_url": url, "api_model": "m",
                                                   "tasks": [TASK], "wait": True, **extra})


def count(board: boardkit.ServedBoard, table: Any) -> int:
    with board.ctx.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(table)))


def audit(board: boardkit.ServedBoard, action: str) -> list[dict[str, Any]]:
    entries = board.admin.get("/api/admin/audit-log").json()["entries"]  # type: ignore[attr-defined]
    return [e for e in entries if e["action"] == action]


# --------------------------------------------------------------------- 1. credentials
def test_board_environment_never_reaches_the_endpoint(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", OPERATOR_KEY)
    monkeypatch.setenv("BOARD_SECRET", OTHER_SECRET)
    rec = recording_endpoint()
    with a_board(tmp_path, allow_private_endpoints=True) as board, serve_on(rec) as url:
        sub = board.client(board.token("sam", "submitter"))
        r = evaluate(sub, url)  # no api_key: no Authorization header at all
        assert r.status_code == 202 and r.json()["evaluations"][0]["status"] == "complete", r.text
        assert len(rec.state.seen) == 5
        assert all("authorization" not in s["headers"] for s in rec.state.seen)
        rec.state.seen.clear()
        r = evaluate(sub, url, api_key="sk-submitter-own")  # the submitter's key, and only it
        assert r.json()["evaluations"][0]["status"] == "complete"
        assert {s["headers"].get("authorization") for s in rec.state.seen} == {"Bearer sk-submitter-own"}
        everything = json.dumps(rec.state.seen)
        assert OPERATOR_KEY not in everything and OTHER_SECRET not in everything
        # the key is never stored or logged by the board
        assert "sk-submitter-own" not in json.dumps(board.admin.get("/api/admin/audit-log").json())


@pytest.mark.parametrize("body", [
    {"api_model": "m,api_key_env=BOARD_SECRET"},
    {"api_model": "m,api=chat,seed=7"},
    {"base_url_suffix": ",api_key_env=BOARD_SECRET"},
    {"api_key_env": "BOARD_SECRET"},
    {"tokenizer": "/etc/passwd"},
    {"concurrency": 500},
    {"model_args": "api_key_env=BOARD_SECRET"},
    {"api": "completions,api_key_env=BOARD_SECRET"},
])
def test_backend_option_injection_is_refused(tmp_path, monkeypatch, body) -> None:
    monkeypatch.setenv("BOARD_SECRET", OTHER_SECRET)
    rec = recording_endpoint()
    with a_board(tmp_path, allow_private_endpoints=True) as board, serve_on(rec) as url:
        sub = board.client(board.token("sam", "submitter"))
        body = dict(body)
        url = url + body.pop("base_url_suffix", "")
        r = sub.post("/api/private-evals", json={"model_name": "m1", "base_url": url, "api_model": "m",
                                                 "tasks": [TASK], "wait": True} | body)
        assert r.status_code == 422, r.text
        assert rec.state.seen == [] and count(board, PrivateExposure) == 0


def test_openai_backend_keyless_option_reads_no_environment(monkeypatch) -> None:
    from gapmeter.models.openai_api import load_openai

    monkeypatch.setenv("OPENAI_API_KEY", OPERATOR_KEY)
    keyless = load_openai({"base_url": "http://127.0.0.1:9/v1", "model": "m", "api_key_env": "none"})
    assert keyless._api_key is None
    # the CLI's normal behaviour is unchanged: the key comes from the environment
    assert load_openai({"base_url": "http://127.0.0.1:9/v1", "model": "m"})._api_key == OPERATOR_KEY


# ------------------------------------------------------------------ 2. ownership, audit
def test_submitters_evaluate_only_their_own_models_admins_delete(tmp_path) -> None:
    rec = recording_endpoint()
    with a_board(tmp_path, allow_private_endpoints=True) as board, serve_on(rec) as url:
        with board.ctx.sessions() as s:  # a run evaluated by the operator into the store
            s.add(Run(id="local-run", status="complete", model="hf", model_args="pretrained=/m/op-model",
                      model_fingerprint="f" * 16, tasks=[TASK], spec={"tasks": [TASK]},
                      model_info={"board_name": "op-model"}, created_at=utcnow(), finished_at=utcnow()))
            s.commit()
        alice = board.client(board.token("alice", "submitter"))
        mallory = board.client(board.token("mallory", "submitter"))
        first = evaluate(alice, url, "alice-model")  # a new name: alice owns it now
        assert first.status_code == 202 and first.json()["evaluations"][0]["status"] == "complete"
        exposures = count(board, PrivateExposure)
        for name in ("alice-model", " alice-model ", "op-model"):
            r = evaluate(mallory, url, name)
            assert r.status_code == 403 and "belongs to" in r.json()["error"], r.text
        assert count(board, PrivateExposure) == exposures  # nothing used up by refused requests
        assert evaluate(alice, url, "alice-model").status_code == 202  # the owner may evaluate again
        assert evaluate(mallory, url, "mallory-model").status_code == 202

        # the audit log: full base URL, endpoint model, submitter, and the result
        started = [e for e in audit(board, "private.evaluate") if e["detail"]["model"] == "alice-model"]
        assert started and started[-1]["detail"]["base_url"] == url and started[-1]["detail"]["api_model"] == "m"
        assert started[-1]["actor"] == "alice" and started[-1]["detail"]["submitter"] == "alice"
        done = [e for e in audit(board, "private.complete") if e["detail"]["model"] == "alice-model"]
        assert done and done[0]["detail"]["base_url"] == url and done[0]["detail"]["results"][0]["value"] is not None

        # admins delete; submitters cannot; a deleted evaluation leaves every page
        ev_id = first.json()["evaluations"][0]["id"]
        assert mallory.delete(f"/api/admin/private-evals/{ev_id}").status_code == 403
        r = board.admin.delete(f"/api/admin/private-evals/{ev_id}")
        assert r.status_code == 200 and r.json()["status"] == "deleted"
        assert board.admin.delete(f"/api/admin/private-evals/{ev_id}").status_code == 404
        deleted = audit(board, "private.delete")
        assert deleted and deleted[0]["detail"]["eval"]["id"] == ev_id
        with board.ctx.sessions() as s:
            assert s.scalar(select(PrivateEval.status).where(PrivateEval.id == ev_id)) == "deleted"


def test_a_name_claimed_by_a_private_evaluation_cannot_be_submitted_by_another(tmp_path) -> None:
    from gapmeter.commands.submit import submit

    rec = recording_endpoint()
    with a_board(tmp_path, allow_private_endpoints=True) as board, serve_on(rec) as url:
        alice = board.client(board.token("alice", "submitter"))
        assert evaluate(alice, url, "alice-model").status_code == 202
        out = _public_run(url, tmp_path / "run")
        with pytest.raises(Exception, match="belongs to another submitter"):
            submit(out, board.url, board.token("mallory", "submitter"), model_name="alice-model")


# --------------------------------------------------------------------------- 3. SSRF
NON_PUBLIC = ["127.0.0.1:{port}", "localhost:{port}", "LOCALHOST.:{port}", "127.1:{port}", "2130706433:{port}",
              "0x7f000001:{port}", "[::1]:{port}", "[::ffff:127.0.0.1]:{port}", "0.0.0.0:{port}",
              "169.254.169.254", "10.0.0.1", "192.168.1.1", "172.16.0.1", "100.100.100.200", "[fd00:ec2::254]",
              "[64:ff9b::7f00:1]:{port}", "[2002:7f00:1::]:{port}"]


def test_non_public_endpoints_are_refused_before_anything_is_sent(tmp_path) -> None:
    rec = recording_endpoint()
    with a_board(tmp_path) as board, serve_on(rec) as url:
        port = url.rsplit(":", 1)[1].split("/")[0]
        sub = board.client(board.token("sam", "submitter"))
        for host in NON_PUBLIC:
            r = evaluate(sub, f"http://{host.format(port=port)}/v1")
            assert r.status_code == 422, (host, r.text)
        assert evaluate(sub, "http://does-not-resolve.invalid/v1").status_code == 422
        assert rec.state.seen == [] and count(board, PrivateEval) == 0 and count(board, PrivateExposure) == 0


def test_an_environment_proxy_is_refused_not_trusted(tmp_path, monkeypatch) -> None:
    """A proxy would resolve and connect by itself, past the address check: refused."""
    rec = recording_endpoint()
    with a_board(tmp_path, allow_private_endpoints=True) as board, serve_on(rec) as url:
        sub = board.client(board.token("sam", "submitter"))  # made before: it reads proxies once
        for var in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{boardkit.free_port()}")
        r = evaluate(sub, url)
        assert r.status_code == 422 and "proxy" in r.json()["error"]
        assert rec.state.seen == [] and count(board, PrivateEval) == 0


def test_every_connection_is_checked_so_redirects_cannot_reach_other_addresses(tmp_path) -> None:
    """The endpoint (an allowed address) redirects to an address the board may not reach: the
    target receives nothing, whichever transport and redirect policy the backend has."""
    inner = recording_endpoint()
    with serve_on(inner, host="127.0.0.2") as inner_url:
        front = recording_endpoint("redirect", redirect_to=f"{inner_url}/completions")
        with serve_on(front) as url, a_board(
                tmp_path, allow_networks=(ipaddress.ip_network("127.0.0.1/32"),)) as board:
            sub = board.client(board.token("sam", "submitter"))
            r = evaluate(sub, url)
            assert r.status_code == 202
            ev = r.json()["evaluations"][0]
            assert ev["status"] == "failed" and ev["error"] == FAILED
            assert front.state.seen and inner.state.seen == []
            failed = audit(board, "private.failed")[0]["detail"]
            assert failed["base_url"] == url
            # with the old transport (no redirects followed) nothing was refused; either way
            # nothing reached 127.0.0.2
            assert set(failed["refused_addresses"]) <= {"127.0.0.2"}


def test_errors_do_not_say_what_answered(tmp_path) -> None:
    """A closed port, a web server that is no OpenAI endpoint, an error and garbage: one message."""
    dead = f"http://127.0.0.1:{boardkit.free_port()}/v1"
    with a_board(tmp_path, allow_private_endpoints=True) as board:
        sub = board.client(board.token("sam", "submitter"))
        answers = []
        for mode in ("html404", "error500", "garbage"):
            with serve_on(recording_endpoint(mode)) as url:
                answers.append(evaluate(sub, url).json()["evaluations"][0])
        answers.append(evaluate(sub, dead).json()["evaluations"][0])
        assert {(a["status"], a["error"]) for a in answers} == {("failed", FAILED)}
        reasons = [e["detail"]["reasons"] for e in audit(board, "private.failed")]
        assert len(reasons) == 4 and all(reasons)  # admins see a category, never the endpoint's text
        assert "boom" not in json.dumps(reasons) and "nginx" not in json.dumps(reasons)


# ----------------------------------------------------------------------- 4. no 500s
def test_out_of_range_integers_and_deep_nesting_are_client_errors(tmp_path) -> None:
    with a_board(tmp_path) as board:
        admin = board.admin  # type: ignore[attr-defined]
        big = 2**63
        for method, path in [("DELETE", f"/api/admin/tokens/{big}"), ("DELETE", f"/api/admin/annotations/{big}"),
                             ("DELETE", f"/api/admin/private-evals/{big}"), ("DELETE", "/api/admin/tokens/-1"),
                             ("GET", f"/api/admin/audit-log?offset={big}"), ("GET", f"/api/leaderboard?offset={big}"),
                             ("GET", f"/api/admin/audit-log?offset={10**30}"), ("GET", f"/?offset={big}")]:
            r = admin.request(method, path)
            assert r.status_code == 422, (path, r.status_code, r.text[:200])
        deep = b"[" * 200_000 + b"]" * 200_000
        sub = board.client(board.token("sam", "submitter"))
        r = sub.post("/api/submissions", content=deep, headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and "nested too deeply" in r.json()["error"]
        deep_obj = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
        for path in ("/api/private-evals", "/api/admin/annotations", "/api/admin/private-splits"):
            r = admin.post(path, content=deep_obj, headers={"Content-Type": "application/json"})
            assert r.status_code in (400, 422), (path, r.status_code)


# ---------------------------------------------------- 5. names and the drill-down's data
BAD_NAMES = ["   ", "\t\n", "a/b", "..", ".", "a\\b", "x\u202eevil", "a\u200bb", "a\u2066b", "a\x00b"]


def test_model_names_are_checked_after_normalising(tmp_path) -> None:
    from gapmeter.commands.submit import build_payload

    rec = recording_endpoint()
    with a_board(tmp_path, allow_private_endpoints=True) as board, serve_on(rec) as url:
        sub = board.client(board.token("sam", "submitter"))
        out = _public_run(url, tmp_path / "run")
        for name in BAD_NAMES:
            assert evaluate(sub, url, name).status_code == 422, repr(name)
            payload = build_payload(out, model_name="x") | {"model_name": name}
            r = sub.post("/api/submissions", json=payload)
            assert r.status_code == 422 and "model_name" in r.json()["error"], (repr(name), r.text[:200])
        # NFC and trimming: the stored name is the normal form
        r = sub.post("/api/submissions", json=build_payload(out, model_name="  cafe\u0301 "))
        assert r.status_code == 201 and r.json()["model"] == "caf\u00e9"
        assert evaluate(sub, url, "caf\u00e9").status_code == 202  # the same (owned) name


def test_links_to_a_path_like_name_from_the_store_stay_one_segment(tmp_path) -> None:
    """Names written into the store by other tools are not validated; their links still cannot
    resolve to another path."""
    name = "a/../../admin"
    with a_board(tmp_path) as board:
        with board.ctx.sessions() as s:
            s.add(Run(id="odd-run", status="complete", model="hf", model_args="", model_fingerprint="e" * 16,
                      tasks=[TASK], spec={"tasks": [TASK]}, model_info={"board_name": name},
                      created_at=utcnow(), finished_at=utcnow()))
            s.commit()
        c = board.client()
        for path in ("/", "/runs/odd-run"):
            page = c.get(path, headers={"Accept": "text/html"}).text
            assert "/models/a%2F..%2F..%2Fadmin" in page and "/models/a/.." not in page, path
        assert c.get("/models/a%2F..%2F..%2Fadmin", headers={"Accept": "text/html"}).status_code in (200, 404)


def test_drill_down_shows_the_boards_doc_and_target(tmp_path) -> None:
    from gapmeter.commands.submit import build_payload

    rec = recording_endpoint()
    with a_board(tmp_path, allow_private_endpoints=True) as board, serve_on(rec) as url:
        sub = board.client(board.token("sam", "submitter"))
        out = _public_run(url, tmp_path / "run")
        payload = build_payload(out, model_name="tampered")
        truth = {r["doc_id"]: r["target"] for r in payload["samples"][TASK]}
        for r in payload["samples"][TASK]:
            r["target"] = "HACKED-TARGET"
            r["doc"] = {"q": "HACKED-DOC"}
        r = sub.post("/api/submissions", json=payload)
        assert r.status_code == 201, r.text
        run_id = r.json()["run_id"]
        items = board.client().get(f"/api/runs/{run_id}/samples", params={"task": TASK, "limit": 500}).json()["items"]
        assert items and all(i["target"] == truth[i["doc_id"]] for i in items)
        page = board.client().get(f"/runs/{run_id}", params={"task": TASK}, headers={"Accept": "text/html"}).text
        assert "HACKED" not in page and "HACKED" not in json.dumps(items)


# ----------------------------------------------------------------- 6. tokens and /docs
def test_token_expiry_cookie_flags_and_signing_out_with_a_bad_cookie(tmp_path) -> None:
    with a_board(tmp_path) as board:
        admin = board.admin  # type: ignore[attr-defined]
        made = admin.post("/api/admin/tokens", json={"name": "eve", "role": "viewer", "expires_in_days": 1}).json()
        assert made["expires_at"] is not None
        tok = made["token"]
        assert board.client(tok).get("/api/whoami").json()["name"] == "eve"

        # the server sets the cookie: HttpOnly, SameSite=Strict, path-scoped, Secure over https
        c = httpx.Client(base_url=board.url, follow_redirects=False)
        r = c.post("/login", data={"token": tok})
        assert r.status_code == 303
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie and "max-age=" in cookie
        assert "secure" not in cookie
        assert int(cookie.split("max-age=")[1].split(";")[0]) <= 86400
        r = c.post("/login", data={"token": tok}, headers={"X-Forwarded-Proto": "https"})
        assert "secure" in r.headers["set-cookie"].lower()
        assert cookie_client(board, tok).get("/login").text.count("Signed in as") == 1
        assert c.post("/login", data={"token": tok}, headers={"Origin": "https://evil.example"}).status_code == 403
        behind_proxy = {"Origin": "https://board.example", "X-Forwarded-Host": "board.example"}
        assert c.post("/login", data={"token": tok}, headers=behind_proxy).status_code == 303
        bad = c.post("/login", data={"token": "gmb_wrong"})
        assert bad.status_code == 401 and "set-cookie" not in bad.headers

        # expired: refused everywhere, but /login and /logout still work and clear the cookie
        with board.ctx.sessions() as s:
            s.execute(update(BoardToken).where(BoardToken.name == "eve").values(expires_at=utcnow()))
            s.commit()
        assert board.client(tok).get("/api/whoami").status_code == 401
        r = cookie_client(board, tok).get("/", headers={"Accept": "text/html"})
        assert r.status_code == 401 and "max-age=0" in r.headers["set-cookie"].lower()
        r = cookie_client(board, tok).get("/login", headers={"Accept": "text/html"})
        assert r.status_code == 200 and "max-age=0" in r.headers["set-cookie"].lower()
        r = cookie_client(board, tok).post("/logout")
        assert r.status_code == 303 and "max-age=0" in r.headers["set-cookie"].lower()
        # a revoked token's cookie likewise
        other = board.token("rob", "viewer")
        board.admin.delete(f"/api/admin/tokens/{board.admin.get('/api/admin/tokens').json()['tokens'][-1]['id']}")
        assert cookie_client(board, other).get("/login").status_code == 200


def cookie_client(board: boardkit.ServedBoard, token: str) -> httpx.Client:
    return httpx.Client(base_url=board.url, follow_redirects=False, cookies={"gapmeter_token": token})


def test_docs_page_works_under_the_csp(tmp_path) -> None:
    import re

    with a_board(tmp_path) as board:
        r = board.client().get("/docs", headers={"Accept": "text/html"})
        assert r.status_code == 200
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
        scripts = re.findall(r"<script([^>]*)>", r.text)
        assert scripts and all('src="/static/' in s for s in scripts)  # no inline script, no CDN
        assert "cdn" not in r.text.lower() and "POST /api/private-evals" in r.text and "api_model" in r.text


# --------------------------------------------------------------------- 7. dedup by content
def test_a_reserialised_submission_is_the_same_submission(tmp_path) -> None:
    from gapmeter.commands.submit import build_payload

    rec = recording_endpoint()
    with a_board(tmp_path, allow_private_endpoints=True) as board, serve_on(rec) as url:
        sub = board.client(board.token("sam", "submitter"))
        payload = build_payload(_public_run(url, tmp_path / "run"), model_name="dedup")
        first = sub.post("/api/submissions", content=json.dumps(payload).encode(),
                         headers={"Content-Type": "application/json"})
        again = sub.post("/api/submissions", content=json.dumps(payload, indent=2, sort_keys=True,
                                                                 ensure_ascii=True).encode(),
                         headers={"Content-Type": "application/json"})
        assert first.status_code == 201 and again.status_code == 200, again.text
        assert again.json()["duplicate"] and again.json()["run_id"] == first.json()["run_id"]


def _public_run(url: str, out):  # noqa: ANN001, ANN202
    """A real run of the public split through the ``openai`` backend against ``url``."""
    from gapmeter.engine.evaluate import evaluate as run
    from gapmeter.spec import RunSpec

    run(RunSpec(model="openai", model_args=f"base_url={url},model=m,stream=false,concurrency=2,api_key_env=none",
                tasks=(TASK,), output_path=out, log_samples=True, include_path=(boardkit.FIXTURE_TASKS,),
                db=f"sqlite:///{out}.sqlite", bootstrap_iters=100))
    return out


# ------------------------------------------------------------- the operator's CLI flag
def _cli(*args: str, **kw: Any):  # noqa: ANN202
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-c", "from gapmeter.cli import main; main()", *args],
                          capture_output=True, text=True, timeout=120, **kw)


@pytest.mark.parametrize("allow", [False, True])
def test_gapmeter_board_allow_private_endpoints_flag(tmp_path, allow) -> None:
    """``gapmeter board`` as a process: endpoints on 127.0.0.1 are refused unless the operator
    passed --allow_private_endpoints; ``token create --expires-days`` sets an expiry."""
    import subprocess
    import sys
    import time

    db = f"sqlite:///{tmp_path / 'cli.sqlite'}"
    made = _cli("board", "token", "create", "--db", db, "--name", "sam", "--role", "submitter", "--expires-days", "2")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip().splitlines()[-1]
    marked = _cli("board", "private", "mark", "--db", db, "--task", TASK, "--split", "heldout",
                  "--include_path", str(boardkit.FIXTURE_TASKS))
    assert marked.returncode == 0, marked.stderr
    port = boardkit.free_port()
    cmd = ["board", "--db", db, "--port", str(port), "--include_path", str(boardkit.FIXTURE_TASKS),
           "--private-interval", "0", "--private-items", "3", "--submission-processes", "0"]
    cmd += ["--allow_private_endpoints"] if allow else []
    proc = subprocess.Popen([sys.executable, "-c", "from gapmeter.cli import main; main()", *cmd],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rec = recording_endpoint()
    try:
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"},
                              timeout=60)
        deadline = time.monotonic() + 60
        while True:
            try:
                if client.get("/health").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "board did not start"
            time.sleep(0.2)
        assert client.get("/api/whoami").json()["name"] == "sam"
        with serve_on(rec) as url:
            r = evaluate(client, url)
        if allow:
            assert r.status_code == 202 and r.json()["evaluations"][0]["status"] == "complete", r.text
            assert len(rec.state.seen) == 3
        else:
            assert r.status_code == 422 and "public endpoints only" in r.json()["error"]
            assert rec.state.seen == []
    finally:
        proc.terminate()
        proc.wait(30)
