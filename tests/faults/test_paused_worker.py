"""A worker paused (SIGSTOP) past its lease, then resumed: another worker took the run over, the late result is refused.

This is the case fencing tokens exist for: the paused worker cannot know it
lost its lease, and finishes as if nothing happened. Its result must not be
the run's.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from harness import Cluster

from sundial.run import RunStatus
from support import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.rabbitmq, pytest.mark.usefixtures("no_default_jobs")]

LEASE_SECONDS = 2
HANDLER_SECONDS = 1


def test_a_worker_paused_past_its_lease_has_its_late_result_rejected(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    lease = {"SUNDIAL_LEASE_SECONDS": str(LEASE_SECONDS)}
    cluster.start("scheduler", **lease)
    # one delivery in hand fills its prefetch: RabbitMQ pushes the redelivery to the other worker, not into
    # the paused one's socket (where it would wait until RabbitMQ's heartbeat timeout drops that connection)
    paused = cluster.start("worker", SUNDIAL_CONCURRENCY="1", SUNDIAL_PREFETCH="1", **lease)
    cluster.control.add_job({"id": "slow", "name": "slow", "handler": "test.tick", "type": "date",
                             "run_at": datetime.now(UTC).isoformat(),
                             "payload_template": {"seconds": HANDLER_SECONDS}})  # fmt: skip
    wait_for(lambda: paused.lines("start"), timeout=30)
    with cluster.frozen(paused):
        stopped = time.time()
        taker = cluster.start("worker", **lease)
        # the sweeper expires the lease by the database's clock; the other worker claims the run under a new fence
        wait_for(lambda: cluster.store.list_runs(job_id="slow", statuses=[RunStatus.SUCCEEDED]), timeout=30)
        taken_over = time.time() - stopped
        assert not [e for e in cluster.history().executions if e.pid == paused.proc.pid and e.end]  # type: ignore[union-attr]
        resumed = time.time()  # read before the block sends SIGCONT: the resumed process may write at once
    # resumed, the paused worker's handler returns and it tries to record attempt 1: the fence refuses it
    wait_for(lambda: "result of attempt 1 rejected" in cluster.log(paused), timeout=30)
    cluster.drain()
    history = cluster.history()
    report = cluster.check()
    report.assert_ok()
    [run] = history.runs
    attempts = history.attempts[run.id]
    assert [(a.attempt, a.fence, a.status) for a in attempts] == [(1, 1, "lost"), (2, 2, "succeeded")]
    assert attempts[0].worker.endswith(f":{paused.proc.pid}") and attempts[1].worker.endswith(f":{taker.proc.pid}")  # type: ignore[union-attr]
    assert run.status is RunStatus.SUCCEEDED and run.fence == 2  # the run's outcome is the second attempt's
    late, second = sorted(history.executions, key=lambda e: e.attempt)
    assert late.pid == paused.proc.pid and late.end is not None and late.end >= resumed  # type: ignore[union-attr]
    assert second.pid == taker.proc.pid and second.end is not None and second.end < resumed  # type: ignore[union-attr]
    assert report.duplicate_executions == 1 and report.ended_but_lost == 1 and report.max_overlap == 0
    cluster.report(
        "paused-worker", report, capsys, lease=float(LEASE_SECONDS), taken_over_after=taken_over,
        late_result_after_resume=late.end - resumed,
    )  # fmt: skip
