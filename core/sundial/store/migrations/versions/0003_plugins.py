"""plugins: default-job origin and operator edits, plugin schema versions, rate limits

Revision ID: 0003_plugins
Revises: 0002_run_path
Create Date: 2026-12-03 20:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import sundial.store.tables

revision = "0003_plugins"
down_revision = "0002_run_path"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("sundial_jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("origin", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("defaults_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("operator_fields", _JSON, nullable=False, server_default="[]"))
    op.create_table(
        "sundial_plugin_schemas",
        sa.Column("plugin", sa.String(length=128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sundial.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("plugin", name=op.f("pk_sundial_plugin_schemas")),
    )
    op.create_table(
        "sundial_rate_limits",
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("window_ends_at", sundial.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_sundial_rate_limits")),
    )
    with op.batch_alter_table("sundial_rate_limits", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sundial_rate_limits_window_ends_at"), ["window_ends_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sundial_rate_limits", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sundial_rate_limits_window_ends_at"))
    op.drop_table("sundial_rate_limits")
    op.drop_table("sundial_plugin_schemas")
    with op.batch_alter_table("sundial_jobs", schema=None) as batch_op:
        batch_op.drop_column("operator_fields")
        batch_op.drop_column("defaults_hash")
        batch_op.drop_column("origin")
