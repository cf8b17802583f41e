"""The job store on SQLAlchemy: PostgreSQL in production, SQLite embedded.

Every write on the run path is one short transaction guarded so that it can
be repeated safely: a lost COMMIT on PostgreSQL leaves the caller unsure
whether it happened, and the next attempt must not do it twice.

SQLite is put in WAL mode with a busy timeout, and its write transactions
start with ``BEGIN IMMEDIATE`` (SQLAlchemy's documented recipe for taking
over pysqlite's transaction handling), which serialises writers and makes a
read-then-write claim atomic, as ``FOR UPDATE`` does on PostgreSQL.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    literal,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from ..abc import Claim
from ..errors import Conflict, NotFound, StoreError
from ..job import Job
from ..run import Attempt, Run, RunLog, RunStatus
from . import tables as t
from .rows import FirePlan, NewRun, Outcome, job_from_row, job_row, new_run_row, run_from_row

# columns the scheduler keeps; an operator's edit leaves them alone
_SCHEDULER_OWNED = ("next_run_at", "parked_reason", "last_executed_at")


def now_utc() -> datetime:
    """The local wall clock in UTC (the database's clock is ``SQLStore.now``)."""
    return datetime.now(UTC)


class SQLStore:
    """Jobs, runs, attempts and run logs in one SQL database."""

    def __init__(self, url: str, *, echo: bool = False, pool_size: int = 10) -> None:
        self.url = url
        try:
            self.engine = _make_engine(url, echo=echo, pool_size=pool_size)
        except (SQLAlchemyError, ImportError) as e:
            raise StoreError(f"cannot open the job store at {_redact(url)}: {e}") from e
        self.dialect = self.engine.dialect.name
        self._clock_offset: float | None = None
        self._clock_checked = 0.0

    # -- lifecycle -----------------------------------------------------------

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    def migrate(self) -> str:
        """Bring the schema to the newest revision; return that revision."""
        from .migrate import upgrade

        return upgrade(self.engine)

    def now(self) -> datetime:
        """The database's clock, read at most every 10 s and followed locally in between.

        Due times and leases are compared against one clock shared by every
        process, so a worker with a skewed clock cannot fire early or steal a
        live lease.
        """
        if self.dialect == "sqlite":
            return now_utc()
        mono = time.monotonic()
        if self._clock_offset is None or mono - self._clock_checked > 10.0:
            with self._read() as conn:
                db_now = conn.execute(select(func.clock_timestamp())).scalar_one()
            self._clock_offset = db_now.timestamp() - time.time()
            self._clock_checked = mono
        return datetime.fromtimestamp(time.time() + self._clock_offset, UTC)

    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as conn:
                yield conn
        except IntegrityError:
            raise
        except SQLAlchemyError as e:
            raise StoreError(f"job store write failed: {_reason(e)}") from e

    @contextlib.contextmanager
    def _read(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn:
                conn = conn.execution_options(sundial_read=True)
                with conn.begin():
                    yield conn
        except SQLAlchemyError as e:
            raise StoreError(f"job store read failed: {_reason(e)}") from e

    # -- jobs ----------------------------------------------------------------

    def add_job(self, job: Job, *, now: datetime | None = None) -> Job:
        """Store a new job; ``Conflict`` when its id is taken."""
        now = now or self.now()
        job = job.replace(version=1, created_at=now, updated_at=now)
        try:
            with self._write() as conn:
                conn.execute(insert(t.jobs).values(**job_row(job)))
        except IntegrityError as e:
            raise Conflict(f"job {job.id!r} already exists") from e
        return job

    def get_job(self, job_id: str) -> Job:
        """The job with ``job_id``; ``NotFound`` when there is none."""
        with self._read() as conn:
            row = conn.execute(select(t.jobs).where(t.jobs.c.id == job_id)).mappings().first()
        if row is None:
            raise NotFound(f"no job with id {job_id!r}")
        return job_from_row(row)

    def list_jobs(
        self, *, handler: str | None = None, parked: bool | None = None, limit: int = 1000, after_id: str | None = None
    ) -> list[Job]:
        """Jobs ordered by id, a page at a time (``after_id`` is the last id of the previous page)."""
        query = select(t.jobs).order_by(t.jobs.c.id).limit(limit)
        if parked is not None:
            query = query.where(t.jobs.c.parked_reason.is_not(None) if parked else t.jobs.c.parked_reason.is_(None))
        if handler is not None:
            query = query.where(t.jobs.c.handler == handler)
        if after_id is not None:
            query = query.where(t.jobs.c.id > after_id)
        with self._read() as conn:
            return [job_from_row(r) for r in conn.execute(query).mappings()]

    def update_job(
        self,
        job: Job,
        *,
        expected_version: int,
        runs: Sequence[NewRun] = (),
        schedule: bool = False,
        now: datetime | None = None,
    ) -> Job:
        """Replace a job's definition if it is still at ``expected_version``; return it as stored.

        The scheduler's own columns (``next_run_at``, ``parked_reason``,
        ``last_executed_at``) change only with ``schedule`` (a new trigger,
        a resume, an unpark): the scheduler advances them without raising
        the version, so an operator's edit neither conflicts with every fire
        nor turns a job's schedule back. ``runs`` (skip records of a resume)
        are stored in the same transaction. ``Conflict`` when someone else
        changed the definition first, ``NotFound`` when the job is gone.
        """
        now = now or self.now()
        values = job_row(job.replace(version=expected_version + 1, updated_at=now))
        for column in ("id", "created_at") + (() if schedule else _SCHEDULER_OWNED):
            del values[column]
        parked = t.jobs.c.parked_reason.is_(None) if not schedule else literal(job.parked_reason is None)
        values["active"] = and_(literal(job.enabled), literal(not job.paused), parked)
        with self._write() as conn:
            result = conn.execute(
                update(t.jobs).where(t.jobs.c.id == job.id, t.jobs.c.version == expected_version).values(**values)
            )
            if result.rowcount == 0:
                exists = conn.execute(select(t.jobs.c.version).where(t.jobs.c.id == job.id)).first()
                if exists is None:
                    raise NotFound(f"no job with id {job.id!r}")
                raise Conflict(f"job {job.id!r} is at version {exists[0]}, not {expected_version}")
            stored = job_from_row(conn.execute(select(t.jobs).where(t.jobs.c.id == job.id)).mappings().one())
            if runs:
                conn.execute(
                    self._insert_ignoring(t.runs, ("job_id", "scheduled_at")),
                    [new_run_row(stored, r, now) for r in runs],
                )
        return stored

    def add_runs(self, job: Job, runs: Sequence[NewRun], *, now: datetime | None = None) -> None:
        """Store runs of ``job`` outside its schedule (a manual run); an existing fire time is kept."""
        now = now or self.now()
        with self._write() as conn:
            conn.execute(
                self._insert_ignoring(t.runs, ("job_id", "scheduled_at")), [new_run_row(job, r, now) for r in runs]
            )

    def delete_job(self, job_id: str) -> None:
        """Delete a job and its run history; ``NotFound`` when there is none."""
        with self._write() as conn:
            if conn.execute(delete(t.jobs).where(t.jobs.c.id == job_id)).rowcount == 0:
                raise NotFound(f"no job with id {job_id!r}")

    # -- scheduling ----------------------------------------------------------

    def next_due_at(self) -> datetime | None:
        """The earliest ``next_run_at`` of any active job (an index lookup)."""
        with self._read() as conn:
            return conn.execute(
                select(func.min(t.jobs.c.next_run_at)).where(t.jobs.c.active.is_(True))
            ).scalar_one_or_none()

    def schedule_due(self, now: datetime, limit: int, planner: Callable[[Job], FirePlan]) -> list[tuple[Job, FirePlan]]:
        """Claim up to ``limit`` due jobs, store the runs ``planner`` decides, advance the jobs.

        All in ONE transaction. Due jobs are locked with ``FOR UPDATE SKIP
        LOCKED`` on PostgreSQL, so racing schedulers share the work instead of
        queueing on each other; SQLite's ``BEGIN IMMEDIATE`` serialises them.
        The unique key on (job, fire time) is the last line of defence: a
        run that exists already is not inserted twice.
        """
        due = (
            select(t.jobs)
            .where(t.jobs.c.active.is_(True), t.jobs.c.next_run_at <= now)
            .order_by(t.jobs.c.next_run_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        with self._write() as conn:
            jobs = [job_from_row(r) for r in conn.execute(due).mappings()]
            if not jobs:
                return []
            decided = [(job, planner(job)) for job in jobs]
            run_rows = [new_run_row(job, new, now) for job, plan in decided for new in plan.runs]
            if run_rows:
                conn.execute(self._insert_ignoring(t.runs, ("job_id", "scheduled_at")), run_rows)
            conn.execute(
                update(t.jobs)
                .where(t.jobs.c.id == bindparam("b_id"), t.jobs.c.version == bindparam("b_version"))
                .values(
                    next_run_at=bindparam("b_next"),
                    parked_reason=bindparam("b_parked"),
                    active=bindparam("b_active"),
                    updated_at=now,
                ),
                [
                    {
                        "b_id": job.id,
                        "b_version": job.version,
                        "b_next": plan.next_run_at,
                        "b_parked": plan.parked_reason,
                        "b_active": job.enabled and not job.paused and plan.parked_reason is None,
                    }
                    for job, plan in decided
                ],
            )
        return decided

    def emit(self, event: str, payload: dict[str, Any], event_id: str, now: datetime) -> list[Run]:
        """Create one run per active job listening to ``event``; a repeated ``event_id`` creates none."""
        listeners = select(t.jobs).where(
            t.jobs.c.active.is_(True), t.jobs.c.type == "event", t.jobs.c.trigger_event == event
        )
        created: list[Run] = []
        with self._write() as conn:
            for job in [job_from_row(r) for r in conn.execute(listeners).mappings()]:
                row = new_run_row(job, NewRun(scheduled_at=now, payload={**job.payload_template, **payload}), now)
                row["event_id"] = event_id
                # two events for one job may arrive within one clock tick; the
                # fire time only needs to be unique, so step past a taken one
                for step in range(1000):
                    row["scheduled_at"] = now + timedelta(microseconds=step)
                    taken = conn.execute(
                        select(t.runs.c.id, t.runs.c.event_id).where(
                            t.runs.c.job_id == job.id,
                            or_(t.runs.c.scheduled_at == row["scheduled_at"], t.runs.c.event_id == event_id),
                        )
                    ).first()
                    if taken is None:
                        break
                    if taken.event_id == event_id:
                        row = {}
                        break
                if row:
                    run_id = conn.execute(insert(t.runs).values(**row).returning(t.runs.c.id)).scalar_one()
                    created.append(run_from_row({**row, "id": run_id}))
        return created

    # -- the run path ----------------------------------------------------------

    def outbox(self, limit: int) -> list[Run]:
        """Pending runs due now, oldest first: what the relay publishes next."""
        with self._read() as conn:
            rows = conn.execute(
                select(t.runs)
                .where(t.runs.c.status == RunStatus.PENDING.value, t.runs.c.available_at <= self.now())
                .order_by(t.runs.c.available_at)
                .limit(limit)
            ).mappings()
            return [run_from_row(r) for r in rows]

    def mark_queued(self, runs: Sequence[Run], now: datetime) -> int:
        """Record that the broker confirmed these runs; return how many were marked queued.

        Only a run still pending with the fence it was published with is
        marked: a confirm that arrives late must not mark a later incarnation
        of the run (claimed since, or dead and replayed) as queued.
        """
        if not runs:
            return 0
        with self._write() as conn:
            return conn.execute(
                update(t.runs)
                .where(
                    tuple_(t.runs.c.id, t.runs.c.fence).in_([(run.id, run.fence) for run in runs]),
                    t.runs.c.status == RunStatus.PENDING.value,
                )
                .values(status=RunStatus.QUEUED.value, queued_at=now, updated_at=now)
            ).rowcount

    def claim(
        self,
        worker: str,
        lease_seconds: float,
        *,
        run_id: int | None = None,
        queues: Sequence[str] = ("default",),
        statuses: Sequence[RunStatus] = (RunStatus.QUEUED, RunStatus.RETRYING),
        now: datetime | None = None,
    ) -> Claim | None:
        """Claim one run: the given one, or the next due on ``queues``; None when there is none to claim."""
        run_ids = None if run_id is None else [run_id]
        claims = self.claim_many(
            worker, lease_seconds, run_ids=run_ids, queues=queues, statuses=statuses, limit=1, now=now
        )
        return claims[0] if claims else None

    def claim_many(
        self,
        worker: str,
        lease_seconds: float,
        *,
        run_ids: Sequence[int] | None = None,
        queues: Sequence[str] = ("default",),
        statuses: Sequence[RunStatus] = (RunStatus.QUEUED, RunStatus.RETRYING),
        limit: int = 1,
        now: datetime | None = None,
    ) -> list[Claim]:
        """Start attempts, in one transaction: raise each run's fence, take its lease, record the attempt.

        With ``run_ids`` those runs are claimed (a broker delivered them);
        without, up to ``limit`` due runs on ``queues`` (the embedded broker).
        A run is left out when it is finished, held by a live lease, or
        skipped because its job is busy and forbids overlap (recorded as a
        ``busy`` skip, or delayed a second for ``overlap=queue``).
        """
        now = now or self.now()
        query = select(t.runs).where(t.runs.c.status.in_([s.value for s in statuses]), t.runs.c.available_at <= now)
        if run_ids is not None:
            if not run_ids:
                return []
            # named runs wait for their locks (the relay may be marking them queued)
            query = query.where(t.runs.c.id.in_(list(run_ids))).order_by(t.runs.c.id).with_for_update()
        else:
            # picking the next runs skips locked ones: another worker is taking them
            query = (
                query.where(t.runs.c.queue.in_(list(queues)))
                .order_by(t.runs.c.priority.desc(), t.runs.c.available_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        with self._write() as conn:
            runs = [run_from_row(r) for r in conn.execute(query).mappings()]
            if not runs:
                return []
            job_ids = sorted({run.job_id for run in runs})
            jobs = {
                job.id: job
                for job in (
                    job_from_row(r)
                    for r in conn.execute(
                        select(t.jobs).where(t.jobs.c.id.in_(job_ids)).order_by(t.jobs.c.id).with_for_update()
                    ).mappings()
                )
            }
            running: dict[str, int] = dict(
                conn.execute(
                    select(t.runs.c.job_id, func.count())
                    .where(
                        t.runs.c.job_id.in_(job_ids),
                        t.runs.c.status == RunStatus.RUNNING.value,
                        t.runs.c.lease_expires_at > now,
                    )
                    .group_by(t.runs.c.job_id)
                ).all()
            )
            chosen: list[tuple[Run, Job]] = []
            busy: list[int] = []
            waiting: list[int] = []
            for run in runs:
                job = jobs.get(run.job_id)
                if job is None:
                    continue
                if running.get(job.id, 0) >= job.max_instances:
                    (busy if job.overlap == "skip" else waiting).append(run.id)
                    continue
                running[job.id] = running.get(job.id, 0) + 1
                chosen.append((run, job))
            if busy:
                conn.execute(
                    update(t.runs)
                    .where(t.runs.c.id.in_(busy))
                    .values(status=RunStatus.SKIPPED.value, reason="busy", finished_at=now, updated_at=now)
                )
            if waiting:
                # overlap=queue: wait for the running instance, checked again shortly
                conn.execute(
                    update(t.runs)
                    .where(t.runs.c.id.in_(waiting))
                    .values(available_at=now + timedelta(seconds=1), updated_at=now)
                )
            if chosen:
                self._start_attempts(conn, chosen, worker, lease_seconds, now)
        return [
            Claim(
                run=dataclasses.replace(
                    run, status=RunStatus.RUNNING, fence=run.fence + 1, attempt=run.attempt + 1, worker=worker
                ),
                job=job,
                fence=run.fence + 1,
                worker=worker,
            )
            for run, job in chosen
        ]

    def _start_attempts(
        self, conn: Connection, chosen: Sequence[tuple[Run, Job]], worker: str, lease: float, now: datetime
    ) -> None:
        ids = [run.id for run, _ in chosen]
        conn.execute(
            update(t.runs)
            .where(t.runs.c.id.in_(ids))
            .values(
                status=RunStatus.RUNNING.value,
                fence=t.runs.c.fence + 1,
                attempt=t.runs.c.attempt + 1,
                worker=worker,
                lease_owner=worker,
                lease_expires_at=now + timedelta(seconds=lease),
                started_at=now,
                updated_at=now,
            )
        )
        conn.execute(
            insert(t.run_attempts),
            [
                {
                    "run_id": run.id,
                    "attempt": run.attempt + 1,
                    "fence": run.fence + 1,
                    "worker": worker,
                    "status": RunStatus.RUNNING.value,
                    "started_at": now,
                }  # fmt: skip
                for run, _ in chosen
            ],
        )
        conn.execute(
            update(t.jobs).where(t.jobs.c.id.in_(sorted({job.id for _, job in chosen}))).values(last_executed_at=now)
        )

    def renew(self, claims: Sequence[Claim], lease_seconds: float) -> list[int]:
        """Extend the leases of ``claims``; return the run ids whose lease was lost."""
        if not claims:
            return []
        now = self.now()
        with self._write() as conn:
            held = {
                r.id
                for r in conn.execute(
                    update(t.runs)
                    .where(
                        tuple_(t.runs.c.id, t.runs.c.fence).in_([(c.run.id, c.fence) for c in claims]),
                        t.runs.c.status == RunStatus.RUNNING.value,
                    )
                    .values(lease_expires_at=now + timedelta(seconds=lease_seconds))
                    .returning(t.runs.c.id)
                )
            }
        return [c.run.id for c in claims if c.run.id not in held]

    def finish(self, claim: Claim, outcome: Outcome) -> RunStatus | None:
        """Record one attempt's outcome; see ``finish_many``."""
        return self.finish_many([(claim, outcome)])[0]

    def finish_many(self, results: Sequence[tuple[Claim, Outcome]]) -> list[RunStatus | None]:
        """Record the outcomes of attempts in one transaction; a status per result, in order.

        A result whose claim's fence is stale is rejected (None): the run was
        given to another worker meanwhile. A failure with ``retry_in`` set
        becomes ``retrying`` (due after that delay), or ``pending`` in the
        outbox when ``retry_from_outbox``; without it the run is ``dead``.
        """
        if not results:
            return []
        now = self.now()
        ids = sorted({claim.run.id for claim, _ in results})
        with self._write() as conn:
            # lock the rows first, so which results are current is decided once, under the lock
            current = {
                (run_id, fence)
                for run_id, fence in conn.execute(
                    select(t.runs.c.id, t.runs.c.fence)
                    .where(t.runs.c.id.in_(ids), t.runs.c.status == RunStatus.RUNNING.value)
                    .order_by(t.runs.c.id)
                    .with_for_update()
                ).all()
            }
            statuses: list[RunStatus | None] = []
            run_rows: list[dict[str, Any]] = []
            attempt_rows: list[dict[str, Any]] = []
            log_rows: list[dict[str, Any]] = []
            for claim, outcome in results:
                if (claim.run.id, claim.fence) not in current:
                    statuses.append(None)
                    continue
                current.discard((claim.run.id, claim.fence))
                status = _status_after(outcome)
                statuses.append(status)
                waits = status in (RunStatus.RETRYING, RunStatus.PENDING)
                run_rows.append({
                    "b_id": claim.run.id,
                    "b_status": status.value,
                    "b_error": outcome.error,
                    "b_duration": outcome.duration_seconds,
                    "b_available": (
                        now + timedelta(seconds=outcome.retry_in or 0.0) if waits else claim.run.available_at
                    ),
                    "b_finished": None if waits else now,
                    "b_failures": claim.run.failures + (0 if outcome.ok else 1),
                })  # fmt: skip
                attempt_rows.append({
                    "b_run": claim.run.id, "b_fence": claim.fence,
                    "b_status": RunStatus.SUCCEEDED.value if outcome.ok else RunStatus.FAILED.value,
                    "b_error": outcome.error, "b_duration": outcome.duration_seconds,
                })  # fmt: skip
                log_rows.extend(
                    {"run_id": claim.run.id, "attempt": claim.attempt, "at": at, "level": level, "message": msg}
                    for at, level, msg in outcome.logs
                )
            if run_rows:
                conn.execute(
                    update(t.runs)
                    .where(t.runs.c.id == bindparam("b_id"))
                    .values(
                        status=bindparam("b_status"),
                        error=bindparam("b_error"),
                        duration_seconds=bindparam("b_duration"),
                        available_at=bindparam("b_available"),
                        finished_at=bindparam("b_finished"),
                        failures=bindparam("b_failures"),
                        lease_owner=None,
                        lease_expires_at=None,
                        updated_at=now,
                    ),
                    run_rows,
                )
                conn.execute(
                    update(t.run_attempts)
                    .where(
                        t.run_attempts.c.run_id == bindparam("b_run"), t.run_attempts.c.fence == bindparam("b_fence")
                    )
                    .values(
                        status=bindparam("b_status"),
                        error=bindparam("b_error"),
                        finished_at=now,
                        duration_seconds=bindparam("b_duration"),
                    ),
                    attempt_rows,
                )
            if log_rows:
                conn.execute(insert(t.run_logs), log_rows)
        return statuses

    def release(self, claims: Sequence[Claim]) -> int:
        """Give claimed runs back to the queue unfinished (a graceful shutdown)."""
        now = self.now()
        released = 0
        with self._write() as conn:
            for claim in claims:
                released += self._requeue(conn, claim.run.id, claim.fence, now, "released at shutdown", lost=False)
        return released

    def requeue_stale(self, older_than_seconds: float) -> int:
        """Put runs queued longer than ``older_than_seconds`` back in the outbox.

        Publishing again can only duplicate a delivery, which the claim turns
        away; a message the broker lost would otherwise leave its run queued forever.
        """
        now = self.now()
        with self._write() as conn:
            return conn.execute(
                update(t.runs)
                .where(
                    t.runs.c.status == RunStatus.QUEUED.value,
                    t.runs.c.queued_at < now - timedelta(seconds=older_than_seconds),
                )
                .values(status=RunStatus.PENDING.value, available_at=now, updated_at=now)
            ).rowcount

    def replay(self, run_ids: Sequence[int]) -> list[int]:
        """Give dead runs a new attempt (their attempt history goes on); return those replayed."""
        if not run_ids:
            return []
        now = self.now()
        with self._write() as conn:
            return list(
                conn.execute(
                    update(t.runs)
                    .where(t.runs.c.id.in_(list(run_ids)), t.runs.c.status == RunStatus.DEAD.value)
                    .values(
                        status=RunStatus.PENDING.value,
                        available_at=now,
                        failures=0,
                        lost=0,
                        finished_at=None,
                        reason="replayed",
                        updated_at=now,
                    )  # fmt: skip
                    .returning(t.runs.c.id)
                ).scalars()
            )

    def dead_runs(self, *, job_id: str | None = None, limit: int = 1000, include_purged: bool = False) -> list[Run]:
        """Dead runs, newest first; purged ones only when asked."""
        query = select(t.runs).where(t.runs.c.status == RunStatus.DEAD.value)
        if job_id is not None:
            query = query.where(t.runs.c.job_id == job_id)
        if not include_purged:
            query = query.where(or_(t.runs.c.reason.is_(None), t.runs.c.reason != "purged"))
        with self._read() as conn:
            rows = conn.execute(query.order_by(t.runs.c.finished_at.desc()).limit(limit)).mappings()
            return [run_from_row(r) for r in rows]

    def purge(self, run_ids: Sequence[int]) -> int:
        """Mark dead runs purged: they leave the dead-letter list, their history stays."""
        if not run_ids:
            return 0
        now = self.now()
        with self._write() as conn:
            return conn.execute(
                update(t.runs)
                .where(t.runs.c.id.in_(list(run_ids)), t.runs.c.status == RunStatus.DEAD.value)
                .values(reason="purged", updated_at=now)
            ).rowcount

    def expire_leases(self, *, max_lost: int = 3) -> list[int]:
        """Put runs whose lease expired back in the outbox; return their ids.

        A run lost ``max_lost`` times (its worker keeps dying on it) is dead
        instead, so a handler that kills its process cannot loop forever.
        """
        now = self.now()
        requeued: list[int] = []
        with self._write() as conn:
            expired = conn.execute(
                select(t.runs.c.id, t.runs.c.fence, t.runs.c.lost)
                .where(t.runs.c.status == RunStatus.RUNNING.value, t.runs.c.lease_expires_at < now)
                .with_for_update(skip_locked=True)
            ).all()
            for run_id, fence, lost in expired:
                if lost + 1 >= max_lost:
                    _set_run(
                        conn, run_id, now, status=RunStatus.DEAD.value, lost=lost + 1, finished_at=now,
                        error=f"lease expired {lost + 1} times: its worker was lost each time",
                        lease_owner=None, lease_expires_at=None,
                    )  # fmt: skip
                    _end_attempt(conn, run_id, fence, now, "lost", "lease expired")
                elif self._requeue(conn, run_id, fence, now, "lease expired", lost=True):
                    requeued.append(run_id)
        return requeued

    def _requeue(self, conn: Connection, run_id: int, fence: int, now: datetime, why: str, *, lost: bool) -> int:
        values: dict[str, Any] = {
            "status": RunStatus.PENDING.value, "available_at": now,
            "lease_owner": None, "lease_expires_at": None,
        }  # fmt: skip
        if lost:
            values["lost"] = t.runs.c.lost + 1
        count = conn.execute(
            update(t.runs)
            .where(t.runs.c.id == run_id, t.runs.c.fence == fence, t.runs.c.status == RunStatus.RUNNING.value)
            .values(updated_at=now, **values)
        ).rowcount
        if count:
            _end_attempt(conn, run_id, fence, now, "lost" if lost else "released", why)
        return count

    # -- history -------------------------------------------------------------

    def get_run(self, run_id: int) -> Run:
        """The run with ``run_id``; ``NotFound`` when there is none."""
        with self._read() as conn:
            row = conn.execute(select(t.runs).where(t.runs.c.id == run_id)).mappings().first()
        if row is None:
            raise NotFound(f"no run with id {run_id}")
        return run_from_row(row)

    def list_runs(
        self,
        *,
        job_id: str | None = None,
        statuses: Sequence[RunStatus] | None = None,
        limit: int = 100,
        newest_first: bool = True,
    ) -> list[Run]:
        """Runs and skip records, filtered by job and status."""
        query = select(t.runs).limit(limit)
        if job_id is not None:
            query = query.where(t.runs.c.job_id == job_id)
        if statuses:
            query = query.where(t.runs.c.status.in_([s.value for s in statuses]))
        order = (
            (t.runs.c.scheduled_at.desc(), t.runs.c.id.desc()) if newest_first else (t.runs.c.scheduled_at, t.runs.c.id)
        )
        with self._read() as conn:
            return [run_from_row(r) for r in conn.execute(query.order_by(*order)).mappings()]

    def explain(self, job_id: str, fire_time: datetime) -> Run | None:
        """Why did (or didn't) ``job_id`` run at ``fire_time``: the run or skip record covering it."""
        with self._read() as conn:
            row = (
                conn.execute(
                    select(t.runs)
                    .where(
                        t.runs.c.job_id == job_id,
                        t.runs.c.scheduled_at <= fire_time,
                        func.coalesce(t.runs.c.last_fire_at, t.runs.c.scheduled_at) >= fire_time,
                    )
                    .order_by(t.runs.c.scheduled_at.desc())
                    .limit(1)
                )
                .mappings()
                .first()
            )
        return None if row is None else run_from_row(row)

    def run_logs(self, run_id: int) -> list[RunLog]:
        """The lines handlers wrote during ``run_id``, in order."""
        with self._read() as conn:
            rows = conn.execute(
                select(t.run_logs).where(t.run_logs.c.run_id == run_id).order_by(t.run_logs.c.id)
            ).mappings()
            return [RunLog(r["run_id"], r["attempt"], r["at"], r["level"], r["message"]) for r in rows]

    def attempts(self, run_id: int) -> list[Attempt]:
        """Every attempt of ``run_id``, oldest first."""
        cols = t.run_attempts.c
        with self._read() as conn:
            rows = conn.execute(select(t.run_attempts).where(cols.run_id == run_id).order_by(cols.id)).mappings()
            return [
                Attempt(
                    r["run_id"],
                    r["attempt"],
                    r["fence"],
                    r["worker"],
                    r["status"],
                    r["started_at"],
                    r["error"],
                    r["finished_at"],
                    r["duration_seconds"],
                )  # fmt: skip
                for r in rows
            ]

    def prune_history(self, before: datetime, *, batch: int = 5000) -> int:
        """Delete finished runs (with their attempts and logs) that finished before ``before``.

        Deletes in batches so a large backlog never holds one long lock.
        """
        finished = [s.value for s in (RunStatus.SUCCEEDED, RunStatus.DEAD, RunStatus.SKIPPED)]
        total = 0
        while True:
            with self._write() as conn:
                ids = (
                    conn.execute(
                        select(t.runs.c.id)
                        .where(t.runs.c.status.in_(finished), t.runs.c.finished_at < before)
                        .limit(batch)
                    )
                    .scalars()
                    .all()
                )
                if not ids:
                    return total
                # explicit child deletes: SQLite enforces ON DELETE CASCADE only with foreign_keys on
                conn.execute(delete(t.run_logs).where(t.run_logs.c.run_id.in_(ids)))
                conn.execute(delete(t.run_attempts).where(t.run_attempts.c.run_id.in_(ids)))
                conn.execute(delete(t.runs).where(t.runs.c.id.in_(ids)))
                total += len(ids)

    def counts(self) -> dict[str, int]:
        """Runs by status: a cheap health view."""
        with self._read() as conn:
            rows = conn.execute(select(t.runs.c.status, func.count()).group_by(t.runs.c.status)).all()
        return {status: n for status, n in rows}

    def outbox_lag(self) -> float:
        """Seconds the oldest due pending run has waited: how far publishing is behind (0 when caught up)."""
        with self._read() as conn:
            oldest = conn.execute(
                select(func.min(t.runs.c.available_at)).where(t.runs.c.status == RunStatus.PENDING.value)
            ).scalar_one_or_none()
        return max(0.0, (self.now() - oldest).total_seconds()) if oldest is not None else 0.0

    # -- helpers -------------------------------------------------------------

    def _insert_ignoring(self, table: Any, key: Sequence[str]) -> Any:
        """INSERT that skips rows whose ``key`` exists already (ON CONFLICT DO NOTHING)."""
        dialect_insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        return dialect_insert(table).on_conflict_do_nothing(index_elements=list(key))


def _status_after(outcome: Outcome) -> RunStatus:
    if outcome.ok:
        return RunStatus.SUCCEEDED
    if outcome.retry_in is None:
        return RunStatus.DEAD
    return RunStatus.PENDING if outcome.retry_from_outbox else RunStatus.RETRYING


def _set_run(conn: Connection, run_id: int, now: datetime, **values: Any) -> None:
    conn.execute(update(t.runs).where(t.runs.c.id == run_id).values(updated_at=now, **values))


def _end_attempt(conn: Connection, run_id: int, fence: int, now: datetime, status: str, error: str) -> None:
    conn.execute(
        update(t.run_attempts)
        .where(t.run_attempts.c.run_id == run_id, t.run_attempts.c.fence == fence)
        .values(status=status, error=error, finished_at=now)
    )


def _make_engine(url: str, *, echo: bool, pool_size: int) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, echo=echo, poolclass=NullPool if ":memory:" in url else None)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            reading = conn.get_execution_options().get("sundial_read", False)
            conn.exec_driver_sql("BEGIN" if reading else "BEGIN IMMEDIATE")

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return create_engine(url, echo=echo, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


def _reason(e: SQLAlchemyError) -> str:
    """The driver's own message, without the SQL statement SQLAlchemy appends."""
    original = getattr(e, "orig", None)
    return f"{e.__class__.__name__}: {original if original is not None else e}".strip()


def _redact(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        creds, _, host = rest.rpartition("@")
        user = creds.split(":", 1)[0]
        return f"{scheme}{sep}{user}:***@{host}"
    return url
