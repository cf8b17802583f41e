"""The embedded process for real: kill -9 mid-run and restart, SIGTERM with runs in flight."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sundial.control import Control
from sundial.run import RunStatus
from sundial.store.sqlalchemy import SQLStore
from support import Process, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def process(tmp_path: Path) -> Iterator[Process]:
    proc = Process(tmp_path)
    yield proc
    proc.stop()


def control_for(process: Process) -> tuple[SQLStore, Control]:
    store = SQLStore(process.env["SUNDIAL_DATABASE_URL"])
    store.migrate()
    return store, Control(store, {"test.sleep", "test.record"}, store)


def one_shot(job_id: str, handler: str, at: datetime, **payload: Any) -> dict[str, Any]:
    return {"id": job_id, "name": job_id, "handler": handler, "type": "date", "run_at": at.isoformat(),
            "payload_template": payload, "timeout_seconds": 60}  # fmt: skip


def test_kill_9_mid_run_loses_nothing(process: Process) -> None:
    store, control = control_for(process)
    now = datetime.now(UTC)
    control.add_job(one_shot("slow", "test.sleep", now, seconds=2.5))
    for n in range(10):  # these fall due while the process is dead
        control.add_job(one_shot(f"due-{n}", "test.record", now + timedelta(seconds=2)))
    process.start()
    wait_for(lambda: process.lines("start"))
    process.signal(signal.SIGKILL)
    process.wait()
    assert process.lines("end") == []  # it really died mid-run
    time.sleep(2.5)

    process.start()
    [slow] = wait_for(lambda: store.list_runs(job_id="slow", statuses=[RunStatus.SUCCEEDED]))
    for n in range(10):
        wait_for(lambda n=n: store.list_runs(job_id=f"due-{n}", statuses=[RunStatus.SUCCEEDED]))
    process.signal(signal.SIGTERM)
    assert process.wait() == 0

    assert [a.status for a in store.attempts(slow.id)] == ["lost", "succeeded"]
    assert (slow.attempt, slow.lost) == (2, 1)
    assert len(process.lines("start")) == 2 and len(process.lines("end")) == 1
    assert len(process.lines("ran")) == 10  # each due run ran exactly once
    store.close()


def test_sigterm_lets_the_run_in_flight_finish(process: Process) -> None:
    store, control = control_for(process)
    control.add_job(one_shot("slow", "test.sleep", datetime.now(UTC), seconds=1.5))
    process.start()
    wait_for(lambda: process.lines("start"))
    process.signal(signal.SIGTERM)
    assert process.wait() == 0
    [run] = store.list_runs(job_id="slow")
    assert run.status is RunStatus.SUCCEEDED
    assert len(process.lines("end")) == 1
    store.close()


def test_sigterm_past_the_grace_period_gives_the_run_back(process: Process) -> None:
    process.env["SUNDIAL_SHUTDOWN_GRACE_SECONDS"] = "0.3"
    store, control = control_for(process)
    control.add_job(one_shot("slow", "test.sleep", datetime.now(UTC), seconds=4))
    process.start()
    wait_for(lambda: process.lines("start"))
    process.signal(signal.SIGTERM)
    assert process.wait() == 0
    [run] = store.list_runs(job_id="slow")
    assert run.status is RunStatus.PENDING  # back in the queue, not lost and not failed
    assert [a.status for a in store.attempts(run.id)] == ["released"]

    process.env["SUNDIAL_SHUTDOWN_GRACE_SECONDS"] = "30"
    process.start()
    wait_for(lambda: store.get_run(run.id).status is RunStatus.SUCCEEDED)
    process.signal(signal.SIGINT)
    assert process.wait() == 0
    store.close()


def test_with_process_isolation_kill_9_of_the_worker_leaves_no_handler_running(tmp_path: Path) -> None:
    process = Process(tmp_path, SUNDIAL_HANDLER_ISOLATION="process")
    store, control = control_for(process)
    control.add_job(one_shot("slow", "test.sleep", datetime.now(UTC), seconds=30))
    process.start()
    try:
        [line] = wait_for(lambda: process.lines("start"))
        child = int(line.split("pid=")[1].split()[0])
        assert process.proc is not None and child != process.proc.pid  # the handler ran in a child of its own
        process.signal(signal.SIGKILL)
        process.wait()

        def gone() -> bool:
            try:
                os.kill(child, 0)
            except ProcessLookupError:
                return True
            return False

        wait_for(gone, timeout=10)  # it died with its worker: no orphan goes on with the run
    finally:
        process.stop()
        store.close()
