"""Organisations, projects, users, memberships and personal API keys.

Revision ID: 0001
Revises:
Create Date: 2026-05-20
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamp(name: str, *, nullable: bool = False) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "organizations",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("slug", sa.String(48), nullable=False),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_organizations"),
        sa.UniqueConstraint("slug", name="uq_organizations_slug"),
    )

    op.create_table(
        "projects",
        # Integer ids from 1; SQLite AUTOINCREMENT so a deleted project's id (its team_id) is never reused.
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("uuid", sa.String(36), nullable=False),
        sa.Column("organization_id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("api_token", sa.String(64), nullable=False),
        sa.Column("timezone", sa.String(64), server_default="UTC", nullable=False),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_projects"),
        sa.ForeignKeyConstraint(
            ["organization_id"], ["organizations.id"], name="fk_projects_organization_id_organizations"
        ),
        sa.UniqueConstraint("uuid", name="uq_projects_uuid"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_projects_organization_id", "projects", ["organization_id"])
    op.create_index("ix_projects_api_token", "projects", ["api_token"], unique=True)

    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("uuid", sa.String(36), nullable=False),
        sa.Column("distinct_id", sa.String(200), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("first_name", sa.String(150), server_default="", nullable=False),
        sa.Column("last_name", sa.String(150), server_default="", nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=True),
        sa.Column("is_staff", sa.Boolean(), server_default=sa.false(), nullable=False),
        _timestamp("date_joined"),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("uuid", name="uq_users_uuid"),
        sa.UniqueConstraint("distinct_id", name="uq_users_distinct_id"),
        sa.UniqueConstraint("email", name="uq_users_email"),
        sqlite_autoincrement=True,
    )

    op.create_table(
        "organization_memberships",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("organization_id", sa.String(36), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("level", sa.SmallInteger(), nullable=False),
        _timestamp("joined_at"),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_organization_memberships"),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name="fk_organization_memberships_organization_id_organizations",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_organization_memberships_user_id_users", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("organization_id", "user_id", name="uq_organization_memberships_organization_id_user_id"),
    )
    op.create_index("ix_organization_memberships_user_id", "organization_memberships", ["user_id"])

    op.create_table(
        "personal_api_keys",
        sa.Column("id", sa.String(50), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(40), nullable=False),
        # sha256 of the plain key; the key itself is never stored.
        sa.Column("secure_value", sa.String(300), nullable=False),
        sa.Column("mask_value", sa.String(32), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("scoped_teams", sa.JSON(), nullable=True),
        sa.Column("scoped_organizations", sa.JSON(), nullable=True),
        _timestamp("created_at"),
        _timestamp("last_used_at", nullable=True),
        _timestamp("last_rolled_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_personal_api_keys"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_personal_api_keys_user_id_users", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_personal_api_keys_user_id", "personal_api_keys", ["user_id"])
    op.create_index("ix_personal_api_keys_secure_value", "personal_api_keys", ["secure_value"], unique=True)


def downgrade() -> None:
    op.drop_table("personal_api_keys")
    op.drop_table("organization_memberships")
    op.drop_table("users")
    op.drop_table("projects")
    op.drop_table("organizations")
