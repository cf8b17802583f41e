"""Runs: one row per fire time, the outbox and the history in one."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class RunStatus(enum.StrEnum):
    """Where a run is in its life.

    pending -> queued -> running -> succeeded
                            |-> retrying -> queued ... (failure, retries left)
                            |-> dead (failures exhausted)
    skipped: a fire time that did not run; ``reason`` says why.
    failed is the status of a single attempt in the attempt history.
    """

    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    RETRYING = "retrying"
    DEAD = "dead"
    SKIPPED = "skipped"

    @property
    def finished(self) -> bool:
        return self in (RunStatus.SUCCEEDED, RunStatus.DEAD, RunStatus.SKIPPED)


class SkipReason(enum.StrEnum):
    """Why a fire time left a record instead of a run."""

    MISSED = "missed"  # later than the job's misfire grace time
    COALESCED = "coalesced"  # folded into a later run of the same job
    BUSY = "busy"  # the job was running and its overlap policy is skip
    PAUSED = "paused"  # the job was paused at that time
    DISABLED = "disabled"  # the job was disabled at that time
    PARKED = "parked"  # the job was parked (for example, its handler was unknown)


OPEN_STATUSES = (RunStatus.PENDING, RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.RETRYING)


@dataclass(frozen=True)
class Run:
    """A stored run (or skip record)."""

    id: int
    job_id: str
    scheduled_at: datetime
    status: RunStatus
    queue: str = "default"
    priority: int = 0
    payload: dict[str, Any] = field(default_factory=dict)
    attempt: int = 0
    failures: int = 0
    lost: int = 0
    fence: int = 0
    available_at: datetime | None = None
    reason: str | None = None
    last_fire_at: datetime | None = None
    fire_count: int = 1
    event_id: str | None = None
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    worker: str | None = None
    error: str | None = None
    duration_seconds: float | None = None
    created_at: datetime | None = None
    queued_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime | None = None
    #: the job's handler, where the query that read the run joined it (the outbox does, for message headers)
    handler: str | None = None


@dataclass(frozen=True)
class RunLog:
    """One line a handler wrote during a run."""

    run_id: int
    attempt: int
    at: datetime
    level: str
    message: str


@dataclass(frozen=True)
class Attempt:
    """One execution of a run by one worker, in the run's history."""

    run_id: int
    attempt: int
    fence: int
    worker: str
    status: str
    started_at: datetime
    error: str | None = None
    finished_at: datetime | None = None
    duration_seconds: float | None = None
