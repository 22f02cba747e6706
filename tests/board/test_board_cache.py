"""The board under load: snapshots served stale-while-revalidate within their documented bound,
pages rendered once per snapshot (ETag / 304, gzip), and uploads re-scored in a validator
process. SQLite only (the cache does not depend on the database; test_board_api covers both)."""

from __future__ import annotations

import gzip
import json
import time

import boardkit
import httpx

from gapmeter.board.app import BoardSettings
from gapmeter.commands.submit import build_payload, submit


def _settings(tmp_path, **kw) -> BoardSettings:  # noqa: ANN001
    return BoardSettings(db_url=f"sqlite:///{tmp_path / 'board.sqlite'}", include_path=(boardkit.FIXTURE_TASKS,), **kw)


def test_a_submission_shows_within_twice_cache_seconds_and_rebuilds_run_in_the_background(tmp_path, local_runs) -> None:
    runs, _ = local_runs
    max_age = 0.5
    with boardkit.ServedBoard(_settings(tmp_path, cache_seconds=max_age)) as board:
        tok = board.token("alice", "submitter")
        c = board.client()
        assert c.get("/api/leaderboard").json()["total"] == 0
        builds = board.ctx.cache.builds
        submit(runs["arith-small"].out_dir, board.url, tok, model_name="fresh")
        accepted = time.monotonic()
        # The documented bound is a guarantee, not a tendency: a request sent more than
        # 2 x cache_seconds after the upload was accepted sees it, however loaded the machine.
        time.sleep(2 * max_age + 0.05)
        assert time.monotonic() - accepted > 2 * max_age
        assert c.get("/api/leaderboard").json()["total"] == 1
        assert board.ctx.cache.builds == builds + 1  # one rebuild for the change, not one per reader

        # Between 1x and 2x cache_seconds old: served at once, rebuilt by one background thread.
        submit(runs["arith-large"].out_dir, board.url, tok, model_name="fresh-2")
        time.sleep(max_age + 0.05)
        total = c.get("/api/leaderboard").json()["total"]
        assert total in (1, 2)  # the old snapshot, or the new one if the rebuild already won
        pending = board.ctx.cache.refreshing()
        if pending is not None:
            pending.result(timeout=30)
        assert c.get("/api/leaderboard").json()["total"] == 2
        assert board.ctx.cache.builds == builds + 2


def test_cached_pages_answer_304_and_gzip_and_change_with_the_data(tmp_path, local_runs) -> None:
    runs, _ = local_runs
    with boardkit.ServedBoard(_settings(tmp_path)) as board:  # cache_seconds=0: always current
        tok = board.token("alice", "submitter")
        submit(runs["arith-small"].out_dir, board.url, tok, model_name="first")
        with httpx.Client(base_url=board.url, headers={"Accept-Encoding": "identity"}) as c:
            for path in ("/", "/api/leaderboard", "/pareto", "/api/pareto"):
                plain = c.get(path, headers={"Accept": "text/html"})
                assert plain.status_code == 200 and "content-encoding" not in plain.headers, path
                etag = plain.headers["etag"]
                assert plain.headers["x-request-id"] and plain.headers["x-content-type-options"] == "nosniff"
                again = c.get(path, headers={"Accept": "text/html", "If-None-Match": etag})
                assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag, path
                with c.stream("GET", path, headers={"Accept": "text/html", "Accept-Encoding": "gzip"}) as raw:
                    body = b"".join(raw.iter_raw())  # as sent (.content would be decoded)
                assert raw.headers["content-encoding"] == "gzip" and raw.headers["vary"] == "Accept-Encoding"
                assert gzip.decompress(body) == plain.content and len(body) < len(plain.content), path
            api = json.loads(c.get("/api/leaderboard").content)
            assert [r["model"] for r in api["rows"]] == ["first"]
            page = c.get("/", headers={"Accept": "text/html"})
            assert 'data-model="first"' in page.text and page.headers["content-type"].startswith("text/html")
            # Bad parameters are answered as before, and not cached.
            assert c.get("/api/leaderboard", params={"sort": "nonsense"}).status_code == 422
            assert c.get("/api/leaderboard", params={"sort": "nonsense"}).status_code == 422
            old = c.get("/api/leaderboard").headers["etag"]
            submit(runs["arith-large"].out_dir, board.url, tok, model_name="second")
            r = c.get("/api/leaderboard", headers={"If-None-Match": old})
            assert r.status_code == 200 and r.headers["etag"] != old
            assert {x["model"] for x in r.json()["rows"]} == {"first", "second"}
            # Signed-in pages are cached per person: the header names who is signed in.
            assert "alice (submitter)" in c.get("/", headers={"Authorization": f"Bearer {tok}"}).text
            assert "alice (submitter)" not in c.get("/").text


def test_uploads_are_rescored_in_a_validator_process(tmp_path, local_runs) -> None:
    runs, _ = local_runs
    with boardkit.ServedBoard(_settings(tmp_path, submission_processes=1)) as board:
        try:
            tok = board.token("alice", "submitter")
            first = submit(runs["arith-small"].out_dir, board.url, tok, model_name="proc")
            assert not first["duplicate"] and "re-scored" in first["checks"]["tasks"]["arith_mc"]
            assert submit(runs["arith-small"].out_dir, board.url, tok, model_name="proc")["duplicate"]
            c = board.client(tok)
            payload = build_payload(runs["arith-large"].out_dir, "tampered")
            payload["results"]["results"]["arith_mc"]["acc,none"] += 0.05
            r = c.post("/api/submissions", json=payload)
            assert r.status_code == 422 and "arith_mc" in r.json()["error"]
            r = c.post("/api/submissions", content=b"{not json", headers={"Content-Type": "application/json"})
            assert r.status_code == 400 and "malformed" in r.json()["error"]  # the status survives the process
            assert [x["model"] for x in c.get("/api/leaderboard").json()["rows"]] == ["proc"]
        finally:
            board.ctx.validators.shutdown()
