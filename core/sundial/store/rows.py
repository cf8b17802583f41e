"""Rows to Sundial's data classes and back, and the scheduler's plans for the store."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from ..job import Job, RetryPolicy
from ..run import Run, RunStatus
from ..triggers import TriggerSpec
from . import tables as t

# when a job last ran is read off its newest started run, not kept on the job row:
# workers then never write job rows, which the scheduler locks and updates
_LAST_EXECUTED = (
    select(t.runs.c.started_at)
    .where(t.runs.c.job_id == t.jobs.c.id, t.runs.c.started_at.is_not(None))
    .order_by(t.runs.c.scheduled_at.desc())
    .limit(1)
    .scalar_subquery()
    .label("last_executed_at")
)
#: the job columns with when each last ran: what reading a job returns (see ``job_from_row``)
JOBS_SHOWN = select(t.jobs, _LAST_EXECUTED)

_JOB_TRIGGER_COLUMNS = (
    "type", "cron_expression", "interval_seconds", "run_at",
    "trigger_event", "timezone", "starts_at", "ends_at",
)  # fmt: skip


@dataclass
class NewRun:
    """A run, or a skip record, that the scheduler wants stored for one job."""

    scheduled_at: datetime
    status: RunStatus = RunStatus.PENDING
    reason: str | None = None
    last_fire_at: datetime | None = None
    fire_count: int = 1
    available_at: datetime | None = None
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass
class FirePlan:
    """What the scheduler decided for one due job: runs to insert and where to go next."""

    runs: list[NewRun]
    next_run_at: datetime | None
    parked_reason: str | None = None


@dataclass(frozen=True)
class Outcome:
    """The result of one attempt, as the worker reports it."""

    ok: bool
    error: str | None = None
    duration_seconds: float = 0.0
    logs: Sequence[tuple[datetime, str, str]] = ()
    # seconds to wait before the next attempt; None means "no retry" (dead when failed)
    retry_in: float | None = None
    # the wait is longer than the broker holds messages: the run waits in the outbox (pending) instead
    retry_from_outbox: bool = False
    # when the handler started (the store's clock); a claimed run may wait for a thread, or for its time
    started_at: datetime | None = None


def job_row(job: Job) -> dict[str, Any]:
    trig = job.trigger
    policy = job.retry_policy
    return {
        "id": job.id,
        "name": job.name,
        "handler": job.handler,
        "type": trig.type,
        "cron_expression": trig.cron_expression,
        "interval_seconds": trig.interval_seconds,
        "run_at": trig.run_at,
        "trigger_event": trig.trigger_event,
        "timezone": trig.timezone,
        "starts_at": trig.starts_at,
        "ends_at": trig.ends_at,
        "payload_template": job.payload_template,
        "enabled": job.enabled,
        "paused": job.paused,
        "parked_reason": job.parked_reason,
        "active": job.active,
        "next_run_at": job.next_run_at,
        "max_retries": policy.max_retries,
        "backoff": policy.backoff,
        "retry_delay_seconds": policy.delay_seconds,
        "retry_max_delay_seconds": policy.max_delay_seconds,
        "misfire_grace_seconds": job.misfire_grace_seconds,
        "coalesce": job.coalesce,
        "max_instances": job.max_instances,
        "overlap": job.overlap,
        "timeout_seconds": job.timeout_seconds,
        "jitter_seconds": job.jitter_seconds,
        "queue": job.queue,
        "priority": job.priority,
        "version": job.version,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "origin": job.origin,
        "defaults_hash": job.defaults_hash,
        "operator_fields": sorted(job.operator_fields),
    }


def job_from_row(row: Any) -> Job:
    trigger = TriggerSpec(**{c: row[c] for c in _JOB_TRIGGER_COLUMNS})
    return Job(
        id=row["id"],
        name=row["name"],
        handler=row["handler"],
        trigger=trigger,
        payload_template=row["payload_template"] or {},
        enabled=row["enabled"],
        paused=row["paused"],
        retry_policy=RetryPolicy(
            max_retries=row["max_retries"],
            backoff=row["backoff"],
            delay_seconds=row["retry_delay_seconds"],
            max_delay_seconds=row["retry_max_delay_seconds"],
        ),
        misfire_grace_seconds=row["misfire_grace_seconds"],
        coalesce=row["coalesce"],
        max_instances=row["max_instances"],
        overlap=row["overlap"],
        timeout_seconds=row["timeout_seconds"],
        jitter_seconds=row["jitter_seconds"],
        queue=row["queue"],
        priority=row["priority"],
        parked_reason=row["parked_reason"],
        next_run_at=row["next_run_at"],
        # "in" first: a missing key costs a RowMapping an exception
        last_executed_at=row["last_executed_at"] if "last_executed_at" in row else None,
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        origin=row["origin"],
        defaults_hash=row["defaults_hash"],
        operator_fields=frozenset(row["operator_fields"] or ()),
    )


def new_run_row(job: Job, new: NewRun, now: datetime) -> dict[str, Any]:
    return {
        "job_id": job.id,
        "scheduled_at": new.scheduled_at,
        "last_fire_at": new.last_fire_at,
        "fire_count": new.fire_count,
        "status": new.status.value,
        "reason": new.reason,
        "event_id": None,
        "payload": new.payload,
        "queue": job.queue,
        "priority": job.priority,
        "attempt": 0,
        "failures": 0,
        "lost": 0,
        "fence": 0,
        "available_at": new.available_at or new.scheduled_at,
        "created_at": now,
        "updated_at": now,
        "finished_at": now if new.status is RunStatus.SKIPPED else None,
    }


_RUN_FIELDS = frozenset(Run.__dataclass_fields__)


def run_from_row(row: Any) -> Run:
    """A ``Run`` from a result row of any subset of the runs table's columns (plus a joined ``handler``)."""
    values = {name: value for name, value in row.items() if name in _RUN_FIELDS}
    values["status"] = RunStatus(values["status"])
    values["payload"] = values.get("payload") or {}
    return Run(**values)
