"""Log alerts: their rules and state, their history, and their destinations.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _when(name: str, nullable: bool = True) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "logs_alerts",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("filters", sa.JSON(), nullable=False),
        sa.Column("threshold_count", sa.Integer(), nullable=False),
        sa.Column("threshold_operator", sa.String(8), nullable=False),
        sa.Column("window_minutes", sa.SmallInteger(), nullable=False),
        sa.Column("check_interval_minutes", sa.SmallInteger(), nullable=False),
        sa.Column("evaluation_periods", sa.SmallInteger(), nullable=False),
        sa.Column("datapoints_to_alarm", sa.SmallInteger(), nullable=False),
        sa.Column("cooldown_minutes", sa.Integer(), nullable=False),
        _when("snooze_until"),
        sa.Column("schedule_restriction", sa.JSON(), nullable=True),
        sa.Column("state", sa.String(20), nullable=False),
        _when("next_check_at"),
        _when("last_notified_at"),
        _when("last_checked_at"),
        _when("first_enabled_at"),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("last_error_message", sa.Text(), nullable=True),
        sa.Column("last_delivery_error", sa.Text(), nullable=True),
        _when("last_delivery_error_at"),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        _when("created_at", nullable=False),
        _when("updated_at", nullable=False),
        sa.Column("claim_token", sa.String(36), nullable=True),
        _when("claimed_until"),
        sa.PrimaryKeyConstraint("id", name="pk_logs_alerts"),
        sa.ForeignKeyConstraint(
            ["team_id"], ["projects.id"], name="fk_logs_alerts_team_id_projects", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["users.id"], name="fk_logs_alerts_created_by_id_users", ondelete="SET NULL"
        ),
    )
    op.create_index("ix_logs_alerts_team_id", "logs_alerts", ["team_id"])
    op.create_index("ix_logs_alerts_next_check_at", "logs_alerts", ["next_check_at"])

    op.create_table(
        "logs_alert_events",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("alert_id", sa.String(36), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        _when("created_at", nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("state_before", sa.String(20), nullable=False),
        sa.Column("state_after", sa.String(20), nullable=False),
        sa.Column("threshold_breached", sa.Boolean(), nullable=False),
        sa.Column("result_count", sa.Integer(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("query_duration_ms", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_logs_alert_events"),
        sa.ForeignKeyConstraint(
            ["alert_id"], ["logs_alerts.id"], name="fk_logs_alert_events_alert_id_logs_alerts", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_logs_alert_events_created_at", "logs_alert_events", ["created_at"])
    op.create_index("ix_logs_alert_events_alert_id_created_at", "logs_alert_events", ["alert_id", "created_at"])

    op.create_table(
        "logs_alert_destinations",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("alert_id", sa.String(36), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("destination_type", sa.String(16), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        _when("created_at", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_logs_alert_destinations"),
        sa.ForeignKeyConstraint(
            ["alert_id"],
            ["logs_alerts.id"],
            name="fk_logs_alert_destinations_alert_id_logs_alerts",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_logs_alert_destinations_alert_id", "logs_alert_destinations", ["alert_id"])


def downgrade() -> None:
    op.drop_table("logs_alert_destinations")
    op.drop_table("logs_alert_events")
    op.drop_table("logs_alerts")
