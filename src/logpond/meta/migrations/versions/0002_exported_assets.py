"""Exported assets: files produced by ``POST .../logs/export/``.

Revision ID: 0002
Revises: 0001
Create Date: 2026-05-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "exported_assets",
        # AUTOINCREMENT on SQLite: the file on disk is named by the id, which must never be handed out twice.
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("export_format", sa.String(100), nullable=False),
        sa.Column("export_context", sa.JSON(), nullable=False),
        sa.Column("content_location", sa.String(1000), nullable=True),
        sa.Column("exception", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_after", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_exported_assets"),
        sa.ForeignKeyConstraint(
            ["team_id"], ["projects.id"], name="fk_exported_assets_team_id_projects", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["users.id"], name="fk_exported_assets_created_by_id_users", ondelete="SET NULL"
        ),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_exported_assets_team_id", "exported_assets", ["team_id"])
    op.create_index("ix_exported_assets_expires_after", "exported_assets", ["expires_after"])


def downgrade() -> None:
    op.drop_table("exported_assets")
