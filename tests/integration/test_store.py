"""The job store's contract, run on SQLite and on PostgreSQL."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, make_url, text

from sundial.abc import Claim
from sundial.clock import FakeClock
from sundial.control import Control
from sundial.errors import Conflict, NotFound
from sundial.run import RunStatus
from sundial.store.rows import Outcome
from sundial.store.sqlalchemy import SQLStore


@pytest.fixture
def control(store: SQLStore, clock: FakeClock) -> Control:
    return Control(store, {"test.noop"}, clock)


def add(control: Control, job_id: str = "j", **extra: object) -> None:
    control.add_job({"id": job_id, "name": job_id, "handler": "test.noop", "type": "date",
                     "run_at": "2026-03-02T12:00:00+00:00", **extra})  # fmt: skip


def pending_run(store: SQLStore, control: Control, job_id: str = "j", **extra: object) -> int:
    add(control, job_id, **extra)
    return control.run_now(job_id).id


def claim(store: SQLStore, worker: str = "w1", lease: float = 30.0) -> Claim:
    got = store.claim(worker, lease, statuses=(RunStatus.PENDING, RunStatus.QUEUED, RunStatus.RETRYING))
    assert got is not None
    return got


def test_jobs_round_trip_with_every_field(store: SQLStore, control: Control) -> None:
    control.add_job({"id": "full", "name": "Full", "handler": "test.noop", "type": "cron",
                     "cron_expression": "0 9 * * mon-fri", "timezone": "Asia/Shanghai",
                     "payload_template": {"nested": {"list": [1, 2.5, None, "ü"]}},
                     "retry_policy": {"max_retries": 7, "backoff": "fixed", "delay_seconds": 3,
                                      "max_delay_seconds": 30},
                     "misfire_grace_seconds": 120, "coalesce": False, "max_instances": 2, "overlap": "queue",
                     "timeout_seconds": 42, "jitter_seconds": 1.5, "queue": "mail", "priority": 5})  # fmt: skip
    job = store.get_job("full")
    assert job.trigger.timezone == "Asia/Shanghai" and job.trigger.cron_expression == "0 9 * * mon-fri"
    assert job.payload_template == {"nested": {"list": [1, 2.5, None, "ü"]}}
    assert (job.retry_policy.max_retries, job.retry_policy.backoff, job.retry_policy.max_delay_seconds) == (
        7,
        "fixed",
        30,
    )
    assert (job.misfire_grace_seconds, job.coalesce, job.max_instances, job.overlap) == (120, False, 2, "queue")
    assert (job.timeout_seconds, job.jitter_seconds, job.queue, job.priority) == (42, 1.5, "mail", 5)
    # 09:00 in Shanghai is 01:00 UTC; the clock is at Monday 2 March 12:00 UTC
    assert job.next_run_at == datetime(2026, 3, 3, 1, 0, tzinfo=UTC)
    assert job.next_run_at.tzinfo is UTC and job.version == 1


def test_duplicate_ids_and_missing_jobs_are_errors(store: SQLStore, control: Control) -> None:
    add(control)
    with pytest.raises(Conflict):
        add(control)
    with pytest.raises(NotFound):
        store.get_job("nope")
    with pytest.raises(NotFound):
        store.delete_job("nope")


def test_updates_are_checked_against_the_version(store: SQLStore, control: Control) -> None:
    add(control)
    job = store.get_job("j")
    control.update_job("j", {"name": "renamed"}, expected_version=1)
    with pytest.raises(Conflict, match="version 2, not 1"):
        control.update_job("j", {"name": "lost update"}, expected_version=1)
    assert store.get_job("j").name == "renamed" and store.get_job("j").created_at == job.created_at


def test_a_bad_update_stores_nothing(store: SQLStore, control: Control) -> None:
    add(control)
    before = store.get_job("j")
    with pytest.raises(Exception, match="cron_expression"):
        control.update_job("j", {"type": "cron", "run_at": None, "cron_expression": "not cron"})
    assert store.get_job("j") == before


def test_a_stale_fence_cannot_write_a_result(store: SQLStore, control: Control) -> None:
    run_id = pending_run(store, control)
    first = claim(store, "w1", lease=1)
    assert first.fence == 1 and first.run.attempt == 1
    # w1 stalls past its lease (leases run on the database's clock); the sweeper gives the run to w2
    time.sleep(1.1)
    assert store.expire_leases() == [run_id]
    second = claim(store, "w2")
    assert second.fence == 2 and second.run.attempt == 2
    assert store.finish(first, Outcome(ok=True)) is None  # the late result is rejected
    assert store.finish(second, Outcome(ok=True)) is RunStatus.SUCCEEDED
    assert store.get_run(run_id).worker == "w2"
    assert [a.status for a in store.attempts(run_id)] == ["lost", "succeeded"]


def test_renewal_keeps_a_lease_and_reports_lost_ones(store: SQLStore, control: Control) -> None:
    pending_run(store, control)
    held = claim(store, "w1", lease=30)
    assert store.renew([held], 30) == []
    store.release([held])
    assert store.renew([held], 30) == [held]


def test_a_renewal_in_a_batch_tells_each_stale_fence_from_the_current_one(store: SQLStore, control: Control) -> None:
    # the batch's (run, fence) pairs are matched pair by pair: the same runs under older fences are lost
    for job_id in ("a", "b", "c"):
        pending_run(store, control, job_id)
    stale = [claim(store, "w1", lease=1) for _ in range(3)]
    time.sleep(1.1)  # w1 stalls past its leases; the sweeper hands the runs on, and w2 takes them
    assert store.expire_leases() == sorted(c.run.id for c in stale)
    current = [claim(store, "w2") for _ in range(3)]
    assert {c.run.id for c in current} == {c.run.id for c in stale}
    assert all(c.fence == 2 for c in current)
    assert store.renew(stale, 3600) == stale
    for c in current:  # and a stale renewal extends no lease
        lease = store.get_run(c.run.id).lease_expires_at
        assert lease is not None and lease < store.now() + timedelta(seconds=60)
    assert store.renew([*stale, *current], 30) == stale
    assert store.renew(current, 30) == []


def test_a_running_run_is_not_claimed_twice(store: SQLStore, control: Control) -> None:
    pending_run(store, control)
    claim(store, "w1")
    assert store.claim("w2", 30, statuses=(RunStatus.PENDING,)) is None


def test_failure_with_retry_then_dead(store: SQLStore, control: Control) -> None:
    run_id = pending_run(store, control)
    held = claim(store)
    assert store.finish(held, Outcome(ok=False, error="boom", retry_in=0)) is RunStatus.RETRYING
    again = claim(store)
    assert store.finish(again, Outcome(ok=False, error="boom again")) is RunStatus.DEAD
    run = store.get_run(run_id)
    assert (run.status, run.failures, run.error) == (RunStatus.DEAD, 2, "boom again")
    assert run.finished_at is not None


def test_a_run_lost_three_times_is_dead(store: SQLStore, control: Control) -> None:
    run_id = pending_run(store, control)
    for _ in range(3):
        claim(store, lease=0.2)
        time.sleep(0.3)
        store.expire_leases()
    run = store.get_run(run_id)
    assert run.status is RunStatus.DEAD and "lease expired 3 times" in (run.error or "")


def test_logs_are_stored_with_the_outcome(store: SQLStore, control: Control) -> None:
    run_id = pending_run(store, control)
    held = claim(store)
    at = datetime(2026, 3, 2, 12, 0, 1, tzinfo=UTC)
    store.finish(held, Outcome(ok=True, logs=[(at, "INFO", "one"), (at, "ERROR", "two")]))
    assert [(line.level, line.message, line.at) for line in store.run_logs(run_id)] == [
        ("INFO", "one", at),
        ("ERROR", "two", at),
    ]


def test_prune_deletes_only_old_finished_runs(store: SQLStore, control: Control) -> None:
    old = pending_run(store, control, "old")
    held = claim(store)
    store.finish(held, Outcome(ok=True, logs=[(datetime.now(UTC), "INFO", "x")]))
    pending_run(store, control, "open")  # still pending: never pruned
    assert store.prune_history(datetime.now(UTC) - timedelta(days=1)) == 0
    assert store.prune_history(datetime.now(UTC) + timedelta(seconds=1)) == 1
    with pytest.raises(NotFound):
        store.get_run(old)
    assert store.run_logs(old) == [] and store.attempts(old) == []
    assert len(store.list_runs(job_id="open")) == 1


def test_deleting_a_job_deletes_its_history(store: SQLStore, control: Control) -> None:
    run_id = pending_run(store, control)
    store.delete_job("j")
    with pytest.raises(NotFound):
        store.get_run(run_id)


def test_the_database_clock_is_used(store: SQLStore) -> None:
    drift = abs((store.now() - datetime.now(UTC)).total_seconds())
    assert drift < 5  # same machine: the database and local clocks agree closely


@pytest.mark.postgres
def test_a_stalled_clock_reading_does_not_set_the_clock_behind(postgres_store: SQLStore) -> None:
    # the first reading's answer is read 0.5 s late (the process was busy elsewhere): kept, it would
    # put the store's clock 0.5 s behind for the next 10 s, and workers would start handlers that late
    calls = 0

    def stalled_once() -> float:
        nonlocal calls
        calls += 1
        return time.time() + (0.5 if calls == 2 else 0.0)

    offset = postgres_store._read_clock_offset(wall=stalled_once)
    assert abs(offset) < 0.05, offset  # one machine: the database's clock is the local one


@pytest.mark.postgres
def test_times_read_back_in_utc_whatever_the_servers_zone(
    postgres_store: SQLStore, postgres_url: str, clock: FakeClock
) -> None:
    # rows are not converted on PostgreSQL: the store's sessions must run in UTC themselves
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    database = make_url(postgres_url).database
    with admin.connect() as conn:
        conn.execute(text(f"ALTER DATABASE \"{database}\" SET timezone TO 'Pacific/Auckland'"))
    try:
        store = SQLStore(postgres_url)
        try:
            at = datetime(2026, 7, 1, 23, 30, 0, 123456, tzinfo=UTC)
            job = Control(store, {"test.noop"}, clock).add_job({"id": "tz", "name": "tz", "handler": "test.noop",
                                                                "type": "date", "run_at": at.isoformat()})  # fmt: skip
            stored = store.get_job(job.id)
            assert stored.trigger.run_at == at and stored.trigger.run_at.tzinfo is UTC
            assert stored.created_at is not None and stored.created_at.tzinfo is UTC
            with store.engine.connect() as conn:
                assert conn.execute(text("SHOW TimeZone")).scalar() == "UTC"
        finally:
            store.delete_job(job.id)
            store.close()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{database}" RESET timezone'))
        admin.dispose()


def test_a_retry_longer_than_the_broker_holds_waits_in_the_outbox(store: SQLStore, control: Control) -> None:
    run_id = pending_run(store, control)
    held = claim(store)
    status = store.finish(held, Outcome(ok=False, error="later", retry_in=7200, retry_from_outbox=True))
    assert status is RunStatus.PENDING
    run = store.get_run(run_id)
    assert run.available_at is not None and run.available_at > store.now() + timedelta(hours=1.9)
    assert [r.id for r in store.outbox(10)] == []  # not published before it is due


def test_a_late_confirm_does_not_mark_a_later_incarnation_queued(store: SQLStore, control: Control) -> None:
    run_id = pending_run(store, control)
    published = store.outbox(10)  # the relay publishes this version (fence 0) ...
    held = claim(store)  # ... a fast worker takes it and it dies ...
    store.finish(held, Outcome(ok=False, error="boom"))
    assert store.replay([run_id]) == [run_id]  # ... and is replayed: pending again
    assert store.mark_queued(published, store.now()) == 0  # the old confirm arrives late
    assert store.get_run(run_id).status is RunStatus.PENDING  # still in the outbox, to be published anew
    assert store.mark_queued(store.outbox(10), store.now()) == 1


@pytest.mark.postgres
def test_a_batch_being_published_is_skipped_by_another_relay(postgres_store: SQLStore, clock: FakeClock) -> None:
    # several schedulers each run a relay: without this, each published every pending run (2.5 copies
    # a run with three), and their workers spent most of their time turning the copies away
    store = postgres_store
    run_id = pending_run(store, Control(store, {"test.noop"}, clock))
    with store.publishing(10) as (runs, conn):
        assert [r.id for r in runs] == [run_id]
        with store.publishing(10) as (others, _):
            assert others == []  # the other relay's pass finds nothing to publish
        assert [r.id for r in store.outbox(10)] == [run_id]  # readers are not held up
        assert store.mark_queued(runs, store.now(), connection=conn) == 1
    assert store.get_run(run_id).status is RunStatus.QUEUED
    with store.publishing(10) as (runs, _):
        assert runs == []


def test_a_run_queued_too_long_goes_back_to_the_outbox(store: SQLStore, control: Control) -> None:
    run_id = pending_run(store, control)
    assert store.mark_queued(store.outbox(10), store.now() - timedelta(hours=2)) == 1
    assert store.requeue_stale(older_than_seconds=3 * 3600) == 0  # not yet
    assert store.requeue_stale(older_than_seconds=3600) == 1
    assert store.get_run(run_id).status is RunStatus.PENDING
    assert [r.id for r in store.outbox(10)] == [run_id]  # the relay publishes it again


def test_an_outcome_is_stored_exactly_whatever_its_text(store: SQLStore, control: Control) -> None:
    # on PostgreSQL a batch of outcomes travels as one JSON document (store/bulk.py): what could
    # break its encoding or its types comes back as it went
    run_id = pending_run(store, control)
    held = claim(store)
    tricky = 'quote " backslash \\ newline\n tab\t unicode ü 日本 emoji 🕰 {"json": [1, null]} \' %s :now'
    at = datetime(2026, 3, 2, 12, 0, 0, 123457, tzinfo=UTC)
    started = datetime(2026, 3, 2, 11, 59, 59, 999999, tzinfo=UTC)
    outcome = Outcome(ok=False, error=tricky, duration_seconds=0.1 + 0.2, logs=[(at, "WARNING", tricky)],
                      started_at=started)  # fmt: skip
    assert store.finish(held, outcome) is RunStatus.DEAD
    run = store.get_run(run_id)
    assert (run.error, run.duration_seconds, run.started_at) == (tricky, 0.1 + 0.2, started)
    [line] = store.run_logs(run_id)
    assert (line.at, line.level, line.message) == (at, "WARNING", tricky)
    [attempt] = store.attempts(run_id)
    assert (attempt.error, attempt.started_at, attempt.duration_seconds) == (tricky, started, 0.1 + 0.2)
