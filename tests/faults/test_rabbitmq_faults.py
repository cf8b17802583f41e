"""Faults on the RabbitMQ path with real processes: a worker killed mid-run, the broker restarted under load."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from typing import Any

import pytest
from harness import Cluster, repair_dead_letter_supervisor

from sundial.run import RunStatus
from support import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.rabbitmq]


def one_shot(job_id: str, handler: str, **payload: Any) -> dict[str, Any]:
    return {"id": job_id, "name": job_id, "handler": handler, "type": "date",
            "run_at": datetime.now(UTC).isoformat(), "payload_template": payload}  # fmt: skip


def test_a_worker_killed_mid_handler_leaves_the_run_redelivered_and_completed(cluster: Cluster) -> None:
    start, control, store = cluster.start, cluster.control, cluster.store
    start("scheduler")
    doomed = start("worker")
    control.add_job(one_shot("slow", "test.sleep", seconds=2))
    wait_for(lambda: doomed.lines("start"), timeout=30)
    cluster.kill(doomed)
    survivor = start("worker")
    [run] = wait_for(lambda: store.list_runs(job_id="slow", statuses=[RunStatus.SUCCEEDED]), timeout=30)
    assert [a.status for a in store.attempts(run.id)] == ["lost", "succeeded"]
    assert len(survivor.lines("start")) == 2 and len(survivor.lines("end")) == 1


def test_a_broker_restart_under_load_loses_no_run(cluster: Cluster, capsys: pytest.CaptureFixture[str]) -> None:
    start, control, store = cluster.start, cluster.control, cluster.store
    start("scheduler")
    start("worker")
    ticks = [f"tick-{n}" for n in range(60)]
    for job_id in ticks:
        control.add_job({"id": job_id, "name": "tick", "handler": "test.tick", "type": "interval",
                         "interval_seconds": 1, "payload_template": {"seconds": 0}})  # fmt: skip
    wait_for(lambda: store.counts().get("succeeded", 0) >= 120, timeout=60)
    subprocess.run(["rabbitmqctl", "stop_app"], check=True, capture_output=True, timeout=120)
    try:
        wait_for(lambda: store.counts().get("pending", 0) >= 60, timeout=30)  # the outbox holds what comes due
    finally:
        subprocess.run(["rabbitmqctl", "start_app"], check=True, capture_output=True, timeout=120)
        # quorum queues come back a moment after the app: let them, so later tests find a whole broker
        subprocess.run(["rabbitmqctl", "await_startup"], check=True, capture_output=True, timeout=120)
        repair_dead_letter_supervisor()
    until = store.now()
    for job_id in ticks:
        control.pause(job_id)
    # everything created before, during and after the outage finishes once the broker is back
    cluster.drain(timeout=120)
    # the plugins' default jobs run in these processes too, on their own schedules: only the ticks are checked
    history = cluster.history(until=until, job_ids=ticks)
    report = cluster.check(until=until, job_ids=ticks)
    report.assert_ok()
    assert history.runs and all(r.status in (RunStatus.SUCCEEDED, RunStatus.SKIPPED) for r in history.runs)
    succeeded = {r.id for r in history.runs if r.status is RunStatus.SUCCEEDED}
    assert {e.run_id for e in history.executions} == succeeded  # every succeeded run really ran
    cluster.report("broker-restart", report, capsys)
