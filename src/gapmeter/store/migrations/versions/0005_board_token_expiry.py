"""Board tokens may expire: ``board_tokens.expires_at`` (NULL: never).

Revision ID: 0005_board_tokens
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_board_tokens"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("board_tokens")}
    if "expires_at" not in columns:  # a store whose table create_all already made with it
        with op.batch_alter_table("board_tokens") as batch:
            batch.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("board_tokens") as batch:
        batch.drop_column("expires_at")
