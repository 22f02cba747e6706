"""Board test fixtures: databases (SQLite file and a real PostgreSQL server), a board served by
uvicorn on 127.0.0.1, tokens, and real runs of small models to fill it."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from support.services import service_missing

PG_ENV = "GAPMETER_TEST_PG_URL"


def _pg_admin_url() -> str:
    url = os.environ.get(PG_ENV)
    if not url:
        service_missing(f"{PG_ENV} is not set: no PostgreSQL server (scripts/test.sh starts one)")
    return url


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database on the server named by GAPMETER_TEST_PG_URL."""
    admin = make_url(_pg_admin_url())
    name = f"gm_{uuid.uuid4().hex[:12]}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test on a SQLite file and on a real PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'board.sqlite'}"
    return request.getfixturevalue("pg_url")


def chromium_path() -> str:
    path = os.environ.get("GAPMETER_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        service_missing("no chromium binary (Debian package `chromium`; scripts/test.sh installs it)")
    return path


# --------------------------------------------------------------------------- filled boards
@pytest.fixture(scope="session")
def local_runs(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """Two char-level LMs trained here and evaluated on arith_mc + arith_gen (40 items each)
    into a SQLite store, with results.json and samples files: ``(runs by name, store URL)``."""
    import boardkit

    root = tmp_path_factory.mktemp("board_runs")
    models = boardkit.train_models(root / "models")
    store = f"sqlite:///{root / 'local.sqlite'}"
    runs = {}
    for name, path in models.items():
        out = root / "runs" / name
        runs[name] = boardkit.LocalRun(name, path, out, boardkit.run_local(path, out, store))
    return runs, store


@pytest.fixture
def served(db_url: str, local_runs):  # noqa: ANN001, ANN201
    """A board on ``db_url`` (SQLite or PostgreSQL) holding the two local runs, served on
    127.0.0.1, with the board tests' task YAMLs included."""
    import boardkit

    from gapmeter.board.app import BoardSettings
    from gapmeter.board.private import PrivatePolicy

    boardkit.copy_runs(local_runs[1], db_url)
    settings = BoardSettings(
        db_url=db_url, include_path=(boardkit.FIXTURE_TASKS,),
        # the test endpoints listen on 127.0.0.1 (as --allow_private_endpoints allows)
        private=PrivatePolicy(items_per_eval=20, min_interval_s=0, max_rps=200, allow_private_endpoints=True),
    )
    with boardkit.ServedBoard(settings) as board:
        yield board
