"""control: operators' pauses, scheduler heartbeats, signed events' nonces

Revision ID: 0004_control
Revises: 0003_plugins
Create Date: 2026-12-04 04:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import sundial.store.tables

revision = "0004_control"
down_revision = "0003_plugins"
branch_labels = None
depends_on = None

_TIME = sundial.store.tables.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sundial_pauses",
        sa.Column("scope", sa.String(length=80), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("paused_at", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("scope", name=op.f("pk_sundial_pauses")),
    )
    op.create_table(
        "sundial_schedulers",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("started_at", _TIME, nullable=False),
        sa.Column("last_seen_at", _TIME, nullable=False),
        sa.Column("backpressure", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_sundial_schedulers")),
    )
    op.create_table(
        "sundial_event_nonces",
        sa.Column("nonce", sa.String(length=128), nullable=False),
        sa.Column("expires_at", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("nonce", name=op.f("pk_sundial_event_nonces")),
    )
    with op.batch_alter_table("sundial_event_nonces", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sundial_event_nonces_expires_at"), ["expires_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sundial_event_nonces", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sundial_event_nonces_expires_at"))
    op.drop_table("sundial_event_nonces")
    op.drop_table("sundial_schedulers")
    op.drop_table("sundial_pauses")
