"""The job store on SQLAlchemy: PostgreSQL in production, SQLite embedded.

``SQLStore`` is the whole store: jobs and scheduling here, the run path in
``runpath.py``, connections and the clock in ``base.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from ..errors import AlreadyExists, Conflict, NotFound
from ..job import Job
from ..run import Attempt, Run, RunLog, RunStatus, SkipReason
from . import bulk
from . import tables as t
from .admin import AdminQueries, dispatch_allowed
from .rows import JOBS_SHOWN, FirePlan, NewRun, job_from_row, job_row, new_run_row, run_from_row
from .runpath import RunPath

# columns the scheduler keeps; an operator's edit leaves them alone
_SCHEDULER_OWNED = ("next_run_at", "parked_reason")


# a pass's runs and job advances, in one statement each on PostgreSQL (see ``bulk``)
_ADVANCE_JOBS = bulk.update_rows(
    t.jobs, ("id", "version"), ("next_run_at", "parked_reason", "active"), constants={"updated_at": ":now"}
)
_NEW_RUN_COLUMNS = (
    "job_id", "scheduled_at", "last_fire_at", "fire_count", "status", "reason", "payload", "queue", "priority",
    "available_at", "finished_at",
)  # fmt: skip
_INSERT_RUNS = bulk.insert_rows(
    t.runs, _NEW_RUN_COLUMNS,
    constants={"attempt": "0", "failures": "0", "lost": "0", "fence": "0", "created_at": ":now", "updated_at": ":now"},
    suffix="ON CONFLICT (job_id, scheduled_at) DO NOTHING",
)  # fmt: skip


class SQLStore(AdminQueries, RunPath):
    """Jobs, runs, attempts and run logs in one SQL database."""

    # -- jobs ----------------------------------------------------------------

    def add_job(self, job: Job, *, now: datetime | None = None) -> Job:
        """Store a new job; ``Conflict`` when its id is taken."""
        now = now or self.now()
        job = job.replace(version=1, created_at=now, updated_at=now)
        try:
            with self._write() as conn:
                conn.execute(insert(t.jobs).values(**job_row(job)))
        except IntegrityError as e:
            raise AlreadyExists(f"job {job.id!r} already exists") from e
        return job

    def get_job(self, job_id: str) -> Job:
        """The job with ``job_id``; ``NotFound`` when there is none."""
        with self._read() as conn:
            row = conn.execute(JOBS_SHOWN.where(t.jobs.c.id == job_id)).mappings().first()
        if row is None:
            raise NotFound(f"no job with id {job_id!r}")
        return job_from_row(row)

    def list_jobs(
        self, *, handler: str | None = None, parked: bool | None = None, limit: int = 1000, after_id: str | None = None
    ) -> list[Job]:
        """Jobs ordered by id, a page at a time (``after_id`` is the last id of the previous page)."""
        query = JOBS_SHOWN.order_by(t.jobs.c.id).limit(limit)
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
            if job.paused or not job.enabled:
                # runs created ahead of fire times that now fall while the job is off never start
                conn.execute(
                    update(t.runs)
                    .where(
                        t.runs.c.job_id == job.id,
                        t.runs.c.status.in_([RunStatus.PENDING.value, RunStatus.QUEUED.value]),
                        t.runs.c.attempt == 0,
                        t.runs.c.scheduled_at > now,
                    )
                    .values(
                        status=RunStatus.SKIPPED.value,
                        reason=(SkipReason.PAUSED if job.paused else SkipReason.DISABLED).value,
                        finished_at=now,
                        updated_at=now,
                    )
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
                select(func.min(t.jobs.c.next_run_at)).where(
                    t.jobs.c.active.is_(True), dispatch_allowed(t.jobs.c.queue)
                )
            ).scalar_one_or_none()

    def schedule_due(
        self, due: datetime, limit: int, planner: Callable[[Job], FirePlan], *, now: datetime | None = None
    ) -> list[tuple[Job, FirePlan]]:
        """Claim up to ``limit`` jobs due by ``due``, store the runs ``planner`` decides, advance the jobs.

        All in ONE transaction. Due jobs are locked with ``FOR UPDATE SKIP
        LOCKED`` on PostgreSQL, so racing schedulers share the work instead of
        queueing on each other; SQLite's ``BEGIN IMMEDIATE`` serialises them.
        The unique key on (job, fire time) is the last line of defence: a
        run that exists already is not inserted twice.
        """
        query = (
            select(t.jobs)
            .where(t.jobs.c.active.is_(True), t.jobs.c.next_run_at <= due, dispatch_allowed(t.jobs.c.queue))
            .order_by(t.jobs.c.next_run_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        now = now or due
        with self._write() as conn:
            jobs = [job_from_row(r) for r in conn.execute(query).mappings()]
            if not jobs:
                return []
            decided = [(job, planner(job)) for job in jobs]
            run_rows = [new_run_row(job, new, now) for job, plan in decided for new in plan.runs]
            if run_rows:
                self._insert_runs(conn, run_rows, now)
            self._advance(conn, decided, now)
        return decided

    def _insert_runs(self, conn: Connection, rows: list[dict[str, Any]], now: datetime) -> None:
        """Insert new runs, skipping any whose (job, fire time) exists already."""
        if self.dialect != "postgresql":
            conn.execute(self._insert_ignoring(t.runs, ("job_id", "scheduled_at")), rows)
            return
        conn.execute(_INSERT_RUNS, {"rows": bulk.rows_param(rows), "now": now})

    def _advance(self, conn: Connection, decided: Sequence[tuple[Job, FirePlan]], now: datetime) -> None:
        """Store each job's next fire time (and parking) as its plan decided."""
        rows = [
            {"id": job.id, "version": job.version, "next_run_at": plan.next_run_at, "parked_reason": plan.parked_reason,
             "active": job.enabled and not job.paused and plan.parked_reason is None}
            for job, plan in decided
        ]  # fmt: skip
        if self.dialect == "postgresql":
            conn.execute(_ADVANCE_JOBS, {"rows": bulk.rows_param(rows), "now": now})
            return
        conn.execute(
            update(t.jobs)
            .where(t.jobs.c.id == bindparam("b_id"), t.jobs.c.version == bindparam("b_version"))
            .values(
                next_run_at=bindparam("b_next_run_at"),
                parked_reason=bindparam("b_parked_reason"),
                active=bindparam("b_active"),
                updated_at=now,
            ),
            [{f"b_{k}": v for k, v in row.items()} for row in rows],
        )

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

    # -- history -------------------------------------------------------------

    def get_run(self, run_id: int) -> Run:
        """The run with ``run_id``; ``NotFound`` when there is none."""
        with self._read() as conn:
            row = conn.execute(select(t.runs).where(t.runs.c.id == run_id)).mappings().first()
        if row is None:
            raise NotFound(f"no run with id {run_id}")
        return run_from_row(row)

    def get_runs(self, run_ids: Sequence[int]) -> dict[int, Run]:
        """The runs with these ids that exist, by id."""
        if not run_ids:
            return {}
        with self._read() as conn:
            rows = conn.execute(select(t.runs).where(t.runs.c.id.in_(list(run_ids)))).mappings()
            return {run.id: run for run in map(run_from_row, rows)}

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

    def last_successes(self, since: datetime | None = None) -> dict[str, datetime]:
        """When each job's newest successful run finished, among runs finished after ``since``.

        With ``since`` the query reads only the recent end of the finish-time
        index, so a caller that remembers the answer can keep it current cheaply.
        """
        query = (
            select(t.runs.c.job_id, func.max(t.runs.c.finished_at))
            .where(t.runs.c.status == RunStatus.SUCCEEDED.value, t.runs.c.finished_at.is_not(None))
            .group_by(t.runs.c.job_id)
        )
        if since is not None:
            query = query.where(t.runs.c.finished_at > since)
        with self._read() as conn:
            return {job_id: at for job_id, at in conn.execute(query).all()}

    # -- plugins: schema versions and rate limits ------------------------------

    def plugin_schema_versions(self) -> dict[str, int]:
        """The version each plugin's domain tables were last set up at."""
        with self._read() as conn:
            return {
                plugin: version
                for plugin, version in conn.execute(select(t.plugin_schemas.c.plugin, t.plugin_schemas.c.version))
            }

    def set_plugin_schema_version(self, plugin: str, version: int, now: datetime | None = None) -> None:
        """Record that ``plugin``'s domain tables are at ``version``."""
        now = now or self.now()
        with self._write() as conn:
            row = t.plugin_schemas.c.plugin == plugin
            changed = conn.execute(update(t.plugin_schemas).where(row).values(version=version, updated_at=now)).rowcount
            if not changed:
                conn.execute(
                    self._insert_ignoring(t.plugin_schemas, ("plugin",)).values(
                        plugin=plugin, version=version, updated_at=now
                    )
                )

    def count_use(self, key: str, period_seconds: float, now: datetime, *, connection: Connection | None = None) -> int:
        """Count one use of ``key`` in its window (a new window of ``period_seconds`` if none is open).

        One upsert, so concurrent callers each see a distinct count: on
        PostgreSQL the conflicting row is locked, on SQLite the write
        transaction is exclusive. With ``connection`` it runs in the caller's
        transaction on this database instead of one of its own.
        """
        table = t.rate_limits
        ends = bindparam("ends", now + timedelta(seconds=period_seconds), type_=t.UTCDateTime())
        expired = table.c.window_ends_at <= bindparam("now", now, type_=t.UTCDateTime())
        dialect_insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        statement = (
            dialect_insert(table)
            .values(key=key, count=1, window_ends_at=ends)
            .on_conflict_do_update(
                index_elements=["key"],
                set_={
                    "count": case((expired, 1), else_=table.c.count + 1),
                    "window_ends_at": case((expired, ends), else_=table.c.window_ends_at),
                },
            )
            .returning(table.c.count)
        )
        if connection is not None:
            return int(connection.execute(statement).scalar_one())
        with self._write() as conn:
            return int(conn.execute(statement).scalar_one())

    def prune_rate_limits(self, now: datetime) -> int:
        """Delete rate-limit windows that have ended; return how many."""
        with self._write() as conn:
            return conn.execute(delete(t.rate_limits).where(t.rate_limits.c.window_ends_at <= now)).rowcount
