"""jobs no longer carry last_executed_at: it is read off their newest started run

Revision ID: 0002_run_path
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import sundial.store.tables

revision = "0002_run_path"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sundial_jobs") as batch:
        batch.drop_column("last_executed_at")


def downgrade() -> None:
    with op.batch_alter_table("sundial_jobs") as batch:
        batch.add_column(sa.Column("last_executed_at", sundial.store.tables.UTCDateTime(timezone=True), nullable=True))
