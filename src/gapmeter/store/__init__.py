"""Durable results: SQLAlchemy models (SQLite by default, any URL) and lm-eval-layout JSON."""

# The board's tables (tokens, audit log, entries, private items) share the store's metadata so one
# migration history covers the whole store: loaded with the package, so ``Base.metadata`` is
# complete whichever store module is imported first.
from gapmeter.store import board_tables as _board_tables  # noqa: F401
