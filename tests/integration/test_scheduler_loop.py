"""The scheduler loop on a real store (SQLite and PostgreSQL), driven by a controllable clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sundial.clock import FakeClock
from sundial.control import Control
from sundial.run import RunStatus
from sundial.scheduler import Scheduler
from sundial.store.rows import Outcome
from sundial.store.sqlalchemy import SQLStore

HANDLERS = {"test.noop", "sundial.log_message"}


def make(store: SQLStore, clock: FakeClock, handlers: set[str] = HANDLERS) -> tuple[Scheduler, Control]:
    return Scheduler(store, handlers, clock, batch_size=100), Control(store, handlers, clock)


def every_minute(**extra: object) -> dict:
    return {"id": "minutely", "name": "every minute", "handler": "test.noop", "type": "cron",
            "cron_expression": "* * * * *", **extra}  # fmt: skip


def fire_times(store: SQLStore, job_id: str, status: RunStatus = RunStatus.PENDING) -> list[datetime]:
    return [r.scheduled_at for r in store.list_runs(job_id=job_id, statuses=[status], newest_first=False, limit=10_000)]


def test_fires_each_due_time_once_and_advances(store: SQLStore, clock: FakeClock) -> None:
    scheduler, control = make(store, clock)
    job = control.add_job(every_minute())
    assert job.next_run_at == datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    assert scheduler.tick().runs == 1
    assert scheduler.tick().runs == 0  # same instant: nothing new
    clock.advance(59)
    assert scheduler.tick().runs == 0
    clock.advance(1)
    assert scheduler.tick().runs == 1
    assert fire_times(store, "minutely") == [datetime(2026, 3, 2, 12, m, tzinfo=UTC) for m in (0, 1)]
    assert store.get_job("minutely").next_run_at == datetime(2026, 3, 2, 12, 2, tzinfo=UTC)


def test_catch_up_coalesces_missed_fire_times_into_one_run(store: SQLStore, clock: FakeClock) -> None:
    scheduler, control = make(store, clock)
    control.add_job(every_minute(coalesce=True))
    clock.advance(minutes=10)  # the scheduler was down for ten minutes
    result = scheduler.tick()
    assert (result.runs, result.skipped) == (1, 1)
    assert fire_times(store, "minutely") == [datetime(2026, 3, 2, 12, 10, tzinfo=UTC)]
    [record] = store.list_runs(job_id="minutely", statuses=[RunStatus.SKIPPED])
    assert (record.reason, record.fire_count) == ("coalesced", 10)
    assert (record.scheduled_at, record.last_fire_at) == (
        datetime(2026, 3, 2, 12, 0, tzinfo=UTC), datetime(2026, 3, 2, 12, 9, tzinfo=UTC),
    )  # fmt: skip


def test_catch_up_without_coalesce_runs_every_missed_fire_time(store: SQLStore, clock: FakeClock) -> None:
    scheduler, control = make(store, clock)
    control.add_job(every_minute(coalesce=False))
    clock.advance(minutes=5)
    assert scheduler.tick().runs == 6
    assert fire_times(store, "minutely") == [datetime(2026, 3, 2, 12, m, tzinfo=UTC) for m in range(6)]


def test_fire_times_beyond_the_grace_time_are_recorded_as_missed(store: SQLStore, clock: FakeClock) -> None:
    scheduler, control = make(store, clock)
    control.add_job(every_minute(coalesce=False, misfire_grace_seconds=150))
    clock.advance(minutes=10)
    scheduler.tick()
    # 12:08, 12:09 and 12:10 are within 150 s of 12:10; 12:00-12:07 are not
    assert fire_times(store, "minutely") == [datetime(2026, 3, 2, 12, m, tzinfo=UTC) for m in (8, 9, 10)]
    [missed] = store.list_runs(job_id="minutely", statuses=[RunStatus.SKIPPED])
    assert (missed.reason, missed.fire_count) == ("missed", 8)
    # "why didn't it run at 12:03?" is one query
    why = store.explain("minutely", datetime(2026, 3, 2, 12, 3, tzinfo=UTC))
    assert why is not None and why.status is RunStatus.SKIPPED and why.reason == "missed"
    ran = store.explain("minutely", datetime(2026, 3, 2, 12, 9, tzinfo=UTC))
    assert ran is not None and ran.status is RunStatus.PENDING


def test_a_new_scheduler_catches_up_after_a_restart(store: SQLStore, clock: FakeClock) -> None:
    first, control = make(store, clock)
    control.add_job(every_minute(coalesce=False))
    first.tick()
    clock.advance(minutes=3)
    second, _ = make(store, clock)  # the process restarted
    second.tick()
    assert fire_times(store, "minutely") == [datetime(2026, 3, 2, 12, m, tzinfo=UTC) for m in range(4)]


def test_unknown_handler_parks_the_job_and_it_resumes_when_the_handler_is_back(
    store: SQLStore, clock: FakeClock
) -> None:
    _, control = make(store, clock)
    control.add_job(every_minute())
    clock.advance(minutes=1)
    without, _ = make(store, clock, handlers={"sundial.log_message"})  # the plugin was removed
    assert without.tick().parked == 1
    parked = store.get_job("minutely")
    assert parked.parked_reason == "unknown handler 'test.noop'" and not parked.active
    assert store.list_runs(job_id="minutely") == []
    clock.advance(minutes=5)
    assert without.tick().jobs == 0  # parked jobs are not due
    scheduler, control = make(store, clock)  # the plugin is back
    assert [j.id for j in control.unpark()] == ["minutely"]
    [record] = store.list_runs(job_id="minutely", statuses=[RunStatus.SKIPPED])
    assert (record.reason, record.fire_count) == ("parked", 7)
    clock.advance(minutes=1)
    assert scheduler.tick().runs == 1


def test_pause_records_the_paused_fire_times_on_resume(store: SQLStore, clock: FakeClock) -> None:
    scheduler, control = make(store, clock)
    control.add_job(every_minute())
    scheduler.tick()
    control.pause("minutely")
    clock.advance(minutes=3, seconds=30)
    assert scheduler.tick().jobs == 0
    control.resume("minutely")
    [record] = store.list_runs(job_id="minutely", statuses=[RunStatus.SKIPPED])
    assert (record.reason, record.fire_count) == ("paused", 3)
    assert store.get_job("minutely").next_run_at == datetime(2026, 3, 2, 12, 4, tzinfo=UTC)


def test_one_shot_fires_once_and_finishes(store: SQLStore, clock: FakeClock) -> None:
    scheduler, control = make(store, clock)
    at = datetime(2026, 3, 2, 12, 0, 30, tzinfo=UTC)
    control.add_job(
        {"id": "switch", "name": "switch on", "handler": "test.noop", "type": "date", "run_at": at.isoformat()}
    )
    assert scheduler.tick().runs == 0
    clock.set(at)
    assert scheduler.tick().runs == 1
    assert store.get_job("switch").next_run_at is None
    clock.advance(hours=1)
    assert scheduler.tick().jobs == 0


def test_a_stale_scheduler_cannot_create_a_second_run_for_a_fire_time(store: SQLStore, clock: FakeClock) -> None:
    scheduler, control = make(store, clock)
    job = control.add_job(every_minute())
    scheduler.tick()
    # put the job back as a scheduler that read it before the first pass would see it
    stale = store.get_job("minutely").replace(next_run_at=job.next_run_at)
    store.update_job(stale, expected_version=stale.version, schedule=True)
    assert scheduler.tick().jobs == 1  # it is due again ...
    assert len(fire_times(store, "minutely")) == 1  # ... but the unique key keeps one run


def test_events_create_one_run_per_listening_job_and_ignore_repeats(store: SQLStore, clock: FakeClock) -> None:
    _, control = make(store, clock)
    for n in range(2):
        control.add_job({"id": f"on-barcode-{n}", "name": "bind", "handler": "test.noop", "type": "event",
                         "trigger_event": "barcode.activated"})  # fmt: skip
    assert len(control.emit("barcode.activated", {"code": "X1"}, "evt-1")) == 2
    assert control.emit("barcode.activated", {"code": "X1"}, "evt-1") == []
    assert len(control.emit("barcode.activated", {"code": "X2"}, "evt-2")) == 2  # same instant, new event
    runs = store.list_runs(job_id="on-barcode-0")
    assert sorted(r.payload["code"] for r in runs) == ["X1", "X2"]


def test_many_due_jobs_are_taken_in_batches(store: SQLStore, clock: FakeClock) -> None:
    scheduler, control = make(store, clock)
    scheduler.batch_size = 40
    for n in range(100):
        control.add_job(every_minute(id=f"job-{n:03}"))
    results = [scheduler.tick() for _ in range(4)]
    assert [r.jobs for r in results] == [40, 40, 20, 0]
    assert results[0].full and not results[2].full


@pytest.mark.parametrize("grace", [None, 30.0])
def test_interval_catch_up_is_bounded_per_pass(store: SQLStore, clock: FakeClock, grace: float | None) -> None:
    scheduler, control = make(store, clock)
    control.add_job({"id": "fast", "name": "fast", "handler": "test.noop", "type": "interval",
                     "interval_seconds": 1, "coalesce": False, "misfire_grace_seconds": grace})  # fmt: skip
    clock.advance(hours=1)  # 3600 missed fire times
    passes = 0
    while scheduler.tick().jobs:
        passes += 1
    assert passes == 4  # 1000 fire times a pass
    total = sum(r.fire_count for r in store.list_runs(job_id="fast", limit=10_000))
    assert total == 3600
    assert store.get_job("fast").next_run_at == clock.now() + timedelta(seconds=1)


def test_with_lookahead_runs_are_created_ahead_and_catch_up_still_coalesces(store: SQLStore, clock: FakeClock) -> None:
    control = Control(store, HANDLERS, clock)
    scheduler = Scheduler(store, HANDLERS, clock, batch_size=100, lookahead_seconds=90)
    control.add_job(every_minute(coalesce=True))
    clock.advance(minutes=5)  # down for five minutes; the next 90 s are planned ahead
    result = scheduler.tick()
    # missed 12:00..12:04 coalesce into one run at 12:05 (now); 12:06 is ahead and runs on its own
    assert fire_times(store, "minutely") == [datetime(2026, 3, 2, 12, m, tzinfo=UTC) for m in (5, 6)]
    [record] = store.list_runs(job_id="minutely", statuses=[RunStatus.SKIPPED])
    assert (record.reason, record.fire_count) == ("coalesced", 5)
    assert (result.runs, store.get_job("minutely").next_run_at) == (2, datetime(2026, 3, 2, 12, 7, tzinfo=UTC))
    ahead = store.list_runs(job_id="minutely", statuses=[RunStatus.PENDING])[0]
    assert ahead.available_at == datetime(2026, 3, 2, 12, 6, tzinfo=UTC)  # it is not claimable before its time
    [claim] = store.claim_many("w", 30, queues=["default"], statuses=[RunStatus.PENDING], limit=5, now=clock.now())
    assert claim.run.scheduled_at == datetime(2026, 3, 2, 12, 5, tzinfo=UTC)
    store.finish(claim, Outcome(ok=True))
    assert store.claim_many("w", 30, queues=["default"], statuses=[RunStatus.PENDING], limit=5, now=clock.now()) == []
    # a worker may take it within its own lookahead, to start it on time
    [early] = store.claim_many(
        "w", 30, queues=["default"], statuses=[RunStatus.PENDING], limit=5, now=clock.now(), ahead_seconds=60
    )
    assert early.run.scheduled_at == datetime(2026, 3, 2, 12, 6, tzinfo=UTC)


def test_pausing_withdraws_runs_created_ahead_of_their_time(store: SQLStore, clock: FakeClock) -> None:
    control = Control(store, HANDLERS, clock)
    scheduler = Scheduler(store, HANDLERS, clock, batch_size=100, lookahead_seconds=150)
    control.add_job(every_minute())
    scheduler.tick()  # 12:00 (now), 12:01 and 12:02 ahead
    assert len(fire_times(store, "minutely")) == 3
    clock.advance(seconds=30)
    control.pause("minutely")
    assert fire_times(store, "minutely") == [datetime(2026, 3, 2, 12, 0, tzinfo=UTC)]  # its time had come
    withdrawn = store.list_runs(job_id="minutely", statuses=[RunStatus.SKIPPED], newest_first=False)
    assert [(r.scheduled_at.minute, r.reason) for r in withdrawn] == [(1, "paused"), (2, "paused")]
