"""The embedded process for real: kill -9 mid-run and restart, SIGTERM with runs in flight."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sundial.control import Control
from sundial.run import RunStatus
from sundial.store.sqlalchemy import SQLStore
from support import wait_for

pytestmark = pytest.mark.slow
APP = Path(__file__).with_name("app.py")
UTC = UTC


class Process:
    """``tests/integration/app.py`` (server.py with the test handlers) in a child process."""

    def __init__(self, tmp: Path, **env: str) -> None:
        self.tmp = tmp
        self.trace = tmp / "trace.log"
        self.env = {
            **os.environ,
            "SUNDIAL_DATABASE_URL": f"sqlite:///{tmp / 'sundial.db'}",
            "SUNDIAL_LEASE_SECONDS": "2",
            "SUNDIAL_SWEEP_INTERVAL_SECONDS": "0.2",
            "SUNDIAL_MAX_IDLE_SECONDS": "0.2",
            "SUNDIAL_LOG_LEVEL": "INFO",
            "SUNDIAL_TEST_TRACE": str(self.trace),
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = (self.tmp / f"process-{self.starts}.log").open("wb")
        self.proc = subprocess.Popen([sys.executable, str(APP)], env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 30) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def lines(self, event: str) -> list[str]:
        if not self.trace.exists():
            return []
        return [line for line in self.trace.read_text().splitlines() if f" {event} " in line]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


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
