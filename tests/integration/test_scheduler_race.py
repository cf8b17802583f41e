"""Two schedulers racing on one PostgreSQL store: every fire time gets exactly one run."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from sundial.clock import FakeClock
from sundial.control import Control
from sundial.scheduler import Scheduler
from sundial.store import tables
from sundial.store.sqlalchemy import SQLStore

pytestmark = pytest.mark.postgres
JOBS = 150
STEPS = 40


def test_two_schedulers_never_double_fire(postgres_url: str, postgres_store: SQLStore) -> None:
    clock = FakeClock(datetime(2026, 6, 1, tzinfo=UTC))
    handlers = {"test.noop"}
    control = Control(postgres_store, handlers, clock)
    for n in range(JOBS):
        control.add_job({"id": f"j{n:03}", "name": "tick", "handler": "test.noop", "type": "interval",
                         "interval_seconds": 1, "coalesce": False})  # fmt: skip
    stores = [SQLStore(postgres_url, pool_size=2) for _ in range(2)]
    schedulers = [Scheduler(s, handlers, clock, batch_size=37) for s in stores]
    errors: list[BaseException] = []
    taken = [0, 0]
    barrier = threading.Barrier(3)

    def race(index: int) -> None:
        scheduler = schedulers[index]
        try:
            for _ in range(STEPS):
                barrier.wait()
                while jobs := scheduler.tick().jobs:
                    taken[index] += jobs
                barrier.wait()
        except BaseException as e:  # surfaced below
            errors.append(e)
            barrier.abort()

    threads = [threading.Thread(target=race, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for _ in range(STEPS):
        clock.advance(1)  # both schedulers see the same due fire times each step
        barrier.wait()
        barrier.wait()
    for thread in threads:
        thread.join()
    for s in stores:
        s.close()
    assert not errors, errors
    assert sum(taken) == JOBS * STEPS and min(taken) > 0  # both did part of the work

    with postgres_store.engine.connect() as conn:
        rows = conn.execute(select(tables.runs.c.job_id, tables.runs.c.scheduled_at)).all()
        per_job = dict(conn.execute(select(tables.runs.c.job_id, func.count()).group_by(tables.runs.c.job_id)).all())
    duplicates = [key for key, n in Counter(rows).items() if n > 1]
    assert duplicates == []
    start = datetime(2026, 6, 1, tzinfo=UTC)
    expected = {start + timedelta(seconds=s) for s in range(1, STEPS + 1)}
    for n in range(JOBS):
        assert {at for job, at in rows if job == f"j{n:03}"} == expected
    assert set(per_job.values()) == {STEPS}
