"""Dispatch through the live RabbitMQ: topology, confirms, retry tiers, dead letters, backpressure."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pika
import pytest

from sundial.brokers.rabbitmq import RETRY_TIERS, tier_for, tier_name, work_queue
from sundial.cli import queue_report
from sundial.config import Settings
from sundial.engine import Engine
from sundial.plugins.manager import load_plugins
from sundial.run import RunStatus
from sundial.store.rows import NewRun
from sundial.store.sqlalchemy import SQLStore
from support import Handlers, samples, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]

EngineFactory = Callable[..., Engine]


@pytest.fixture
def make_engine(postgres_url: str, postgres_store: SQLStore, rabbitmq_url: str) -> Iterator[EngineFactory]:
    engines: list[Engine] = []

    def make(handlers: Handlers, roles: tuple[str, ...] = ("scheduler", "worker"), **settings: Any) -> Engine:
        config = Settings(
            database_url=postgres_url,
            broker_url=rabbitmq_url,
            concurrency=2,
            lease_seconds=5,
            sweep_interval_seconds=0.5,
            max_idle_seconds=0.2,
            **settings,
        )
        engine = Engine(config, plugins=load_plugins(extra=[("t", handlers)], entry_points=False))
        engine.start(roles)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.stop(grace_seconds=1)


def now_job(job_id: str, handler: str = "t.record", **extra: Any) -> dict[str, Any]:
    return {"id": job_id, "name": job_id, "handler": handler, "type": "date",
            "run_at": datetime.now(UTC).isoformat(), **extra}  # fmt: skip


def finished(engine: Engine, job_id: str) -> list:
    return engine.store.list_runs(job_id=job_id, statuses=[RunStatus.SUCCEEDED, RunStatus.DEAD])


def test_tiers_are_chosen_so_a_delay_is_never_cut_short() -> None:
    assert [tier_for(d) for d in (0.1, 1, 4.9, 5, 29, 31, 7200)] == [1, 1, 1, 5, 5, 30, 3600]
    assert [tier_name(t) for t in RETRY_TIERS] == [
        "sundial.retry.1s", "sundial.retry.5s", "sundial.retry.30s",
        "sundial.retry.2m", "sundial.retry.10m", "sundial.retry.1h",
    ]  # fmt: skip


def test_topology_reads_well_in_the_management_ui(make_engine: EngineFactory, rabbit: Any) -> None:
    make_engine(Handlers(), queue_max_length=1234)
    queues = {q["name"]: q for q in wait_for(lambda: len(rabbit.queues()) >= 8 and rabbit.queues())}
    work = queues[work_queue("default")]
    assert work["type"] == "quorum" and work["durable"]
    assert work["arguments"]["x-max-length"] == 1234 and work["arguments"]["x-overflow"] == "reject-publish"
    for tier in RETRY_TIERS:
        args = queues[tier_name(tier)]["arguments"]
        assert args["x-message-ttl"] == tier * 1000
        assert args["x-dead-letter-exchange"] == "sundial.work"
        assert args["x-dead-letter-strategy"] == "at-least-once"
    assert queues["sundial.dead"]["type"] == "quorum"


def test_runs_go_through_rabbitmq_and_are_recorded(make_engine: EngineFactory, rabbit: Any) -> None:
    handlers = Handlers()
    engine = make_engine(handlers)
    for n in range(30):
        engine.control.add_job(now_job(f"job-{n}"))
    for n in range(30):
        [run] = wait_for(lambda n=n: finished(engine, f"job-{n}"))
        assert run.status is RunStatus.SUCCEEDED

    def published() -> int:
        stats = rabbit.call("GET", f"/exchanges/{rabbit.vhost}/sundial.work").get("message_stats") or {}
        return stats.get("publish_in", 0)

    wait_for(lambda: published() >= 30, timeout=20)  # management statistics refresh every few seconds
    assert sorted(run_id for run_id, _ in handlers.calls) == sorted({run_id for run_id, _ in handlers.calls})


def test_retry_tiers_really_delay_and_the_run_is_dead_after_max_retries(
    make_engine: EngineFactory, rabbit: Any
) -> None:
    engine = make_engine(Handlers())
    policy = {"max_retries": 2, "backoff": "fixed", "delay_seconds": 1}
    engine.control.add_job(now_job("doomed", "t.flaky", payload_template={"succeed_on": 99}, retry_policy=policy))
    [run] = wait_for(lambda: finished(engine, "doomed"), timeout=30)
    assert (run.status, run.attempt, run.failures) == (RunStatus.DEAD, 3, 3)
    attempts = engine.store.attempts(run.id)
    gaps = [(b.started_at - a.finished_at).total_seconds() for a, b in zip(attempts, attempts[1:])]
    # the fixed 1 s backoff is jittered to 0.5-1 s and rides the 1 s tier: never early, not much late
    assert all(0.5 <= gap < 3.0 for gap in gaps), gaps
    parked = wait_for(lambda: rabbit.peek("sundial.dead"), timeout=15)
    assert [json.loads(m["payload"])["run_id"] for m in parked] == [run.id]
    headers = parked[0]["properties"]["headers"]
    assert headers["x-sundial-job"] == "doomed" and headers["x-sundial-attempt"] == 3
    assert headers["x-sundial-handler"] == "t.flaky"
    assert headers["x-sundial-scheduled-at"] == run.scheduled_at.isoformat()
    assert headers["x-sundial-last-error"] == "RuntimeError: attempt 3 fails"


def test_replay_runs_a_dead_run_again(make_engine: EngineFactory) -> None:
    engine = make_engine(Handlers())
    engine.control.add_job(now_job("flaky", "t.flaky", payload_template={"succeed_on": 2},
                                   retry_policy={"max_retries": 0}))  # fmt: skip
    [run] = wait_for(lambda: finished(engine, "flaky"))
    assert run.status is RunStatus.DEAD
    assert [r.id for r in engine.dead_letters.runs()] == [run.id]
    assert engine.dead_letters.replay(job_id="flaky") == [run.id]
    wait_for(lambda: engine.store.get_run(run.id).status is RunStatus.SUCCEEDED)
    assert [a.status for a in engine.store.attempts(run.id)] == ["failed", "succeeded"]
    assert engine.dead_letters.runs() == []


def test_purge_takes_runs_off_the_list_and_empties_the_parking_queue(make_engine: EngineFactory, rabbit: Any) -> None:
    engine = make_engine(Handlers())
    engine.control.add_job(now_job("boom", "t.boom", retry_policy={"max_retries": 0}))
    [run] = wait_for(lambda: finished(engine, "boom"))
    wait_for(lambda: rabbit.peek("sundial.dead"), timeout=15)
    assert engine.dead_letters.purge(everything=True) == 1
    assert engine.dead_letters.runs() == [] and engine.store.get_run(run.id).status is RunStatus.DEAD
    assert rabbit.peek("sundial.dead") == []


def test_an_unreadable_message_is_parked_and_the_worker_goes_on(
    make_engine: EngineFactory, rabbit: Any, rabbitmq_url: str
) -> None:
    engine = make_engine(Handlers())
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
    channel = connection.channel()
    channel.confirm_delivery()
    for body in (b"not json", b'{"v": 1, "run_id": 987654321}'):
        channel.basic_publish("sundial.work", "default", body, pika.BasicProperties(delivery_mode=2))
    connection.close()
    parked = wait_for(lambda: len(rabbit.peek("sundial.dead")) == 2 and rabbit.peek("sundial.dead"), timeout=15)
    reasons = sorted(m["properties"]["headers"]["x-sundial-last-error"] for m in parked)
    assert reasons[0].startswith("undecodable message: not JSON")
    assert reasons[1] == "unknown run 987654321"
    engine.control.add_job(now_job("after"))
    wait_for(lambda: finished(engine, "after"))


def test_a_full_queue_keeps_runs_pending_until_there_is_room(make_engine: EngineFactory, rabbit: Any) -> None:
    handlers = Handlers()
    # a quorum queue applies its length limit to what it has committed, so a batch in
    # flight can overshoot it; small batches show the limit clearly
    scheduler = make_engine(handlers, roles=("scheduler",), queue_max_length=5, batch_size=2)
    for n in range(20):
        scheduler.control.add_job(now_job(f"job-{n}"))
    wait_for(lambda: scheduler.relay.backpressure)
    assert samples(scheduler.metrics, "sundial_relay_backpressure") == [({}, 1.0)]
    [(_, refused)] = samples(scheduler.metrics, "sundial_relay_refused_runs_total")
    assert refused > 0
    report = queue_report(scheduler)  # what `server.py status` shows an operator
    assert report["backpressure"] is True and report["work_queues"]["default"].endswith("/5")
    counts = scheduler.store.counts()
    assert 5 <= counts.get("queued", 0) < 20 and counts.get("pending", 0) > 0  # refused, kept, not dropped
    assert counts.get("queued", 0) + counts.get("pending", 0) == 20
    make_engine(handlers, roles=("worker",), queue_max_length=5)
    wait_for(lambda: scheduler.store.counts().get("succeeded") == 20, timeout=30)
    assert len(handlers.calls) == 20
    assert not scheduler.relay.backpressure
    assert samples(scheduler.metrics, "sundial_relay_backpressure") == [({}, 0.0)]
    assert queue_report(scheduler) == {"work_queues": {"default": "0/5"}, "backpressure": False}


def test_runs_are_dispatched_ahead_and_start_on_time_never_early(make_engine: EngineFactory) -> None:
    engine = make_engine(Handlers(), lookahead_seconds=1.0)
    at = datetime.now(UTC) + timedelta(seconds=2.5)
    for n in range(20):
        engine.control.add_job({"id": f"on-time-{n}", "name": "on time", "handler": "t.record", "type": "date",
                                "run_at": at.isoformat()})  # fmt: skip
    done = lambda: [r for n in range(20) for r in finished(engine, f"on-time-{n}")]  # noqa: E731
    runs = wait_for(lambda: len(found := done()) == 20 and found)
    assert all(r.status is RunStatus.SUCCEEDED for r in runs)
    assert all(r.created_at < at for r in runs)  # created (and dispatched) ahead of their time
    lags = sorted((r.started_at - at).total_seconds() for r in runs)
    assert lags[0] >= 0, lags  # never before the fire time
    assert lags[-1] < 0.5, lags  # and on time (the benchmark measures how close)


def test_a_run_that_falls_due_while_its_early_delivery_is_turned_away_is_kept(
    make_engine: EngineFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a run published ahead, whose job is busy, is turned away by the claim; if it falls due before
    # the worker looks at it again, its delivery must be claimed again, not acknowledged as a
    # duplicate: that would leave the run queued with no message to carry it (seen under load)
    engine = make_engine(Handlers(), roles=("worker",), lookahead_seconds=2.0)
    store = engine.store
    job = engine.control.add_job({"id": "busy", "name": "busy", "handler": "t.record", "type": "date",
                                  "run_at": "2099-01-01T00:00:00Z"})  # fmt: skip
    now = store.now()
    store.add_runs(job, [NewRun(scheduled_at=now - timedelta(seconds=1), available_at=now - timedelta(seconds=1))])
    holder = store.claim("elsewhere:1", 60, statuses=(RunStatus.PENDING,))  # the job is busy on another worker
    assert holder is not None
    due = now + timedelta(seconds=0.3)
    store.add_runs(job, [NewRun(scheduled_at=due, available_at=due)])
    real_get_runs = store.get_runs

    def get_runs_late(run_ids: Any) -> Any:
        time.sleep(0.5)  # the worker is slow to look again: by then the run is due
        return real_get_runs(run_ids)

    monkeypatch.setattr(store, "get_runs", get_runs_late)
    [early] = store.outbox(10, ahead_seconds=5)
    assert engine.broker.publish([early]).confirmed == [early.id]
    store.mark_queued([early], store.now())
    # the job is still busy when the run is due: it is recorded as skipped, not left queued
    run = wait_for(lambda: (r := store.get_run(early.id)).status is not RunStatus.QUEUED and r, timeout=10)
    assert (run.status, run.reason) == (RunStatus.SKIPPED, "busy")


def test_connections_the_broker_closes_are_reopened_and_no_run_is_lost_or_doubled(
    make_engine: EngineFactory, rabbit: Any
) -> None:
    handlers = Handlers()
    engine = make_engine(handlers)
    for n in range(20):
        engine.control.add_job({"id": f"tick-{n}", "name": "tick", "handler": "t.record", "type": "interval",
                                "interval_seconds": 0.5})  # fmt: skip
    succeeded = lambda: engine.store.counts().get("succeeded", 0)  # noqa: E731
    wait_for(lambda: succeeded() >= 60, timeout=30)
    vhost = quote(rabbit.vhost, safe="")
    before = {c["name"] for c in wait_for(lambda: rabbit.call("GET", f"/vhosts/{vhost}/connections"))}
    for name in before:  # what an operator's "force close" in the UI, or a network cut, does
        rabbit.call("DELETE", f"/connections/{quote(name, safe='')}")
    at_cut = succeeded()
    wait_for(lambda: succeeded() >= at_cut + 60, timeout=30)  # the relay and the worker carried on
    # new connections, opened by Sundial itself (the management API lists them after a moment)
    wait_for(lambda: {c["name"] for c in rabbit.call("GET", f"/vhosts/{vhost}/connections")} - before, timeout=30)
    for n in range(20):
        engine.control.pause(f"tick-{n}")
    open_runs = [RunStatus.PENDING, RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.RETRYING]
    wait_for(lambda: not engine.store.list_runs(statuses=open_runs), timeout=30)
    runs = engine.store.list_runs(limit=100_000)
    done = {r.id for r in runs if r.status is RunStatus.SUCCEEDED}
    executed = [run_id for run_id, _ in handlers.calls]
    assert sorted(executed) == sorted(done)  # every run ran, and ran once
    assert all(r.status in (RunStatus.SUCCEEDED, RunStatus.SKIPPED) for r in runs)


def most_at_once(spans: list[tuple[str, float, float]], job: str) -> int:
    """The most executions of ``job`` that ran at the same time."""
    edges = sorted([(start, 1) for j, start, _ in spans if j == job] + [(end, -1) for j, _, end in spans if j == job])
    running = peak = 0
    for _, step in edges:  # an end sorts before a start at the same instant
        running += step
        peak = max(peak, running)
    return peak


def test_queued_jobs_never_overlap_across_workers_with_redis_or_without(
    make_engine: EngineFactory, private_redis: Any
) -> None:
    handlers = Handlers()
    first = make_engine(handlers, redis_url=private_redis.url, redis_key_prefix="t:")
    second = make_engine(handlers, roles=("worker",), redis_url=private_redis.url, redis_key_prefix="t:")
    for job_id, instances in (("serial", 1), ("pair", 2)):
        first.control.add_job({"id": job_id, "name": job_id, "handler": "t.span", "type": "interval",
                               "interval_seconds": 1, "max_instances": instances, "overlap": "queue",
                               "payload_template": {"seconds": 1.3}})  # fmt: skip
    time.sleep(3)
    private_redis.stop()  # the store alone decides now
    time.sleep(2.5)
    assert not first.locks.up  # type: ignore[union-attr]
    private_redis.start()  # back, empty
    time.sleep(2.5)
    for job_id in ("serial", "pair"):
        first.control.pause(job_id)
    open_runs = [RunStatus.PENDING, RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.RETRYING]
    wait_for(lambda: not first.store.list_runs(statuses=open_runs), timeout=60)
    assert most_at_once(handlers.spans, "serial") == 1
    assert most_at_once(handlers.spans, "pair") == 2
    runs = first.store.list_runs(limit=10_000)
    assert {r.reason for r in runs if r.status is RunStatus.SKIPPED} <= {"paused"}  # queued, never skipped as busy
    assert sorted(run_id for run_id, _ in handlers.calls) == sorted(
        r.id for r in runs if r.status is RunStatus.SUCCEEDED
    )
    held = [v for engine in (first, second) for _, v in samples(engine.metrics, "sundial_lock_busy_deliveries_total")]
    assert sum(held) > 0  # Redis told workers a job was busy without asking the store
    assert first.locks.up  # type: ignore[union-attr]
