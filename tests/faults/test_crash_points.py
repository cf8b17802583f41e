"""A crash at each failpoint of the run path, in real processes: every run completes, once, after a restart.

The process to crash gets ``SUNDIAL_FAILPOINTS="<point>=crash"`` and kills
itself (SIGKILL) the first time a run reaches that point; a replacement
without the failpoint takes over. The history check then shows every run
final with one succeeded outcome by its last fence, and only the crash
explaining any second execution.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from harness import Cluster

from sundial.run import RunStatus
from support import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.rabbitmq, pytest.mark.usefixtures("no_default_jobs")]

RUNS = 4
WORK_QUEUE = "sundial.work.default"


def add_jobs(cluster: Cluster, seconds: float = 0.2) -> list[str]:
    """``RUNS`` one-shot jobs due together 2 s from now, so one scheduler pass creates (and relays) all."""
    at = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    ids = [f"once-{n}" for n in range(RUNS)]
    for job_id in ids:
        cluster.control.add_job({"id": job_id, "name": job_id, "handler": "test.tick", "type": "date", "run_at": at,
                                 "payload_template": {"seconds": seconds}})  # fmt: skip
    return ids


def statuses(cluster: Cluster) -> list[RunStatus]:
    return [r.status for r in cluster.store.list_runs(limit=1000)]


def messages(rabbit: Any) -> list[dict[str, Any]]:
    """The messages in the work queue now (looked at and put back)."""
    return rabbit.peek(WORK_QUEUE, 1000)


@pytest.mark.parametrize("point", ["scheduler.after_commit", "relay.before_publish", "relay.after_publish"])
def test_a_scheduler_crash_between_commit_and_publish_loses_no_run_and_runs_none_twice(
    cluster: Cluster, rabbit: Any, point: str, capsys: pytest.CaptureFixture[str]
) -> None:
    doomed = cluster.start("scheduler", SUNDIAL_FAILPOINTS=f"{point}=crash")
    add_jobs(cluster)
    cluster.crashed(doomed)
    # the runs are in SQL, none marked queued: the outbox still holds every one
    assert statuses(cluster) == [RunStatus.PENDING] * RUNS
    published_before = len(messages(rabbit))
    # confirmed by the broker before the crash only past the publish
    assert published_before == (RUNS if point == "relay.after_publish" else 0)
    restarted = time.time()
    cluster.start("scheduler")
    # published again (for after_publish: a second copy of each), and marked queued this time
    wait_for(lambda: statuses(cluster) == [RunStatus.QUEUED] * RUNS, timeout=30)
    published = wait_for(lambda: len(messages(rabbit)) == published_before + RUNS and published_before + RUNS)
    cluster.start("worker")
    cluster.drain(timeout=60)
    recovered = time.time() - restarted
    wait_for(lambda: not messages(rabbit), timeout=30)  # the duplicates were delivered and turned away
    history = cluster.history()
    report = cluster.check()
    report.assert_ok()
    assert report.executions == RUNS and report.duplicate_executions == 0  # ran once each
    assert all([a.status for a in history.attempts[r.id]] == ["succeeded"] for r in history.runs)
    cluster.report(f"crash[{point}]", report, capsys, messages_published=published, recovered=recovered)


@pytest.mark.parametrize(
    ("point", "ran_before_crash"),
    [("worker.after_claim", False), ("worker.after_handler", True), ("worker.after_commit", True)],
)
def test_a_worker_crash_on_the_run_path_redelivers_and_completes_each_run_once(
    cluster: Cluster, rabbit: Any, point: str, ran_before_crash: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster.start("scheduler")
    doomed = cluster.start("worker", SUNDIAL_FAILPOINTS=f"{point}=crash")
    add_jobs(cluster)
    cluster.crashed(doomed)
    crashed_at = time.time()
    before = cluster.history()
    ran = {e.run_id for e in before.executions}
    assert bool(ran) == ran_before_crash
    committed = {r.id for r in before.runs if r.status is RunStatus.SUCCEEDED}
    # RabbitMQ gives back what the dead worker had not acknowledged; none of it was acknowledged
    redelivered = wait_for(lambda: len(messages(rabbit)) == RUNS and RUNS, timeout=30)
    assert all(m["redelivered"] for m in messages(rabbit))
    survivor = cluster.start("worker")
    cluster.drain(timeout=60)
    recovered = time.time() - crashed_at
    wait_for(lambda: not messages(rabbit), timeout=30)
    history = cluster.history()
    report = cluster.check()
    report.assert_ok()
    attempts = {r.id: [a.status for a in history.attempts[r.id]] for r in history.runs}
    runs_of = {e.run_id: 0 for e in history.executions}
    for execution in history.executions:
        runs_of[execution.run_id] += 1
    # committed before the crash (worker.after_commit): the redelivery was turned away by the claim, it ran once
    assert committed if point == "worker.after_commit" else not committed
    assert all(attempts[run_id] == ["succeeded"] and runs_of[run_id] == 1 for run_id in committed)
    # the rest: a run the crashed worker had claimed waited for its lease to expire, and the sweeper
    # redelivered it; one it had not claimed yet went back with its message; the survivor completed each
    rest = {run_id: statuses for run_id, statuses in attempts.items() if run_id not in committed}
    assert all(statuses in (["lost", "succeeded"], ["succeeded"]) for statuses in rest.values()), attempts
    lost = [run_id for run_id, statuses in rest.items() if statuses[0] == "lost"]
    assert lost and report.redeliveries == len(lost)  # the crash did catch runs in flight
    # at-least-once: what the crashed worker had started and not committed ran again (allowed for its pid only)
    assert report.duplicate_executions == len(ran - committed)
    survivor_runs = {e.run_id for e in history.executions if e.pid == survivor.proc.pid}  # type: ignore[union-attr]
    assert survivor_runs == {r.id for r in history.runs} - committed
    cluster.report(f"crash[{point}]", report, capsys, redelivered_messages=redelivered, recovered=recovered)
