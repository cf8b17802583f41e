"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-12-03 17:40:50.302898
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import sundial.store.tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sundial_jobs",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("handler", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("cron_expression", sa.String(length=200), nullable=True),
        sa.Column("interval_seconds", sa.Float(), nullable=True),
        sa.Column("run_at", sundial.store.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("trigger_event", sa.String(length=128), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("starts_at", sundial.store.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ends_at", sundial.store.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "payload_template",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("parked_reason", sa.Text(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("next_run_at", sundial.store.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_executed_at", sundial.store.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("max_retries", sa.Integer(), nullable=False),
        sa.Column("backoff", sa.String(length=16), nullable=False),
        sa.Column("retry_delay_seconds", sa.Float(), nullable=False),
        sa.Column("retry_max_delay_seconds", sa.Float(), nullable=False),
        sa.Column("misfire_grace_seconds", sa.Float(), nullable=True),
        sa.Column("coalesce", sa.Boolean(), nullable=False),
        sa.Column("max_instances", sa.Integer(), nullable=False),
        sa.Column("overlap", sa.String(length=8), nullable=False),
        sa.Column("timeout_seconds", sa.Float(), nullable=False),
        sa.Column("jitter_seconds", sa.Float(), nullable=False),
        sa.Column("queue", sa.String(length=64), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sundial.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sundial.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sundial_jobs")),
    )
    with op.batch_alter_table("sundial_jobs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sundial_jobs_active_next_run_at"), ["active", "next_run_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_sundial_jobs_trigger_event"), ["trigger_event"], unique=False)

    op.create_table(
        "sundial_runs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.String(length=128), nullable=False),
        sa.Column("scheduled_at", sundial.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_fire_at", sundial.store.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("fire_count", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("event_id", sa.String(length=128), nullable=True),
        sa.Column(
            "payload", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("queue", sa.String(length=64), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("lost", sa.Integer(), nullable=False),
        sa.Column("fence", sa.Integer(), nullable=False),
        sa.Column("available_at", sundial.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("lease_owner", sa.String(length=128), nullable=True),
        sa.Column("lease_expires_at", sundial.store.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("worker", sa.String(length=128), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_seconds", sa.Float(), nullable=True),
        sa.Column("created_at", sundial.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("queued_at", sundial.store.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("started_at", sundial.store.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sundial.store.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sundial.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["sundial_jobs.id"], name=op.f("fk_sundial_runs_job_id"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sundial_runs")),
        sa.UniqueConstraint("job_id", "event_id", name=op.f("uq_sundial_runs_job_id_event_id")),
        sa.UniqueConstraint("job_id", "scheduled_at", name=op.f("uq_sundial_runs_job_id_scheduled_at")),
    )
    with op.batch_alter_table("sundial_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sundial_runs_finished_at"), ["finished_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_sundial_runs_status_available_at"), ["status", "available_at"], unique=False
        )

    op.create_table(
        "sundial_run_attempts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("fence", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", sundial.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sundial.store.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("duration_seconds", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"], ["sundial_runs.id"], name=op.f("fk_sundial_run_attempts_run_id"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sundial_run_attempts")),
        sa.UniqueConstraint("run_id", "fence", name=op.f("uq_sundial_run_attempts_run_id_fence")),
    )
    op.create_table(
        "sundial_run_logs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("at", sundial.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("level", sa.String(length=8), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["sundial_runs.id"], name=op.f("fk_sundial_run_logs_run_id"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sundial_run_logs")),
    )
    with op.batch_alter_table("sundial_run_logs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sundial_run_logs_run_id"), ["run_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sundial_run_logs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sundial_run_logs_run_id"))

    op.drop_table("sundial_run_logs")
    op.drop_table("sundial_run_attempts")
    with op.batch_alter_table("sundial_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sundial_runs_status_available_at"))
        batch_op.drop_index(batch_op.f("ix_sundial_runs_finished_at"))

    op.drop_table("sundial_runs")
    with op.batch_alter_table("sundial_jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sundial_jobs_trigger_event"))
        batch_op.drop_index(batch_op.f("ix_sundial_jobs_active_next_run_at"))

    op.drop_table("sundial_jobs")
