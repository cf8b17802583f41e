"""The maintenance plugin: run-history archiving, daily and weekly reports, health snapshots,
weekly maintenance, store backups, and alerts on dead runs."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from marshmallow import Schema, fields, validate
from sqlalchemy import Engine, delete, func, select
from sqlalchemy.orm import Session

from sundial.handlers import HandlerRegistry, RunContext
from sundial.job import Job
from sundial.plugins import hookimpl
from sundial.plugins.domain import PluginTables, insert_ignoring
from sundial.plugins.jobs import cron_job
from sundial.run import Run, RunStatus
from sundial.store import tables as store_tables
from sundial_letters import letters, notifications

from .backup import backup
from .tables import alerts, backups, health, metadata, reports, run_archive

FINISHED = [s.value for s in (RunStatus.SUCCEEDED, RunStatus.DEAD, RunStatus.SKIPPED)]


class MaintenanceConfig(Schema):
    """``[plugins.maintenance]``."""

    keep_days = fields.Integer(load_default=30, validate=validate.Range(min=1))
    notifications_keep_days = fields.Integer(load_default=30, validate=validate.Range(min=1))
    health_keep_days = fields.Integer(load_default=90, validate=validate.Range(min=1))
    backup_dir = fields.String(load_default="backups")
    pg_dump = fields.String(load_default="pg_dump")


def archive_run_history(ctx: RunContext) -> int:
    """Copy runs finished more than ``keep_days`` ago to the archive, then prune them from the store."""
    cutoff = ctx.now() - timedelta(days=ctx.config["keep_days"])
    runs = store_tables.runs
    columns = [runs.c.id.label("run_id"), runs.c.job_id, runs.c.scheduled_at, runs.c.status, runs.c.attempt,
               runs.c.error, runs.c.duration_seconds, runs.c.finished_at]  # fmt: skip
    with ctx.store.engine.connect() as conn:
        old = [dict(r) for r in conn.execute(
            select(*columns).where(runs.c.status.in_(FINISHED), runs.c.finished_at < cutoff)
        ).mappings()]  # fmt: skip
    with ctx.session() as session:
        if old:
            session.execute(insert_ignoring(session.get_bind().dialect.name, run_archive, ["run_id"]), old)
    pruned = ctx.store.prune_history(cutoff)
    ctx.logger.info("archived %d runs, pruned %d finished before %s", len(old), pruned, cutoff.isoformat())
    return pruned


def _report(ctx: RunContext, kind: str, start: datetime, end: datetime) -> dict[str, Any]:
    """Letters, runs and failures by job in [start, end), stored once per kind and period."""
    runs, attempts = store_tables.runs, store_tables.run_attempts
    with ctx.store.engine.connect() as conn:
        run_counts = _pairs(conn.execute(
            select(runs.c.status, func.count()).where(runs.c.finished_at >= start, runs.c.finished_at < end)
            .group_by(runs.c.status)
        ))  # fmt: skip
        failures = _pairs(conn.execute(
            select(runs.c.job_id, func.count())
            .join(attempts, attempts.c.run_id == runs.c.id)
            .where(attempts.c.status == "failed", attempts.c.started_at >= start, attempts.c.started_at < end)
            .group_by(runs.c.job_id)
        ))  # fmt: skip
    with ctx.session() as session:
        written = session.execute(
            select(func.count()).select_from(letters).where(letters.c.created_at >= start, letters.c.created_at < end)
        ).scalar_one()
        delivered = session.execute(
            select(func.count()).select_from(letters)
            .where(letters.c.delivered_at >= start, letters.c.delivered_at < end)
        ).scalar_one()  # fmt: skip
        by_status = _pairs(session.execute(select(letters.c.status, func.count()).group_by(letters.c.status)))
        body = {
            "letters": {"written": written, "delivered": delivered, "by_status": by_status},
            "runs": run_counts,
            "failures_by_job": failures,
        }
        session.execute(
            insert_ignoring(session.get_bind().dialect.name, reports, ["kind", "period_start"]).values(
                kind=kind, period_start=start, period_end=end, body=body, created_at=ctx.now()
            )
        )
    ctx.logger.info("%s report for %s: %s", kind, start.date().isoformat(), body)
    return body


def _pairs(rows: Iterable[Any]) -> dict[Any, Any]:
    return {key: value for key, value in rows}


def _midnight(when: datetime) -> datetime:
    return when.replace(hour=0, minute=0, second=0, microsecond=0)


def daily_report(ctx: RunContext) -> dict[str, Any]:
    """The report of the day before the run's fire time (UTC)."""
    end = _midnight(ctx.scheduled_at)
    return _report(ctx, "daily", end - timedelta(days=1), end)


def weekly_report(ctx: RunContext) -> dict[str, Any]:
    """The report of the seven days before the run's fire time (UTC midnight)."""
    end = _midnight(ctx.scheduled_at)
    return _report(ctx, "weekly", end - timedelta(days=7), end)


def health_snapshot(ctx: RunContext) -> dict[str, Any]:
    """Record runs by status, outbox lag, dead and parked counts, and unsent notifications."""
    store = ctx.store
    with ctx.session() as session:
        unsent = session.execute(
            select(func.count()).select_from(notifications).where(notifications.c.sent_at.is_(None))
        ).scalar_one()
        body = {
            "runs": store.counts(),
            "outbox_lag_seconds": round(store.outbox_lag(), 3),
            "dead_runs": len(store.dead_runs(limit=100_000)),
            "parked_jobs": len(store.list_jobs(parked=True, limit=100_000)),
            "unsent_notifications": unsent,
        }
        session.execute(
            insert_ignoring(session.get_bind().dialect.name, health, ["taken_at"]).values(
                taken_at=ctx.scheduled_at, body=body
            )
        )
    ctx.logger.info("health: %s", body)
    return body


def weekly_maintenance(ctx: RunContext) -> None:
    """Drop ended rate-limit windows, sent notifications and health snapshots past their keeping time."""
    now, config = ctx.now(), ctx.config
    windows = ctx.store.prune_rate_limits(now)
    with ctx.session() as session:
        sent = session.execute(delete(notifications).where(
            notifications.c.sent_at < now - timedelta(days=config["notifications_keep_days"])
        )).rowcount  # fmt: skip
        snapshots = session.execute(
            delete(health).where(health.c.taken_at < now - timedelta(days=config["health_keep_days"]))
        ).rowcount
    ctx.logger.info("removed %d rate-limit windows, %d sent notifications, %d health snapshots",
                    windows, sent, snapshots)  # fmt: skip


def backup_store(ctx: RunContext) -> str:
    """Back up the job store into ``backup_dir`` (SQLite online backup, or pg_dump for PostgreSQL)."""
    stamp = ctx.scheduled_at.strftime("%Y%m%dT%H%M%SZ")
    suffix = "sqlite3" if ctx.store.dialect == "sqlite" else "dump"
    path = backup(ctx.store.url, Path(ctx.config["backup_dir"]) / f"sundial-{stamp}.{suffix}", ctx.config["pg_dump"])
    with ctx.session() as session:
        session.execute(
            insert_ignoring(session.get_bind().dialect.name, backups, ["run_key"]).values(
                run_key=ctx.idempotency_key, path=str(path), bytes=path.stat().st_size, taken_at=ctx.now()
            )
        )
    ctx.logger.info("backed up the store to %s (%d bytes)", path, path.stat().st_size)
    return str(path)


def record_alert(domain: Engine, job: Job, run: Run, status: str, error: str | None) -> None:
    """A dead run (retries exhausted) becomes an alert row, once per run."""
    if status != RunStatus.DEAD.value:
        return
    with Session(domain) as session, session.begin():
        session.execute(
            insert_ignoring(domain.dialect.name, alerts, ["run_id"]).values(
                run_id=run.id, job_id=job.id, error=error, at=run.updated_at or run.scheduled_at
            )
        )


class MaintenancePlugin:
    """Registers the maintenance handlers, tables, default jobs and the dead-run alert."""

    @hookimpl
    def sundial_config_schema(self) -> Schema:
        return MaintenanceConfig()

    @hookimpl
    def sundial_register_handlers(self, registry: HandlerRegistry) -> None:
        for handler in (archive_run_history, daily_report, weekly_report, health_snapshot, weekly_maintenance,
                        backup_store):  # fmt: skip
            registry.add(f"maintenance.{handler.__name__}", handler)

    @hookimpl
    def sundial_tables(self) -> PluginTables:
        return PluginTables(metadata, version=1)

    @hookimpl
    def sundial_default_jobs(self) -> list[dict[str, Any]]:
        return [
            cron_job(
                "maintenance.archive_run_history", "Archive and prune run history", "30 3 * * *", timeout_seconds=1200
            ),  # fmt: skip
            cron_job("maintenance.daily_report", "Daily report", "0 1 * * *"),
            cron_job("maintenance.weekly_report", "Weekly report", "0 4 * * 1"),
            cron_job("maintenance.health_snapshot", "System health snapshot", "0 */6 * * *"),
            cron_job("maintenance.weekly_maintenance", "Weekly maintenance", "0 3 * * 0"),
            cron_job("maintenance.backup_store", "Back up the job store", "0 4 * * *", timeout_seconds=1200),
        ]

    @hookimpl
    def sundial_run_finished(self, job: Job, run: Run, status: str, error: str | None, domain: Engine) -> None:
        record_alert(domain, job, run, status, error)
