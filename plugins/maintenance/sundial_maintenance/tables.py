"""The maintenance plugin's tables."""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, Float, Integer, MetaData, String, Table, Text, UniqueConstraint

from sundial.store.tables import UTCDateTime

metadata = MetaData()

# finished runs moved out of the job store's history before it is pruned
run_archive = Table(
    "maintenance_run_archive",
    metadata,
    Column("run_id", BigInteger, primary_key=True),
    Column("job_id", String(128), nullable=False),
    Column("scheduled_at", UTCDateTime, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("error", Text),
    Column("duration_seconds", Float),
    Column("finished_at", UTCDateTime),
)

reports = Table(
    "maintenance_reports",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(16), nullable=False),  # daily, weekly
    Column("period_start", UTCDateTime, nullable=False),
    Column("period_end", UTCDateTime, nullable=False),
    Column("body", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("kind", "period_start"),
)

health = Table(
    "maintenance_health",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("taken_at", UTCDateTime, nullable=False, unique=True),
    Column("body", JSON, nullable=False),
)

backups = Table(
    "maintenance_backups",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("run_key", String(64), nullable=False, unique=True),
    Column("path", Text, nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Column("taken_at", UTCDateTime, nullable=False),
)

alerts = Table(
    "maintenance_alerts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("run_id", BigInteger, nullable=False, unique=True),
    Column("job_id", String(128), nullable=False),
    Column("error", Text),
    Column("at", UTCDateTime, nullable=False),
)
