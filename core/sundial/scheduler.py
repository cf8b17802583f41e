"""The scheduler: turns due fire times into runs, one transaction per batch.

Each pass claims a batch of due jobs (an indexed range on ``next_run_at``),
decides for each what its fire times since the last pass become (runs, or
skip records saying why not), and advances ``next_run_at``, all in one
transaction. Between passes it sleeps until the earliest due time, or until
woken because a job changed.
"""

from __future__ import annotations

import functools
import logging
import random
import threading
import time
from collections.abc import Callable, Container
from dataclasses import dataclass
from datetime import datetime, timedelta

from .clock import Clock
from .failpoints import failpoint
from .job import Job
from .loops import run_loop
from .run import RunStatus, SkipReason
from .store.rows import FirePlan, NewRun
from .store.sqlalchemy import SQLStore
from .triggers import Schedule, TriggerError, TriggerSpec, compile_trigger

log = logging.getLogger(__name__)

# how often a running scheduler notes itself in the store, and how long it counts as alive after
HEARTBEAT_SECONDS = 5.0
ALIVE_SECONDS = 60.0

# fire times handled per job per pass: a job that missed more (a 1 s interval
# after a day down) is caught up over several passes instead of one huge one
MAX_FIRES_PER_PASS = 1000


def schedule_for(job: Job) -> Schedule:
    """The compiled trigger of ``job``; an interval is anchored at its start or creation."""
    return _compiled(job.trigger, job.trigger.starts_at or job.created_at)


@functools.lru_cache(maxsize=4096)
def _compiled(trigger: TriggerSpec, anchor: datetime | None) -> Schedule:
    # many jobs share a few schedules ("*/10 * * * *" in UTC): compile each once
    return compile_trigger(trigger, anchor=anchor)


def first_fire(job: Job, now: datetime) -> datetime | None:
    """The first fire time of a new (or re-timed) job.

    At or after ``now``, except: an interval with no start first fires one
    interval after it was created, and a one-shot whose time has passed still
    fires once (late, so its misfire grace time decides).
    """
    if job.type == "date":
        return job.trigger.run_at
    inclusive = not (job.type == "interval" and job.trigger.starts_at is None)
    return schedule_for(job).next_fire_time(now, inclusive=inclusive)


def skip_range(fires: list[datetime], reason: SkipReason) -> NewRun:
    """One skip record standing for every fire time in ``fires`` (sorted, non-empty)."""
    return NewRun(
        scheduled_at=fires[0],
        status=RunStatus.SKIPPED,
        reason=reason.value,
        last_fire_at=fires[-1],
        fire_count=len(fires),
    )


def fast_forward(job: Job, now: datetime, reason: SkipReason) -> FirePlan:
    """Skip every fire time from ``job.next_run_at`` up to ``now`` with ``reason`` (a resume)."""
    schedule = schedule_for(job)
    runs: list[NewRun] = []
    if job.next_run_at is not None and job.next_run_at <= now:
        fires = schedule.fire_times(job.next_run_at, now, inclusive=True, limit=MAX_FIRES_PER_PASS)
        if fires:
            runs.append(skip_range(fires, reason))
    return FirePlan(runs=runs, next_run_at=schedule.next_fire_time(now))


def plan_fires(
    job: Job,
    now: datetime,
    known_handlers: Container[str],
    rng: random.Random | None = None,
    *,
    horizon: datetime | None = None,
) -> FirePlan:
    """Decide what the fire times of ``job`` up to ``horizon`` (default ``now``) become.

    - unknown handler: the job is parked (with the reason), never deleted;
    - fire times later than the misfire grace: one ``missed`` skip record;
    - with ``coalesce``, several on-time fire times run once, at the latest,
      and the others get one ``coalesced`` skip record; without it, each runs;
    - fire times after ``now`` (up to ``horizon``: runs created ahead, so they
      are dispatched before their time) each become a run.
    Jitter delays a run's start, never its fire time: the fire time is the
    run's unique key, so racing schedulers must compute the same one.
    """
    if job.handler not in known_handlers:
        return FirePlan(runs=[], next_run_at=job.next_run_at, parked_reason=f"unknown handler {job.handler!r}")
    try:
        schedule = schedule_for(job)
    except TriggerError as e:
        return FirePlan(runs=[], next_run_at=job.next_run_at, parked_reason=f"invalid trigger: {e}")
    assert job.next_run_at is not None, "only jobs with a next_run_at are due"
    # next_run_at is always a fire time the trigger computed, so walking from it
    # costs one trigger step per fire time and finds the next one on the way
    fires: list[datetime] = []
    next_run_at: datetime | None = job.next_run_at
    until = max(now, horizon or now)
    while next_run_at is not None and next_run_at <= until and len(fires) < MAX_FIRES_PER_PASS:
        fires.append(next_run_at)
        next_run_at = schedule.next_fire_time(next_run_at)

    grace = job.misfire_grace_seconds
    late = [f for f in fires if grace is not None and (now - f).total_seconds() > grace]
    on_time = fires[len(late) :]
    ahead = [f for f in on_time if f > now]
    on_time = on_time[: len(on_time) - len(ahead)]
    runs: list[NewRun] = []
    if late:
        runs.append(skip_range(late, SkipReason.MISSED))
    if job.coalesce and len(on_time) > 1:
        runs.append(skip_range(on_time[:-1], SkipReason.COALESCED))
        on_time = on_time[-1:]
    on_time += ahead
    uniform = (rng or random).uniform
    for fire in on_time:
        start = fire + timedelta(seconds=uniform(0, job.jitter_seconds)) if job.jitter_seconds else fire
        runs.append(NewRun(scheduled_at=fire, available_at=start, payload=dict(job.payload_template)))
    return FirePlan(runs=runs, next_run_at=next_run_at)


@dataclass(frozen=True)
class PassResult:
    """What one scheduler pass did."""

    jobs: int
    runs: int
    skipped: int
    parked: int
    full: bool  # the batch was full: more jobs may be due right now


class Scheduler:
    """Finds due jobs and stores their runs; any number may share one store."""

    def __init__(
        self,
        store: SQLStore,
        handlers: Container[str],
        clock: Clock,
        *,
        batch_size: int = 500,
        max_idle_seconds: float = 1.0,
        lookahead_seconds: float = 0.0,
        on_runs: Callable[[], None] = lambda: None,
        name: str | None = None,
        backpressure: Callable[[], bool] = lambda: False,
    ) -> None:
        self.store = store
        self.name = name
        self.backpressure = backpressure
        self._started_at: datetime | None = None
        self._beat_at = float("-inf")
        self.handlers = handlers
        self.clock = clock
        self.batch_size = batch_size
        self.max_idle_seconds = max_idle_seconds
        self.lookahead = timedelta(seconds=lookahead_seconds)
        self.on_runs = on_runs
        self._wake = threading.Event()

    def tick(self, now: datetime | None = None) -> PassResult:
        """One pass: claim up to ``batch_size`` due jobs and store what their fire times became.

        A job is due ``lookahead_seconds`` before its fire time: its run is
        created (and published) ahead, and a worker starts it on time.
        """
        now = now or self.clock.now()
        horizon = now + self.lookahead
        decided = self.store.schedule_due(
            horizon, self.batch_size, lambda job: plan_fires(job, now, self.handlers, horizon=horizon), now=now
        )
        runs = sum(1 for _, plan in decided for r in plan.runs if r.status is RunStatus.PENDING)
        skipped = sum(1 for _, plan in decided for r in plan.runs if r.status is RunStatus.SKIPPED)
        parked = sum(1 for _, plan in decided if plan.parked_reason)
        for job, plan in decided:
            if plan.parked_reason:
                log.warning("job %s parked: %s", job.id, plan.parked_reason)
        if runs:
            failpoint("scheduler.after_commit")
            self.on_runs()
        return PassResult(len(decided), runs, skipped, parked, full=len(decided) >= self.batch_size)

    def wake(self) -> None:
        """Cut the current sleep short (a job was added or changed)."""
        self._wake.set()

    def run(self, stop: threading.Event) -> None:
        """Pass after pass until ``stop`` is set; store errors are logged and retried."""
        run_loop(self._step, stop, self._wake, "scheduler pass")

    def _step(self) -> float:
        delay = 0.0 if self.tick().full else self._idle_delay()
        self._heartbeat()
        return delay

    def _heartbeat(self) -> None:
        # schedulers cooperate through row locks and elect no leader: a heartbeat is how an
        # operator (GetSchedulerStatus) learns which are alive, and whether their relay is refused
        if self.name is None or time.monotonic() - self._beat_at < HEARTBEAT_SECONDS:
            return
        now = self.clock.now()
        self._started_at = self._started_at or now
        self.store.heartbeat(self.name, self._started_at, backpressure=self.backpressure(), now=now)
        self._beat_at = time.monotonic()

    def _idle_delay(self) -> float:
        next_due = self.store.next_due_at()
        if next_due is None:
            return self.max_idle_seconds
        wait = (next_due - self.lookahead - self.clock.now()).total_seconds()
        return min(max(wait, 0.0), self.max_idle_seconds)
