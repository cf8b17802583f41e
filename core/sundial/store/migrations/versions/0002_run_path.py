"""the run path writes less: no last_executed_at on jobs, partial indexes on runs

Jobs no longer carry ``last_executed_at``: it is read off their newest
started run, so workers never write job rows. The runs' event-id key and
finish-time index leave out the rows they do not concern (runs without an
event, open runs), so most inserts and updates of a run skip them.

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

_EVENT = sa.text("event_id IS NOT NULL")
_FINISHED = sa.text("finished_at IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table("sundial_jobs") as batch:
        batch.drop_column("last_executed_at")
    with op.batch_alter_table("sundial_runs") as batch:
        batch.drop_constraint("uq_sundial_runs_job_id_event_id", type_="unique")
        batch.drop_index("ix_sundial_runs_finished_at")
        batch.create_index(
            "ix_sundial_runs_job_id_event_id", ["job_id", "event_id"], unique=True,
            postgresql_where=_EVENT, sqlite_where=_EVENT,
        )  # fmt: skip
        batch.create_index(
            "ix_sundial_runs_finished_at", ["finished_at"], postgresql_where=_FINISHED, sqlite_where=_FINISHED
        )


def downgrade() -> None:
    with op.batch_alter_table("sundial_runs") as batch:
        batch.drop_index("ix_sundial_runs_finished_at")
        batch.drop_index("ix_sundial_runs_job_id_event_id")
        batch.create_index("ix_sundial_runs_finished_at", ["finished_at"])
        batch.create_unique_constraint("uq_sundial_runs_job_id_event_id", ["job_id", "event_id"])
    with op.batch_alter_table("sundial_jobs") as batch:
        batch.add_column(sa.Column("last_executed_at", sundial.store.tables.UTCDateTime(timezone=True), nullable=True))
