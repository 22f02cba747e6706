"""Security: stored XSS payloads render inert, SQL-injection strings in every parameter change
nothing and never crash, and a crawler over every page and API route never sees a private item
or answer (including error messages)."""

from __future__ import annotations

import re
from collections import deque
from urllib.parse import urljoin, urlsplit

import boardkit
from sqlalchemy import func, select

from gapmeter.store.models import DocRecord, MetricValue, Run, utcnow

XSS_MODEL = '<script>alert("xss-model")</script>'
XSS_TASK = '<img src=x onerror=alert("xss-task")>'
XSS_PROMPT = '<script>alert("xss-prompt")</script> Q:'
XSS_RESPONSE = '"><svg onload=alert("xss-response")>'
XSS_NOTE = "<iframe src=javascript:alert('xss-note')></iframe>"
RAW_PAYLOADS = ("<script>alert(", "<img src=x onerror", "<svg onload", "<iframe src=javascript")


def add_xss_run(sessions) -> str:  # noqa: ANN001
    """A run written into the shared store by some other tool, with hostile text everywhere."""
    with sessions() as s:
        s.add(Run(id="xss-run", status="complete", model="hf", model_args=f"pretrained=/m/{XSS_MODEL}",
                  model_fingerprint="f" * 16, tasks=[XSS_TASK], spec={"tasks": [XSS_TASK], "limit": None},
                  model_info={"board_name": XSS_MODEL}, created_at=utcnow(), finished_at=utcnow(), wall_seconds=3.0))
        s.flush()
        for i in range(4):
            s.add(DocRecord(run_id="xss-run", task=XSS_TASK, doc_id=i, doc_hash=f"h{i}", record={
                "doc_id": i, "doc": {"q": XSS_PROMPT}, "target": XSS_RESPONSE,
                "arguments": {"gen_args_0": {"arg_0": XSS_PROMPT, "arg_1": {"until": ["\n"]}}},
                "resps": [[XSS_RESPONSE]], "filtered_resps": [XSS_RESPONSE],
                "metrics": {"exact_match,none": float(i % 2)}}))
        s.add(MetricValue(run_id="xss-run", task=XSS_TASK, is_group=0, metric="exact_match", filter="none",
                          value=0.5, stderr=0.29, ci_low=0.0, ci_high=1.0, n=4))
        s.commit()
    return "xss-run"


XSS_PAGES = ["/", f"/models/{XSS_MODEL}", f"/runs/xss-run?task={XSS_TASK}", f"/runs/xss-run?task={XSS_TASK}&outcome=correct",
             "/pareto", f"/compare?a={XSS_MODEL}&b=arith-large", "/admin", f"/?q={XSS_MODEL}",
             f"/models/{XSS_MODEL}x", f"/?tasks={XSS_TASK}", f"/?sort={XSS_TASK}"]


def test_xss_payloads_are_escaped_in_every_page(served) -> None:
    add_xss_run(served.ctx.sessions)
    admin = served.token("ada", "admin")
    assert served.client(admin).post("/api/admin/annotations", json={"model_name": XSS_MODEL, "text": XSS_NOTE}).status_code == 201
    c = served.client(admin)
    for path in XSS_PAGES:
        r = c.get(path, headers={"Accept": "text/html"})
        assert r.status_code in (200, 404, 422), (path, r.status_code)
        for raw in RAW_PAYLOADS:
            assert raw not in r.text, (path, raw)
        assert "script-src 'self'" in r.headers["content-security-policy"]
    page = c.get("/", headers={"Accept": "text/html"}).text
    assert "&lt;script&gt;alert(&#34;xss-model&#34;)&lt;/script&gt;" in page  # shown as text


SQLI = ["' OR '1'='1", "'; DROP TABLE runs; --", '" OR 1=1 --', "1 UNION SELECT token_hash FROM board_tokens --",
        "%' OR 1=1 --", "arith-large' --", "1); DELETE FROM metrics; --", "\\'; SELECT pg_sleep(3); --"]


def _tables(served) -> tuple[int, ...]:
    with served.ctx.sessions() as s:
        return tuple(s.scalar(select(func.count()).select_from(t)) for t in (Run, DocRecord, MetricValue))


def test_sql_injection_strings_in_every_parameter(served, local_runs) -> None:
    runs, _ = local_runs
    rid = runs["arith-large"].run_id
    admin = served.client(served.token("ada", "admin"))
    sub = served.client(served.token("sam", "submitter"))
    before = _tables(served)
    for p in SQLI:
        gets = [
            ("/api/leaderboard", {"q": p}), ("/api/leaderboard", {"tasks": p}), ("/api/leaderboard", {"sort": p}),
            ("/api/leaderboard", {"sort": f"task:{p}"}), ("/api/leaderboard", {"w_speed": p}),
            (f"/api/models/{p}", {}), (f"/api/runs/{p}", {}), (f"/api/runs/{p}/samples", {"task": "arith_mc"}),
            (f"/api/runs/{rid}/samples", {"task": p}), (f"/api/runs/{rid}/samples", {"task": "arith_mc", "outcome": p}),
            (f"/api/runs/{rid}/samples", {"task": "arith_mc", "offset": p}),
            ("/api/compare", {"a": p, "b": "arith-large"}), ("/api/compare", {"a": "arith-large", "b": p}),
            ("/", {"q": p}), (f"/models/{p}", {}), (f"/runs/{p}", {}), (f"/runs/{rid}", {"task": p}),
            ("/compare", {"a": p, "b": p}), ("/api/admin/audit-log", {"limit": p}),
        ]
        for path, params in gets:
            r = admin.get(path, params=params)
            assert r.status_code in (200, 404, 422), (path, params, r.status_code, r.text[:200])
        assert admin.get("/api/leaderboard", params={"q": p}).json()["total"] == 0
        posts = [
            (admin, f"/api/admin/runs/{p}/visibility", {"hidden": True}),
            (admin, "/api/admin/private-splits", {"task": p, "split": p}),
            (sub, "/api/private-evals", {"model_name": p, "base_url": "http://127.0.0.1:9/v1", "api_model": p, "tasks": [p]}),
            (sub, "/api/submissions", {"format": "gapmeter-submission/1", "model_name": p, "results": {}, "samples": {}}),
        ]
        for client, path, body in posts:
            r = client.post(path, json=body)
            assert r.status_code in (400, 404, 409, 422), (path, r.status_code, r.text[:200])
        r = served.client(p).get("/api/whoami")
        assert r.status_code == 401
        r = admin.post("/api/admin/annotations", json={"model_name": p, "text": p})
        assert r.status_code == 201 and r.json()["text"] == p  # stored verbatim, as data
    for path in ("/api/models/a%00b", "/api/leaderboard?q=%00"):
        assert admin.get(path).status_code == 400
    assert admin.post("/api/admin/annotations", json={"model_name": "a\u0000b", "text": "x"}).status_code == 422
    assert _tables(served) == before
    assert served.client().get("/api/leaderboard").json()["total"] == 2


def _links(html: str, base: str) -> list[str]:
    out = []
    for href in re.findall(r'(?:href|src)="([^"#]+)', html):
        href = href.replace("&amp;", "&")
        url = urljoin(base, href)
        if urlsplit(url).netloc == urlsplit(base).netloc:
            out.append(url)
    return out


def test_crawler_never_sees_a_private_item_or_answer(served, local_runs, caplog) -> None:
    import logging

    runs, _ = local_runs
    admin_tok = served.token("ada", "admin")
    sub_tok = served.token("sam", "submitter")
    admin = served.client(admin_tok)
    assert admin.post("/api/admin/private-splits", json={"task": "board_arith2_gen", "split": "heldout"}).status_code == 201
    caplog.set_level(logging.DEBUG)
    honest = boardkit.arithmetic_endpoint()
    with boardkit.serve_app(honest) as url:
        for name in ("sam-model", "ghost-model"):  # names sam owns (arith-large is the operator's)
            r = served.client(sub_tok).post("/api/private-evals", json={
                "model_name": name, "base_url": url, "api_model": "m", "wait": True})
            assert r.status_code == 202
    dead = f"http://127.0.0.1:{boardkit.free_port()}/v1"
    served.client(sub_tok).post("/api/private-evals", json={"model_name": "sam-model", "base_url": dead,
                                                            "api_model": "m", "wait": True})
    with served.ctx.sessions() as s:
        from gapmeter.store.board_tables import PrivateItem

        private_docs = [d for (d,) in s.execute(select(PrivateItem.doc))]
    needles = {"CANARY"} | {d["tag"].strip() for d in private_docs} | {d["note"] for d in private_docs}
    assert len(needles) > 200

    schema = admin.get("/openapi.json").json()
    api_gets = []
    for path, ops in schema["paths"].items():
        if "get" not in ops:
            continue
        filled = (path.replace("{name}", "arith-large").replace("{run_id}", runs["arith-large"].run_id))
        api_gets.append(filled)
    api_gets += [f"/api/runs/{runs['arith-large'].run_id}/samples?task=arith_gen&limit=500",
                 "/api/compare?a=arith-large&b=arith-small", "/api/models/ghost-model", "/api/tasks",
                 "/api/runs/nope", "/api/models/board_arith2_gen", "/api/leaderboard?tasks=board_arith2_gen"]
    seen_pages = 0
    for token in (None, sub_tok, admin_tok):
        c = served.client(token)
        start = [served.url + p for p in ["/", "/pareto", "/compare", "/admin", "/login", "/docs"] + api_gets]
        queue, seen = deque(start), set(start)
        while queue and len(seen) < 400:
            url = queue.popleft()
            r = c.get(url, headers={"Accept": "text/html"} if "/api/" not in url else {})
            seen_pages += 1
            assert r.status_code < 500, url
            for needle in needles:
                assert needle not in r.text, (url, needle)
            if "text/html" in r.headers.get("content-type", ""):
                for link in _links(r.text, url):
                    if link not in seen and "/static/" not in link:
                        seen.add(link)
                        queue.append(link)
        # Submitters' own evaluation records: aggregates only.
        if token is not None:
            body = c.get("/api/private-evals").text
            assert not any(n in body for n in needles)
    assert seen_pages > 50
    logs = "\n".join(r.getMessage() + str(r.__dict__) for r in caplog.records)
    assert not any(n in logs for n in needles)
