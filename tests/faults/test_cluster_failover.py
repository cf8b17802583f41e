"""Three schedulers and two workers under load lose a scheduler and a worker to ``kill -9``, and Redis for 10 s.

200 interval jobs fire every second (max instances 1); a tenth of them use
the Redis rate limiter, so they fail (and are retried) while Redis is down.
A third of the way in, the scheduler that created the most runs so far and a
worker get ``kill -9``; halfway, Redis is shut down for 10 s and started
again empty. Then every job is paused, everything drains, and the history
is checked (see ``history.py``).

``SUNDIAL_SOAK_SECONDS=600`` runs the same for longer, by hand: a round of
faults every 60 s, the killed processes replaced after each.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from datetime import datetime

import pytest
from harness import REDIS_URL, Cluster, RedisServer, runs_created_by
from history import first_after, largest_gap

from sundial.run import Attempt
from support import Process, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.rabbitmq]

JOBS = 200
REDIS_JOBS = 20
ROUND_SECONDS = 60.0
SOAK_SECONDS = float(os.environ.get("SUNDIAL_SOAK_SECONDS") or 0)
LEASE_SECONDS = 5
REDIS_DOWN_SECONDS = 10.0


def job(n: int) -> dict[str, object]:
    """Job ``n``: every second, a short handler; the first ``REDIS_JOBS`` need Redis and retry every second."""
    document: dict[str, object] = {
        "id": f"tick-{n:03d}", "name": "tick", "handler": "test.tick", "type": "interval", "interval_seconds": 1,
        "max_instances": 1, "payload_template": {"seconds": 0.02},
    }  # fmt: skip
    if n < REDIS_JOBS:
        document["payload_template"] = {"seconds": 0.02, "redis": True}
        document["retry_policy"] = {"max_retries": 40, "backoff": "fixed", "delay_seconds": 1}
    return document


def wait_running(process: Process) -> None:
    wait_for(lambda: "sundial running" in process.log_path.read_text(errors="replace"), timeout=60, interval=0.1)


def sleep_until(at: float) -> None:
    time.sleep(max(0.0, at - time.time()))


def ts(when: datetime | None) -> float:
    return when.timestamp() if when is not None else float("nan")


@pytest.mark.usefixtures("run_creators")
def test_three_schedulers_and_two_workers_survive_kill_9_and_a_redis_restart(
    cluster: Cluster, redis_key_prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster.env.update(
        SUNDIAL_REDIS_URL=REDIS_URL, SUNDIAL_REDIS_KEY_PREFIX=redis_key_prefix,
        SUNDIAL_LEASE_SECONDS=str(LEASE_SECONDS), SUNDIAL_CONCURRENCY="8",
    )  # fmt: skip
    schedulers = [cluster.start("scheduler") for _ in range(3)]
    workers = [cluster.start("worker") for _ in range(2)]
    for process in schedulers + workers:
        wait_running(process)
    redis_server = RedisServer()
    for n in range(JOBS):
        cluster.control.add_job(job(n))
    began = time.time()
    rounds = max(1, round((SOAK_SECONDS or ROUND_SECONDS) / ROUND_SECONDS))
    kills: list[tuple[float, Process, Process, str]] = []  # (when, scheduler, worker, runs each had created)
    outages: list[tuple[float, float]] = []
    try:
        for r in range(rounds):
            start = began + r * ROUND_SECONDS
            sleep_until(start + ROUND_SECONDS / 3)
            # the schedulers cooperate, so "the leader" is whichever has done the most: kill that one
            created = runs_created_by(cluster.store)
            alive = [s for s in schedulers if s.proc is not None and s.proc.poll() is None]
            leader = max(alive, key=lambda s: created.get(s.label, 0))
            worker = next(w for w in workers if w.proc is not None and w.proc.poll() is None)
            killed_at = time.time()
            cluster.kill(leader)
            cluster.kill(worker)
            shares = "/".join(str(created.get(s.label, 0)) for s in alive)
            kills.append((killed_at, leader, worker, shares))
            sleep_until(start + ROUND_SECONDS / 2)
            redis_server.stop()
            down = time.time()
            try:
                sleep_until(down + REDIS_DOWN_SECONDS)
            finally:
                redis_server.start()  # always: other tests and other sessions share this Redis
            outages.append((down, time.time()))
            if r + 1 < rounds:  # a soak keeps its fleet whole for the next round
                schedulers.append(cluster.start("scheduler"))
                workers.append(cluster.start("worker"))
        sleep_until(began + rounds * ROUND_SECONDS)
    finally:
        redis_server.start()
    until = cluster.store.now()
    for job_id in [f"tick-{n:03d}" for n in range(JOBS)]:
        cluster.control.pause(job_id)
    paused = time.time()
    cluster.drain(timeout=90)
    drained = time.time() - paused

    # the plugins' default jobs run too, on their own schedules: the check is about the ticks
    ticks = [f"tick-{n:03d}" for n in range(JOBS)]
    history = cluster.history(until=until, job_ids=ticks)
    report = cluster.check(until=until, job_ids=ticks)
    creations = sorted(ts(r.created_at) for r in history.runs)
    figures: dict[str, object] = {}
    for killed_at, leader, worker, shares in kills[:1]:
        # scheduling went on: the longest stretch after the kill in which no scheduler created a run
        figures["sched_gap_before_kill"] = largest_gap(creations, killed_at - 10, killed_at)[0]  # the usual rhythm
        figures["sched_gap_after_kill"] = largest_gap(creations, killed_at, killed_at + 10)[0]
        late = [ts(r.created_at) - ts(r.scheduled_at) for r in history.runs if killed_at <= ts(r.scheduled_at)]
        figures["run_created_late_max"] = max(late, default=0.0)  # negative: created ahead of its fire time
        assert worker.proc is not None
        held = _lost_by(history.attempts.values(), worker.proc.pid)
        finished = [ts(r.finished_at) for r in history.runs if r.id in held]
        figures["killed_worker_runs"] = len(held)
        figures["killed_worker_runs_done_after"] = max(finished, default=killed_at) - killed_at
        figures["killed_leader"] = f"{leader.label}(runs_created:{shares})"
    redis_runs = [e for e in history.executions if int(e.job_id.split("-")[1]) < REDIS_JOBS]
    for _down, up in outages[:1]:
        failed = {e.run_id for e in redis_runs if e.outcome == "redis-down"}
        figures["redis_failed_attempts"] = sum(1 for e in redis_runs if e.outcome == "redis-down")
        figures["redis_first_ok_after_restart"] = first_after(redis_runs, up)
        done = [ts(r.finished_at) for r in history.runs if r.id in failed and r.finished_at is not None]
        figures["redis_failed_runs_done_after"] = max(done, default=up) - up
    figures["drained_in"] = drained
    figures["wall"] = time.time() - began
    cluster.report(f"cluster-failover[{rounds * ROUND_SECONDS:.0f}s]", report, capsys, **figures)

    report.assert_ok()
    assert report.fires_expected >= JOBS * (rounds * ROUND_SECONDS - 5)  # the window really was covered
    assert report.max_overlap == 0
    # the faults really happened: the killed worker held runs that were redelivered, Redis outages failed runs
    assert figures["killed_worker_runs"] and figures["redis_failed_attempts"]


def _lost_by(attempts: Iterable[list[Attempt]], pid: int) -> set[int]:
    """Runs whose attempt by process ``pid`` the sweeper recorded as lost."""
    return {a.run_id for rows in attempts for a in rows if a.status == "lost" and a.worker.endswith(f":{pid}")}
