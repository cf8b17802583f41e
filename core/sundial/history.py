"""Fire times past and future: previews, and what became of each fire time of a job."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from .errors import ValidationError
from .job import Job
from .run import Run
from .scheduler import schedule_for
from .store.sqlalchemy import SQLStore
from .triggers import Schedule

# fire times one history may compute: a range holding more is refused
MAX_FIRES = 10_000


def preview(schedule: Schedule, after: datetime, count: int) -> list[datetime]:
    """The next ``count`` fire times of ``schedule`` after ``after`` (fewer when it stops firing)."""
    times: list[datetime] = []
    current = schedule.next_fire_time(after)
    while current is not None and len(times) < count:
        times.append(current)
        current = schedule.next_fire_time(current)
    return times


class Coverage:
    """Which stored run or skip record covers a fire time (a skip record may stand for a range)."""

    def __init__(self, records: Sequence[Run]) -> None:
        self.records = sorted(records, key=lambda r: r.scheduled_at)
        self._starts = [r.scheduled_at for r in self.records]

    def find(self, fire: datetime) -> Run | None:
        """The record covering ``fire``, or None."""
        i = bisect.bisect_right(self._starts, fire) - 1
        while i >= 0:
            record = self.records[i]
            if (record.last_fire_at or record.scheduled_at) >= fire:
                return record
            if record.last_fire_at is None:  # a single fire time before ``fire``: no range reaches it
                i -= 1
                continue
            return None
        return None


@dataclass(frozen=True)
class FireEntry:
    """One fire time of a job: the run or skip record covering it, or why there is none."""

    fire_time: datetime
    run: Run | None
    why_none: str | None = None


def why_none(job: Job, fire: datetime, now: datetime) -> str:
    """Why no record covers ``fire``, as far as the store can tell."""
    if job.created_at is not None and fire < job.created_at:
        return "before the job was created"
    if fire > now or (job.next_run_at is not None and fire >= job.next_run_at and job.active):
        if fire > now:
            return "not due yet"
        return "due, not scheduled yet: no scheduler running, or its queue is paused"
    if job.paused or not job.enabled:
        return "the job is paused or disabled; its skip record is written when it is resumed"
    return "no record: pruned from the history, or the job's schedule changed since"


def fire_history(
    store: SQLStore, job: Job, start: datetime, end: datetime, limit: int, now: datetime
) -> tuple[list[FireEntry], bool]:
    """Each fire time of ``job`` in [start, end], newest first, at most ``limit``; and whether more were left out.

    A range holding more than ``MAX_FIRES`` fire times is refused (``ValidationError`` naming ``start``).

    Runs that answer no computed fire time (a manual run, an event, a
    backfill of an earlier schedule) are listed at their own times.
    """
    fires = schedule_for(job).fire_times(start, end, inclusive=True, limit=MAX_FIRES + 1)
    if len(fires) > MAX_FIRES:
        # the newest fire times are wanted, and a schedule only walks forwards: a bounded range it is
        raise ValidationError({"start": [f"the range holds more than {MAX_FIRES} fire times: narrow it"]})
    records = store.runs_covering(job.id, start, end)
    coverage = Coverage(records)
    if job.type == "interval" and job.trigger.starts_at is None:
        # an interval without a start is anchored at its creation, and first fires one interval later
        fires = [f for f in fires if f != job.created_at]
    entries = []
    for fire in fires:
        record = coverage.find(fire)
        entries.append(FireEntry(fire, record, None if record else why_none(job, fire, now)))
    answered = {e.run.id for e in entries if e.run is not None}
    entries += [FireEntry(r.scheduled_at, r) for r in records if r.id not in answered and r.scheduled_at >= start]
    entries.sort(key=lambda e: e.fire_time, reverse=True)
    return entries[:limit], len(entries) > limit
