"""Alembic environment for the gapmeter store.

Run programmatically by ``gapmeter.store.migrate`` (which passes an open connection in
``config.attributes["connection"]``), or from the command line with
``alembic -c src/gapmeter/store/migrations/alembic.ini -x url=sqlite:///path upgrade head``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from gapmeter.store.models import Base

config = context.config
target_metadata = Base.metadata


def _configure(connection) -> None:  # noqa: ANN001
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL: pass -x url=... or set sqlalchemy.url in alembic.ini")
    engine = create_engine(url)
    with engine.connect() as conn:
        _configure(conn)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("gapmeter migrations run online only (pass -x url=...)")
run_migrations()
