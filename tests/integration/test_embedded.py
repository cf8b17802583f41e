"""The embedded default end to end: scheduler, store-backed broker and worker threads in one process."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sundial.config import Settings
from sundial.engine import Engine
from sundial.plugins.manager import load_plugins
from sundial.run import RunStatus
from support import Handlers, wait_for


@pytest.fixture
def handlers() -> Handlers:
    return Handlers()


@pytest.fixture
def engine(tmp_path: Path, handlers: Handlers) -> Iterator[Engine]:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'embedded.db'}",
        concurrency=3,
        lease_seconds=5,
        sweep_interval_seconds=0.2,
        max_idle_seconds=0.2,
    )
    engine = Engine(settings, plugins=load_plugins(extra=[("t", handlers)], entry_points=False))
    engine.start()
    yield engine
    engine.stop(grace_seconds=1)


def finished(engine: Engine, job_id: str) -> list:
    done = (RunStatus.SUCCEEDED, RunStatus.DEAD)
    return engine.store.list_runs(job_id=job_id, statuses=list(done))


def test_a_job_runs_and_its_logs_are_stored(engine: Engine, handlers: Handlers) -> None:
    engine.control.add_job({"id": "hello", "name": "hello", "handler": "t.record", "type": "interval",
                            "interval_seconds": 0.3, "payload_template": {"greeting": "hi"}})  # fmt: skip
    runs = wait_for(lambda: len(finished(engine, "hello")) >= 3 and finished(engine, "hello"))
    assert all(r.status is RunStatus.SUCCEEDED and r.attempt == 1 for r in runs)
    logs = engine.store.run_logs(runs[0].id)
    assert [line.message for line in logs] == ["payload {'greeting': 'hi'}"]
    assert engine.store.get_job("hello").last_executed_at is not None


def test_one_shot_starts_within_a_second_of_its_time(engine: Engine, handlers: Handlers) -> None:
    at = (datetime.now(UTC) + timedelta(seconds=1.5)).replace(microsecond=0) + timedelta(seconds=1)
    engine.control.add_job({"id": "switch", "name": "feature on", "handler": "t.record", "type": "date",
                            "run_at": at.isoformat()})  # fmt: skip
    [run] = wait_for(lambda: finished(engine, "switch"))
    assert run.scheduled_at == at
    assert run.started_at is not None
    lag = (run.started_at - at).total_seconds()
    assert 0 <= lag < 1.0, lag


def test_failures_are_retried_with_the_jobs_policy(engine: Engine, handlers: Handlers) -> None:
    engine.control.add_job({"id": "flaky", "name": "flaky", "handler": "t.flaky", "type": "date",
                            "run_at": datetime.now(UTC).isoformat(), "payload_template": {"succeed_on": 3},
                            "retry_policy": {"max_retries": 3, "backoff": "fixed", "delay_seconds": 0.1}})  # fmt: skip
    [run] = wait_for(lambda: finished(engine, "flaky"))
    assert (run.status, run.attempt, run.failures) == (RunStatus.SUCCEEDED, 3, 2)
    attempts = engine.store.attempts(run.id)
    assert [a.status for a in attempts] == ["failed", "failed", "succeeded"]
    assert attempts[0].error == "RuntimeError: attempt 1 fails"


def test_a_run_is_dead_when_retries_are_exhausted(engine: Engine, handlers: Handlers) -> None:
    engine.control.add_job({"id": "doomed", "name": "doomed", "handler": "t.flaky", "type": "date",
                            "run_at": datetime.now(UTC).isoformat(), "payload_template": {"succeed_on": 99},
                            "retry_policy": {"max_retries": 2, "backoff": "exponential",
                                             "delay_seconds": 0.05}})  # fmt: skip
    [run] = wait_for(lambda: finished(engine, "doomed"))
    assert (run.status, run.attempt, run.failures) == (RunStatus.DEAD, 3, 3)
    assert run.error == "RuntimeError: attempt 3 fails"


def test_a_hung_handler_is_stopped_at_its_timeout_and_frees_its_slot(engine: Engine, handlers: Handlers) -> None:
    for n in range(4):  # more hung runs than worker threads
        engine.control.add_job({"id": f"hang-{n}", "name": "hang", "handler": "t.hang", "type": "date",
                                "run_at": datetime.now(UTC).isoformat(), "timeout_seconds": 0.3,
                                "retry_policy": {"max_retries": 0}})  # fmt: skip
    for n in range(4):
        [run] = wait_for(lambda n=n: finished(engine, f"hang-{n}"))
        assert run.status is RunStatus.DEAD and run.error == "timed out after 0.3s"


def test_a_handler_raising_base_exception_fails_the_run_not_the_worker(engine: Engine, handlers: Handlers) -> None:
    engine.control.add_job({"id": "boom", "name": "boom", "handler": "t.boom", "type": "date",
                            "run_at": datetime.now(UTC).isoformat(), "retry_policy": {"max_retries": 0}})  # fmt: skip
    [run] = wait_for(lambda: finished(engine, "boom"))
    assert run.error == "KeyboardInterrupt: a handler that raises BaseException"
    engine.control.add_job({"id": "after", "name": "after", "handler": "t.record", "type": "date",
                            "run_at": datetime.now(UTC).isoformat()})  # fmt: skip
    wait_for(lambda: finished(engine, "after"))


def test_overlap_forbidden_job_skips_a_fire_time_while_busy(engine: Engine, handlers: Handlers) -> None:
    engine.control.add_job({"id": "long", "name": "long", "handler": "t.hang", "type": "interval",
                            "interval_seconds": 0.25, "timeout_seconds": 1.2, "max_instances": 1,
                            "overlap": "skip", "retry_policy": {"max_retries": 0}})  # fmt: skip
    skipped = wait_for(lambda: engine.store.list_runs(job_id="long", statuses=[RunStatus.SKIPPED]))
    assert skipped[0].reason == "busy"
    running = engine.store.list_runs(job_id="long", statuses=[RunStatus.RUNNING])
    assert len(running) <= 1
    engine.control.pause("long")


def test_the_builtin_housekeeping_job_is_installed_and_prunes(engine: Engine) -> None:
    job = engine.store.get_job("sundial.prune_run_history")
    assert job.trigger.cron_expression == "15 3 * * *"
    engine.control.add_job({"id": "hello", "name": "hello", "handler": "t.record", "type": "date",
                            "run_at": datetime.now(UTC).isoformat()})  # fmt: skip
    wait_for(lambda: finished(engine, "hello"))
    engine.control.update_job("sundial.prune_run_history", {"payload_template": {"keep_days": 1}})
    # age the finished run by two days, then prune
    from sundial.store import tables

    with engine.store.engine.begin() as conn:
        conn.execute(tables.runs.update().values(finished_at=datetime.now(UTC) - timedelta(days=2)))
    run = engine.control.run_now("sundial.prune_run_history")
    wait_for(lambda: engine.store.get_run(run.id).status is RunStatus.SUCCEEDED)
    assert finished(engine, "hello") == []
    assert "deleted 1 runs" in engine.store.run_logs(run.id)[0].message


def test_runs_taken_ahead_of_a_free_thread_start_their_timeout_with_their_handler(
    tmp_path: Path, handlers: Handlers
) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'ahead.db'}", concurrency=1, prefetch=4, max_idle_seconds=0.2
    )
    engine = Engine(settings, plugins=load_plugins(extra=[("t", handlers)], entry_points=False))
    engine.start()
    try:
        at = datetime.now(UTC).isoformat()
        for n in range(3):  # 3 x 0.6 s in one thread: the last waits 1.2 s, longer than its 1 s timeout
            engine.control.add_job({"id": f"slow-{n}", "name": "slow", "handler": "t.sleep", "type": "date",
                                    "run_at": at, "timeout_seconds": 1.0,
                                    "payload_template": {"seconds": 0.6}})  # fmt: skip
        done = lambda: [r for n in range(3) for r in finished(engine, f"slow-{n}")]  # noqa: E731
        runs = wait_for(lambda: len(found := done()) == 3 and found)
    finally:
        engine.stop(grace_seconds=1)
    assert [r.status for r in runs] == [RunStatus.SUCCEEDED] * 3
    starts = sorted(a.started_at for r in runs for a in engine.store.attempts(r.id))
    assert len(starts) == 3  # one attempt each: none timed out and ran again
    # one thread ran them one after another: the last started 1.2 s after the first, past its 1 s timeout
    assert (starts[-1] - starts[0]).total_seconds() >= 1.1
