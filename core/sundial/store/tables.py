"""The store's schema, shared by the SQLAlchemy store and the Alembic migrations.

Every time is stored in UTC. The schema is written with SQLAlchemy Core so the
same tables serve PostgreSQL (production) and SQLite (the embedded default).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on every backend.

    SQLite has no time zone type, so values are stored there as naive UTC in
    one fixed text format, which keeps comparisons in SQL correct. The
    store's PostgreSQL sessions run in UTC (``store.base``), so psycopg
    returns UTC times already, and reading a row converts none of them.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; Sundial stores aware UTC times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        if dialect.name == "postgresql":
            return None
        return super().result_processor(dialect, coltype)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# BIGINT keys on PostgreSQL; SQLite only auto-increments an INTEGER PRIMARY KEY.
RowId = BigInteger().with_variant(Integer(), "sqlite")
Json: Any = JSON().with_variant(JSONB(), "postgresql")

jobs = Table(
    "sundial_jobs",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("handler", String(200), nullable=False),
    # the trigger, as its spec: never a pickle
    Column("type", String(16), nullable=False),
    Column("cron_expression", String(200)),
    Column("interval_seconds", Float),
    Column("run_at", UTCDateTime),
    Column("trigger_event", String(128)),
    Column("timezone", String(64), nullable=False, default="UTC"),
    Column("starts_at", UTCDateTime),
    Column("ends_at", UTCDateTime),
    Column("payload_template", Json, nullable=False, default=dict),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("paused", Boolean, nullable=False, default=False),
    # why the scheduler set this job aside (unknown handler, bad trigger); NULL when schedulable
    Column("parked_reason", Text),
    # derived: enabled and not paused and not parked. Kept as a column so the
    # due-job index can lead with it and the due query stays one index range.
    Column("active", Boolean, nullable=False, default=True),
    Column("next_run_at", UTCDateTime),
    Column("max_retries", Integer, nullable=False, default=3),
    Column("backoff", String(16), nullable=False, default="exponential"),
    Column("retry_delay_seconds", Float, nullable=False, default=10.0),
    Column("retry_max_delay_seconds", Float, nullable=False, default=3600.0),
    Column("misfire_grace_seconds", Float),
    Column("coalesce", Boolean, nullable=False, default=True),
    Column("max_instances", Integer, nullable=False, default=1),
    Column("overlap", String(8), nullable=False, default="skip"),
    Column("timeout_seconds", Float, nullable=False, default=300.0),
    Column("jitter_seconds", Float, nullable=False, default=0.0),
    Column("queue", String(64), nullable=False, default="default"),
    Column("priority", Integer, nullable=False, default=0),
    Column("version", Integer, nullable=False, default=1),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    # the plugin that declared this job as a default (NULL: an operator created it), the hash of
    # the default it was last set from, and the document keys an operator has changed since:
    # a new plugin version updates the job but never those keys
    Column("origin", String(128)),
    Column("defaults_hash", String(64)),
    Column("operator_fields", Json, nullable=False, default=list),
    Index(None, "active", "next_run_at"),
    Index(None, "trigger_event"),
)

runs = Table(
    "sundial_runs",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("job_id", String(128), ForeignKey("sundial_jobs.id", ondelete="CASCADE"), nullable=False),
    # the fire time this run answers; for a skip record, the first fire time it covers
    Column("scheduled_at", UTCDateTime, nullable=False),
    # a skip record may stand for a range of fire times: [scheduled_at, last_fire_at], fire_count of them
    Column("last_fire_at", UTCDateTime),
    Column("fire_count", Integer, nullable=False, default=1),
    Column("status", String(16), nullable=False),
    Column("reason", Text),
    Column("event_id", String(128)),
    Column("payload", Json, nullable=False, default=dict),
    Column("queue", String(64), nullable=False),
    Column("priority", Integer, nullable=False, default=0),
    Column("attempt", Integer, nullable=False, default=0),
    Column("failures", Integer, nullable=False, default=0),
    Column("lost", Integer, nullable=False, default=0),
    # fencing token: raised by every claim; a result is written only where it still matches
    Column("fence", Integer, nullable=False, default=0),
    Column("available_at", UTCDateTime, nullable=False),
    Column("lease_owner", String(128)),
    Column("lease_expires_at", UTCDateTime),
    Column("worker", String(128)),
    Column("error", Text),
    Column("duration_seconds", Float),
    Column("created_at", UTCDateTime, nullable=False),
    Column("queued_at", UTCDateTime),
    Column("started_at", UTCDateTime),
    Column("finished_at", UTCDateTime),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("job_id", "scheduled_at"),
    # an event fires a job once; only event runs carry an event id, so only they are indexed
    Index(
        None,
        "job_id",
        "event_id",
        unique=True,
        postgresql_where=text("event_id IS NOT NULL"),
        sqlite_where=text("event_id IS NOT NULL"),
    ),  # fmt: skip
    # the embedded broker's and the relay's queries: open runs by status and due time
    Index(None, "status", "available_at"),
    # history pruning; open runs (no finish time) stay out of it, so their updates skip it
    Index(
        None,
        "finished_at",
        postgresql_where=text("finished_at IS NOT NULL"),
        sqlite_where=text("finished_at IS NOT NULL"),
    ),  # fmt: skip
)

run_attempts = Table(
    "sundial_run_attempts",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("run_id", RowId, ForeignKey("sundial_runs.id", ondelete="CASCADE"), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("fence", Integer, nullable=False),
    Column("worker", String(128), nullable=False),
    Column("status", String(16), nullable=False),
    Column("error", Text),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Column("duration_seconds", Float),
    UniqueConstraint("run_id", "fence"),
)

run_logs = Table(
    "sundial_run_logs",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("run_id", RowId, ForeignKey("sundial_runs.id", ondelete="CASCADE"), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("level", String(8), nullable=False),
    Column("message", Text, nullable=False),
    Index(None, "run_id"),
)

plugin_schemas = Table(
    "sundial_plugin_schemas",
    metadata,
    # which version of its tables each plugin's domain schema is at
    Column("plugin", String(128), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

rate_limits = Table(
    "sundial_rate_limits",
    metadata,
    # one fixed window per key: ``count`` uses of the key in the window that ends at ``window_ends_at``
    Column("key", String(255), primary_key=True),
    Column("count", Integer, nullable=False),
    Column("window_ends_at", UTCDateTime, nullable=False),
    Index(None, "window_ends_at"),
)

pauses = Table(
    "sundial_pauses",
    metadata,
    # an operator's pause: "*" stops every queue, any other scope is one queue's name. A paused
    # queue's jobs are not scheduled and its pending runs are not dispatched; a row is a pause.
    Column("scope", String(80), primary_key=True),
    Column("reason", Text),
    Column("paused_at", UTCDateTime, nullable=False),
)

schedulers = Table(
    "sundial_schedulers",
    metadata,
    # each scheduler process notes itself here every few seconds: schedulers cooperate on the
    # store (none leads), so this is how an operator sees which are alive
    Column("name", String(128), primary_key=True),
    Column("started_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    # its relay's last pass found a work queue full
    Column("backpressure", Boolean, nullable=False, default=False),
)

event_nonces = Table(
    "sundial_event_nonces",
    metadata,
    # signed events already accepted, kept for their replay window (when Redis is not configured)
    Column("nonce", String(128), primary_key=True),
    Column("expires_at", UTCDateTime, nullable=False),
    Index(None, "expires_at"),
)
