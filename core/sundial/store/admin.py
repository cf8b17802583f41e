"""What the control plane asks of the store: pauses, scheduler heartbeats, event nonces, filtered pages, metrics.

Every query here is bounded (a page, an index range, a GROUP BY over open
runs) so that operators asking questions cannot slow the run path down.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    case,
    delete,
    exists,
    func,
    or_,
    select,
    tuple_,
    update,
)

from ..job import Job
from ..run import OPEN_STATUSES, Run, RunStatus
from . import tables as t
from .base import StoreBase
from .rows import JOBS_SHOWN, job_from_row, run_from_row

#: the scope of a pause that stops every queue
EVERY_QUEUE = "*"
JOB_STATES = ("enabled", "paused", "parked", "disabled")
_OPEN = [s.value for s in OPEN_STATUSES]


def dispatch_allowed(queue: Any) -> ColumnElement[bool]:
    """SQL: true unless ``queue`` (a column) or every queue is paused.

    The scheduler, the relay and the embedded broker all filter with this one
    predicate, so a pause means the same to each of them.
    """
    # uncorrelated on purpose: the planner reads the (tiny) pause table once per statement, as a
    # one-time filter and a hashed set, instead of probing it for every candidate run
    return and_(~exists().where(t.pauses.c.scope == EVERY_QUEUE), queue.not_in(select(t.pauses.c.scope)))


# a purged dead run keeps its history but leaves the dead-letter list
PURGED = "purged"


def on_dead_letter_list() -> ColumnElement[bool]:
    """SQL: the run is dead and not purged, that is on the dead-letter list."""
    c = t.runs.c
    return and_(c.status == RunStatus.DEAD.value, or_(c.reason.is_(None), c.reason != PURGED))


@dataclass(frozen=True)
class Pause:
    """An operator's pause: of one queue, or of every queue (``queue`` None)."""

    queue: str | None
    reason: str | None
    paused_at: datetime


@dataclass(frozen=True)
class SchedulerSeen:
    """A scheduler process, as its last heartbeat left it."""

    name: str
    started_at: datetime
    last_seen_at: datetime
    backpressure: bool


@dataclass(frozen=True)
class JobStats:
    """A job's attempt history in numbers (the spec's TaskMetrics, less what the job row holds)."""

    successes: int = 0
    failures: int = 0
    avg_seconds: float | None = None
    last_seconds: float | None = None
    last_run: datetime | None = None
    last_error: str | None = None


def _state(state: str) -> ColumnElement[bool]:
    c = t.jobs.c
    unparked = c.parked_reason.is_(None)
    return {
        "parked": c.parked_reason.is_not(None),
        "paused": and_(unparked, c.paused.is_(True)),
        "disabled": and_(unparked, c.paused.is_(False), c.enabled.is_(False)),
        "enabled": and_(unparked, c.paused.is_(False), c.enabled.is_(True)),
    }[state]


class AdminQueries(StoreBase):
    """The control plane's reads and its few writes."""

    # -- pauses ----------------------------------------------------------------

    def pause_dispatch(self, queue: str | None, reason: str | None = None, *, now: datetime | None = None) -> None:
        """Pause one queue, or every queue; pausing again keeps the first time and takes the new reason."""
        now = now or self.now()
        scope = queue or EVERY_QUEUE
        with self._write() as conn:
            changed = conn.execute(update(t.pauses).where(t.pauses.c.scope == scope).values(reason=reason)).rowcount
            if not changed:
                conn.execute(
                    self._insert_ignoring(t.pauses, ("scope",)).values(scope=scope, reason=reason, paused_at=now)
                )

    def resume_dispatch(self, queue: str | None) -> bool:
        """Lift the pause of one queue, or the global one; False when there was none."""
        with self._write() as conn:
            return bool(conn.execute(delete(t.pauses).where(t.pauses.c.scope == (queue or EVERY_QUEUE))).rowcount)

    def pauses(self) -> list[Pause]:
        """Every pause in force, the global one first."""
        with self._read() as conn:
            rows = conn.execute(select(t.pauses).order_by(t.pauses.c.scope)).mappings().all()
        return [Pause(None if r["scope"] == EVERY_QUEUE else r["scope"], r["reason"], r["paused_at"]) for r in rows]

    # -- schedulers --------------------------------------------------------------

    def heartbeat(self, name: str, started_at: datetime, *, backpressure: bool, now: datetime | None = None) -> None:
        """Note that scheduler ``name`` is alive; rows of schedulers silent for a day are removed."""
        now = now or self.now()
        with self._write() as conn:
            row = t.schedulers.c.name == name
            values = {"last_seen_at": now, "backpressure": backpressure, "started_at": started_at}
            if not conn.execute(update(t.schedulers).where(row).values(**values)).rowcount:
                conn.execute(self._insert_ignoring(t.schedulers, ("name",)).values(name=name, **values))
            conn.execute(delete(t.schedulers).where(t.schedulers.c.last_seen_at < now - timedelta(days=1)))

    def schedulers(self, seen_since: datetime) -> list[SchedulerSeen]:
        """Schedulers whose last heartbeat is after ``seen_since``, by name."""
        with self._read() as conn:
            rows = conn.execute(
                select(t.schedulers).where(t.schedulers.c.last_seen_at > seen_since).order_by(t.schedulers.c.name)
            ).mappings()
            return [SchedulerSeen(r["name"], r["started_at"], r["last_seen_at"], r["backpressure"]) for r in rows]

    # -- signed events -------------------------------------------------------------

    def use_nonce(self, nonce: str, expires_at: datetime, *, now: datetime | None = None) -> bool:
        """Record ``nonce`` until ``expires_at``; False when it is recorded already (a replay)."""
        now = now or self.now()
        with self._write() as conn:
            conn.execute(delete(t.event_nonces).where(t.event_nonces.c.expires_at <= now))
            statement = self._insert_ignoring(t.event_nonces, ("nonce",)).values(nonce=nonce, expires_at=expires_at)
            return bool(conn.execute(statement).rowcount)

    # -- jobs ----------------------------------------------------------------------

    def find_jobs(
        self,
        *,
        plugin: str | None = None,
        state: str | None = None,
        handler: str | None = None,
        queue: str | None = None,
        after_id: str | None = None,
        limit: int = 100,
    ) -> list[Job]:
        """Jobs by id after ``after_id``; ``plugin`` matches its handlers' jobs and the defaults it declared."""
        c = t.jobs.c
        query = JOBS_SHOWN.order_by(c.id).limit(limit)
        if plugin:
            query = query.where(or_(c.handler.startswith(plugin + ".", autoescape=True), c.origin == plugin))
        if state:
            query = query.where(_state(state))
        if handler:
            query = query.where(c.handler == handler)
        if queue:
            query = query.where(c.queue == queue)
        if after_id is not None:
            query = query.where(c.id > after_id)
        with self._read() as conn:
            return [job_from_row(r) for r in conn.execute(query).mappings()]

    def job_states(self) -> dict[str, int]:
        """How many jobs are in each state."""
        with self._read() as conn:
            return {
                state: int(conn.execute(select(func.count()).select_from(t.jobs).where(_state(state))).scalar_one())
                for state in JOB_STATES
            }

    def next_runs(self, limit: int) -> list[tuple[str, datetime]]:
        """The active jobs due soonest, with their next fire time (one index range)."""
        c = t.jobs.c
        with self._read() as conn:
            rows = conn.execute(
                select(c.id, c.next_run_at)
                .where(c.active.is_(True), c.next_run_at.is_not(None))
                .order_by(c.next_run_at)
                .limit(limit)
            ).all()
        return [(job_id, at) for job_id, at in rows]

    # -- runs ------------------------------------------------------------------------

    def run_page(
        self,
        *,
        job_id: str | None = None,
        statuses: Sequence[RunStatus] = (),
        start: datetime | None = None,
        end: datetime | None = None,
        before: tuple[datetime, int] | None = None,
        limit: int = 100,
    ) -> list[Run]:
        """Runs with fire times in [start, end), newest first, after the (fire time, id) ``before``."""
        c = t.runs.c
        query = select(t.runs).order_by(c.scheduled_at.desc(), c.id.desc()).limit(limit)
        if job_id:
            query = query.where(c.job_id == job_id)
        if statuses:
            query = query.where(c.status.in_([s.value for s in statuses]))
        if start is not None:
            query = query.where(c.scheduled_at >= start)
        if end is not None:
            query = query.where(c.scheduled_at < end)
        if before is not None:
            query = query.where(tuple_(c.scheduled_at, c.id) < tuple_(*before))
        with self._read() as conn:
            return [run_from_row(r) for r in conn.execute(query).mappings()]

    def runs_changed(
        self, since: datetime, *, job_id: str | None = None, statuses: Sequence[RunStatus] = (), limit: int = 1000
    ) -> list[Run]:
        """Runs changed after ``since``, oldest change first.

        Looked up as open runs (the status index) plus runs finished since
        (the finished-time index), so watching costs no index of its own on
        the run path's busiest column.
        """
        c = t.runs.c
        changed = or_(
            and_(c.status.in_(_OPEN), c.updated_at > since),
            and_(c.finished_at.is_not(None), c.finished_at > since - timedelta(seconds=1), c.updated_at > since),
        )
        query = select(t.runs).where(changed).order_by(c.updated_at, c.id).limit(limit)
        if job_id:
            query = query.where(c.job_id == job_id)
        if statuses:
            query = query.where(c.status.in_([s.value for s in statuses]))
        with self._read() as conn:
            return [run_from_row(r) for r in conn.execute(query).mappings()]

    def runs_covering(self, job_id: str, start: datetime, end: datetime, *, limit: int = 10_000) -> list[Run]:
        """The runs and skip records of ``job_id`` that cover any fire time in [start, end]."""
        c = t.runs.c
        with self._read() as conn:
            rows = conn.execute(
                select(t.runs)
                .where(
                    c.job_id == job_id, c.scheduled_at <= end, func.coalesce(c.last_fire_at, c.scheduled_at) >= start
                )
                .order_by(c.scheduled_at)
                .limit(limit)
            ).mappings()
            return [run_from_row(r) for r in rows]

    # -- metrics -----------------------------------------------------------------------

    def job_stats(self, job_ids: Sequence[str]) -> dict[str, JobStats]:
        """Attempt counts, durations, last run and last error of each job, from the run history kept."""
        if not job_ids:
            return {}
        a, r = t.run_attempts.c, t.runs.c
        joined = t.run_attempts.join(t.runs, r.id == a.run_id)
        mine = r.job_id.in_(list(job_ids))
        totals = (
            select(
                r.job_id,
                func.sum(case((a.status == "succeeded", 1), else_=0)),
                func.sum(case((a.status.in_(["failed", "lost"]), 1), else_=0)),
                func.avg(a.duration_seconds),
                func.max(a.started_at),
            )
            .select_from(joined)
            .where(mine)
            .group_by(r.job_id)
        )
        newest = func.row_number().over(partition_by=r.job_id, order_by=a.id.desc()).label("n")
        last = select(r.job_id, a.duration_seconds, newest).select_from(joined).where(mine).subquery()
        erred = select(r.job_id, a.error, newest).select_from(joined).where(mine, a.error.is_not(None)).subquery()
        with self._read() as conn:
            stats = {
                job: {"successes": int(ok or 0), "failures": int(bad or 0), "avg_seconds": avg, "last_run": at}
                for job, ok, bad, avg, at in conn.execute(totals)
            }
            for job, seconds, _ in conn.execute(select(last).where(last.c.n == 1)):
                stats.setdefault(job, {})["last_seconds"] = seconds
            for job, error, _ in conn.execute(select(erred).where(erred.c.n == 1)):
                stats.setdefault(job, {})["last_error"] = error
        return {job: JobStats(**values) for job, values in stats.items()}

    def queue_depths(self) -> dict[str, dict[str, int]]:
        """Open runs by queue and status."""
        c = t.runs.c
        depths: dict[str, dict[str, int]] = {}
        with self._read() as conn:
            rows = conn.execute(
                select(c.queue, c.status, func.count()).where(c.status.in_(_OPEN)).group_by(c.queue, c.status)
            )
            for queue, status, n in rows:
                depths.setdefault(queue, {})[status] = int(n)
        return depths

    def pending_due(self) -> int:
        """Pending runs whose time has come: the relay's backlog."""
        c = t.runs.c
        with self._read() as conn:
            return int(
                conn.execute(
                    select(func.count()).where(c.status == RunStatus.PENDING.value, c.available_at <= self.now())
                ).scalar_one()
            )

    def dead_count(self) -> int:
        """Dead runs on the dead-letter list (purged ones are off it)."""
        return sum(self.dead_by_queue().values())

    def dead_by_queue(self) -> dict[str, int]:
        """Dead runs on the dead-letter list, by queue."""
        c = t.runs.c
        with self._read() as conn:
            rows = conn.execute(select(c.queue, func.count()).where(on_dead_letter_list()).group_by(c.queue))
            return {queue: int(n) for queue, n in rows}
