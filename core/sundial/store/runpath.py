"""The run path in the store: the outbox, claims with fencing tokens and leases, outcomes, redelivery.

Every write here is one short transaction guarded so that it can be repeated
safely: a lost COMMIT on PostgreSQL leaves the caller unsure whether it
happened, and the next attempt must not do it twice.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Integer,
    bindparam,
    func,
    insert,
    literal,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql

from ..abc import Claim
from ..job import Job
from ..run import Run, RunStatus
from . import bulk
from . import tables as t
from .admin import PURGED, dispatch_allowed, on_dead_letter_list
from .base import StoreBase
from .rows import Outcome, job_from_row, run_from_row

# what publishing a run needs: not its payload, which the worker reads when it claims the run
_OUTBOX_COLUMNS = [
    t.runs.c[name]
    for name in ("id", "job_id", "scheduled_at", "status", "queue", "priority", "attempt", "failures", "fence",
                 "available_at", "error")
]  # fmt: skip
# what an ended attempt writes (see ``bulk`` for the PostgreSQL statements)
_FINISHED_COLUMNS = (
    "status", "error", "duration_seconds", "available_at", "finished_at", "failures", "started_at",
)  # fmt: skip
_FINISH_RUNS = bulk.update_rows(
    t.runs, ("id",), _FINISHED_COLUMNS,
    constants={"lease_owner": "NULL", "lease_expires_at": "NULL", "updated_at": ":now"},
)  # fmt: skip
_INSERT_ATTEMPTS = bulk.insert_rows(
    t.run_attempts,
    ("run_id", "attempt", "fence", "worker", "status", "error", "started_at", "finished_at", "duration_seconds"),
)
_INSERT_LOGS = bulk.insert_rows(t.run_logs, ("run_id", "attempt", "at", "level", "message"))
# the advisory-lock namespace of job claims (PostgreSQL): keeps clear of other users' advisory locks
_JOB_LOCK_SPACE = 0x5D1A


class RunPath(StoreBase):
    """The operations workers, brokers and the relay perform on runs."""

    def outbox(self, limit: int, *, ahead_seconds: float = 0.0) -> list[Run]:
        """Pending runs due within ``ahead_seconds``, oldest first: what the relay publishes next."""
        with self._read() as conn:
            return self._outbox(conn, limit, ahead_seconds, lock=False)

    @contextlib.contextmanager
    def publishing(self, limit: int, *, ahead_seconds: float = 0.0) -> Iterator[tuple[list[Run], Connection]]:
        """``outbox``'s runs, locked until the block ends, and the transaction holding them.

        Another relay skips locked runs (``FOR UPDATE SKIP LOCKED``) rather than
        publishing them a second time; pass the connection to ``mark_queued``.
        Only the runs' rows are locked: the jobs' rows stay free for the schedulers.
        """
        with self._write() as conn:
            yield self._outbox(conn, limit, ahead_seconds, lock=True), conn

    def _outbox(self, conn: Connection, limit: int, ahead_seconds: float, *, lock: bool) -> list[Run]:
        due = self.now() + timedelta(seconds=ahead_seconds)
        # the limit first, along the status index; then each run's handler (for the message's
        # headers): joined before the limit, the join would walk every due run
        due_runs = (
            select(*_OUTBOX_COLUMNS)
            .where(
                t.runs.c.status == RunStatus.PENDING.value,
                t.runs.c.available_at <= due,
                dispatch_allowed(t.runs.c.queue),
            )
            .order_by(t.runs.c.available_at)
            .limit(limit)
        )
        if lock:
            due_runs = due_runs.with_for_update(skip_locked=True)
        batch = due_runs.subquery()
        rows = conn.execute(
            select(batch, t.jobs.c.handler).join(t.jobs, t.jobs.c.id == batch.c.job_id).order_by(batch.c.available_at)
        ).mappings()
        return [run_from_row(r) for r in rows]

    def mark_queued(self, runs: Sequence[Run], now: datetime, *, connection: Connection | None = None) -> int:
        """Record that the broker confirmed these runs; return how many were marked queued.

        Only a run still pending with the fence it was published with is
        marked: a confirm that arrives late must not mark a later incarnation
        of the run (claimed since, or dead and replayed) as queued. With
        ``connection`` (from ``publishing``) it is part of that transaction.
        """
        if not runs:
            return 0
        with contextlib.nullcontext(connection) if connection is not None else self._write() as conn:
            return conn.execute(
                update(t.runs)
                .where(
                    *self._fenced([(run.id, run.fence) for run in runs]),
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
        ahead_seconds: float = 0.0,
    ) -> list[Claim]:
        """Start attempts, in one transaction: raise each run's fence, take its lease, record the attempt.

        With ``run_ids`` those runs are claimed (a broker delivered them);
        without, up to ``limit`` due runs on ``queues`` (the embedded broker).
        A run is left out when it is finished, held by a live lease, or
        skipped because its job is busy and forbids overlap (recorded as a
        ``busy`` skip, or delayed a second for ``overlap=queue``).

        Runs due within ``ahead_seconds`` are claimed too (the worker starts
        them on time); one whose job is busy is left as it is until it is due.
        """
        now = now or self.now()
        due = now + timedelta(seconds=ahead_seconds)
        claimable = {s.value for s in statuses}
        if run_ids is not None:
            if not run_ids:
                return []
            # named runs wait for their locks (the relay may be marking them queued); they
            # are found by primary key alone and sorted out here, so no plan can trade
            # that lookup for a walk of every due run
            query = select(t.runs).where(self._among(t.runs.c.id, run_ids)).order_by(t.runs.c.id).with_for_update()
        else:
            # picking the next runs skips locked ones: another worker is taking them
            query = (
                select(t.runs)
                .where(
                    t.runs.c.status.in_(sorted(claimable)),
                    t.runs.c.available_at <= due,
                    t.runs.c.queue.in_(list(queues)),
                    dispatch_allowed(t.runs.c.queue),
                )
                .order_by(t.runs.c.priority.desc(), t.runs.c.available_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        with self._write() as conn:
            runs = [
                run
                for run in map(run_from_row, conn.execute(query).mappings())
                if run.status.value in claimable and (run.available_at is None or run.available_at <= due)
            ]
            if not runs:
                return []
            job_ids = sorted({run.job_id for run in runs})
            self._lock_jobs(conn, job_ids)
            rows = conn.execute(select(t.jobs).where(self._among(t.jobs.c.id, job_ids))).mappings()
            jobs = {job.id: job for job in map(job_from_row, rows)}
            running: dict[str, int] = dict(
                conn.execute(
                    select(t.runs.c.job_id, func.count())
                    .where(
                        self._among(t.runs.c.job_id, job_ids),
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
                    if run.available_at is None or run.available_at <= now:
                        (busy if job.overlap == "skip" else waiting).append(run.id)
                    continue
                running[job.id] = running.get(job.id, 0) + 1
                chosen.append((run, job))
            if busy:
                conn.execute(
                    update(t.runs)
                    .where(self._among(t.runs.c.id, busy))
                    .values(status=RunStatus.SKIPPED.value, reason="busy", finished_at=now, updated_at=now)
                )
            if waiting:
                # overlap=queue: wait for the running instance, checked again shortly
                conn.execute(
                    update(t.runs)
                    .where(self._among(t.runs.c.id, waiting))
                    .values(available_at=now + timedelta(seconds=1), updated_at=now)
                )
            if chosen:
                self._start_attempts(conn, chosen, worker, lease_seconds, now)
        return [
            Claim(
                run=dataclasses.replace(
                    run,
                    status=RunStatus.RUNNING,
                    fence=run.fence + 1,
                    attempt=run.attempt + 1,
                    worker=worker,
                    started_at=now,
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
            .where(self._among(t.runs.c.id, ids))
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

    def _lock_jobs(self, conn: Connection, job_ids: Sequence[str]) -> None:
        """Serialise claims of the same jobs until this transaction ends, so overlap limits hold.

        PostgreSQL takes transaction-scoped advisory locks (in memory: no row
        is written, and the scheduler's locks on job rows are not contended),
        in key order so two claimers cannot deadlock. SQLite's write
        transactions are serialised already.
        """
        if self.dialect != "postgresql" or not job_ids:
            return
        conn.execute(
            text(
                "SELECT pg_advisory_xact_lock(:space, k) FROM"
                " (SELECT DISTINCT hashtext(j) AS k FROM unnest(CAST(:ids AS text[])) AS j) AS keys ORDER BY k"
            ),
            {"space": _JOB_LOCK_SPACE, "ids": list(job_ids)},
        )

    def renew(self, claims: Sequence[Claim], lease_seconds: float) -> list[Claim]:
        """Extend the leases of ``claims``; return the claims whose lease was lost (their fence is stale)."""
        if not claims:
            return []
        now = self.now()
        with self._write() as conn:
            held = {
                (r.id, r.fence)
                for r in conn.execute(
                    update(t.runs)
                    .where(
                        *self._fenced([(c.run.id, c.fence) for c in claims]),
                        t.runs.c.status == RunStatus.RUNNING.value,
                    )
                    .values(lease_expires_at=now + timedelta(seconds=lease_seconds))
                    .returning(t.runs.c.id, t.runs.c.fence)
                )
            }
        return [c for c in claims if (c.run.id, c.fence) not in held]

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
            # lock the rows first, so which results are current is decided once, under the lock;
            # found by primary key alone (the status is tested here), so no plan walks the status index
            current = {
                (run_id, fence)
                for run_id, fence, status in conn.execute(
                    select(t.runs.c.id, t.runs.c.fence, t.runs.c.status)
                    .where(self._among(t.runs.c.id, ids))
                    .order_by(t.runs.c.id)
                    .with_for_update()
                ).all()
                if status == RunStatus.RUNNING.value
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
                started = outcome.started_at or claim.run.started_at or now
                run_rows.append({
                    "id": claim.run.id,
                    "started_at": started,
                    "status": status.value,
                    "error": outcome.error,
                    "duration_seconds": outcome.duration_seconds,
                    "available_at": (
                        now + timedelta(seconds=outcome.retry_in or 0.0) if waits else claim.run.available_at
                    ),
                    "finished_at": None if waits else now,
                    "failures": claim.run.failures + (0 if outcome.ok else 1),
                })  # fmt: skip
                attempt_rows.append({
                    "run_id": claim.run.id, "attempt": claim.attempt, "fence": claim.fence, "worker": claim.worker,
                    "status": RunStatus.SUCCEEDED.value if outcome.ok else RunStatus.FAILED.value,
                    "error": outcome.error, "started_at": started, "finished_at": now,
                    "duration_seconds": outcome.duration_seconds,
                })  # fmt: skip
                log_rows.extend(
                    {"run_id": claim.run.id, "attempt": claim.attempt, "at": at, "level": level, "message": msg}
                    for at, level, msg in outcome.logs
                )
            if run_rows:
                self._record(conn, run_rows, attempt_rows, log_rows, now)
        return statuses

    def _fenced(self, pairs: Sequence[tuple[int, int]]) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
        """Rows that are these (run id, fence) pairs, found by primary key.

        Alone, the pair test becomes one long OR that PostgreSQL checks against
        every row of the status it also filters on (120 ms for 500 runs among
        20,000 pending). On PostgreSQL the pairs are a table joined on the key
        (``UPDATE ... FROM unnest(...)``), whose text is the same for any number.
        """
        ids = [run_id for run_id, _ in pairs]
        if self.dialect != "postgresql":
            return t.runs.c.id.in_(ids), tuple_(t.runs.c.id, t.runs.c.fence).in_(pairs)
        given = (
            func.unnest(
                bindparam(None, ids, type_=postgresql.ARRAY(BigInteger)),
                bindparam(None, [fence for _, fence in pairs], type_=postgresql.ARRAY(Integer)),
            )
            .table_valued("id", "fence", name="given")
            .render_derived()
        )
        return t.runs.c.id == given.c.id, t.runs.c.fence == given.c.fence

    def _record(
        self,
        conn: Connection,
        runs: list[dict[str, Any]],
        attempts: list[dict[str, Any]],
        logs: list[dict[str, Any]],
        now: datetime,
    ) -> None:
        """Write ended attempts: the runs' new state, the attempts' rows (written once, at the end), their logs."""
        if self.dialect == "postgresql":
            conn.execute(_FINISH_RUNS, {"rows": bulk.rows_param(runs), "now": now})
            conn.execute(_INSERT_ATTEMPTS, {"rows": bulk.rows_param(attempts)})
            if logs:
                conn.execute(_INSERT_LOGS, {"rows": bulk.rows_param(logs)})
            return
        conn.execute(
            update(t.runs)
            .where(t.runs.c.id == bindparam("b_id"))
            .values(
                **{name: bindparam(f"b_{name}") for name in _FINISHED_COLUMNS},
                lease_owner=None,
                lease_expires_at=None,
                updated_at=now,
            ),
            [{f"b_{name}": value for name, value in run.items()} for run in runs],
        )
        conn.execute(insert(t.run_attempts), attempts)
        if logs:
            conn.execute(insert(t.run_logs), logs)

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
        dead = t.runs.c.status == RunStatus.DEAD.value if include_purged else on_dead_letter_list()
        query = select(t.runs).where(dead)
        if job_id is not None:
            query = query.where(t.runs.c.job_id == job_id)
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
                .values(reason=PURGED, updated_at=now)
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
                    _end_attempt(conn, run_id, now, "lost", "lease expired")
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
            _end_attempt(conn, run_id, now, "lost" if lost else "released", why)
        return count


def _status_after(outcome: Outcome) -> RunStatus:
    if outcome.ok:
        return RunStatus.SUCCEEDED
    if outcome.retry_in is None:
        return RunStatus.DEAD
    return RunStatus.PENDING if outcome.retry_from_outbox else RunStatus.RETRYING


def _set_run(conn: Connection, run_id: int, now: datetime, **values: Any) -> None:
    conn.execute(update(t.runs).where(t.runs.c.id == run_id).values(updated_at=now, **values))


def _end_attempt(conn: Connection, run_id: int, now: datetime, status: str, error: str) -> None:
    """Record the attempt a run is in as ended (lost or released), from the run row that shows it."""
    r = t.runs.c
    conn.execute(
        insert(t.run_attempts).from_select(
            ["run_id", "attempt", "fence", "worker", "status", "error", "started_at", "finished_at"],
            select(
                r.id,
                r.attempt,
                r.fence,
                func.coalesce(r.worker, ""),
                literal(status),
                literal(error),
                func.coalesce(r.started_at, now),
                literal(now, t.UTCDateTime()),
            ).where(r.id == run_id),  # fmt: skip
        )
    )
