"""The fault suite's harness: a cluster of real Sundial processes on PostgreSQL and RabbitMQ, and Redis.

Every process of a test appends to one trace file (see ``history.py``); the
cluster notes the faults a test causes through it (``kill``, ``freeze``,
``crashed``), so the history check can tell an execution a fault explains
from one nothing does.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis
from history import Faults, History, Report, check
from sqlalchemy import text

from sundial.control import Control
from sundial.run import OPEN_STATUSES
from sundial.store.sqlalchemy import SQLStore
from support import Process, wait_for

REDIS_URL = os.environ.get("SUNDIAL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
HANDLERS = {"test.sleep", "test.record", "test.tick"}


class Cluster:
    """Scheduler and worker processes of one test, sharing PostgreSQL, a RabbitMQ vhost and a trace file."""

    def __init__(self, tmp: Path, store: SQLStore, env: dict[str, str]) -> None:
        self.tmp = tmp
        self.store = store
        self.env = env
        self.trace = tmp / "trace.log"
        self.control = Control(store, HANDLERS, store)
        self.faults = Faults()
        self.processes: list[Process] = []

    def start(self, *args: str, **extra: str) -> Process:
        """Start ``app.py *args`` with the cluster's settings and ``extra`` variables."""
        process = Process(self.tmp, *args, **{**self.env, **extra})
        process.label = f"{'-'.join(args)}-{len(self.processes) + 1}"
        process.trace = self.trace  # one trace for every process
        # the database sees the process under its label (PGAPPNAME), so a test can tell who wrote what
        process.env.update(SUNDIAL_TEST_TRACE=str(self.trace), PGAPPNAME=process.label)
        process.start()
        self.processes.append(process)
        return process

    def kill(self, process: Process) -> None:
        """``kill -9`` a process, noted as a fault."""
        assert process.proc is not None
        process.signal(signal.SIGKILL)
        self.faults.killed(process.proc.pid, time.time())
        process.wait()

    @contextlib.contextmanager
    def frozen(self, process: Process) -> Iterator[None]:
        """SIGSTOP a process for the block, then SIGCONT it; noted as a fault."""
        assert process.proc is not None
        process.signal(signal.SIGSTOP)
        stopped = time.time()
        try:
            yield
        finally:
            process.signal(signal.SIGCONT)
            self.faults.froze(process.proc.pid, stopped, time.time())

    def crashed(self, process: Process, timeout: float = 30) -> None:
        """Wait for a process to kill itself at a failpoint (SIGKILL), noted as a fault."""
        assert process.proc is not None
        assert process.wait(timeout) == -signal.SIGKILL, process.log_path.read_text()[-3000:]
        self.faults.crashed(process.proc.pid, time.time())

    def open_runs(self) -> int:
        """Runs not yet in a final state."""
        return len(self.store.list_runs(statuses=list(OPEN_STATUSES), limit=100_000))

    def drain(self, timeout: float = 60) -> None:
        """Wait until every run reached a final state; the failure names the runs still open."""
        try:
            wait_for(lambda: self.open_runs() == 0, timeout=timeout, interval=0.2)
        except AssertionError as e:
            still = self.store.list_runs(statuses=list(OPEN_STATUSES), limit=20)
            shown = ", ".join(f"{r.id}:{r.job_id}:{r.status.value}:attempt {r.attempt}" for r in still)
            raise AssertionError(f"{e}; {self.open_runs()} open, such as {shown}") from None

    def history(self, **load: Any) -> History:
        """The store's and the trace's history of this test, with the faults caused."""
        return History.load(self.store, self.trace, self.faults, **load)

    def check(self, **load: Any) -> Report:
        """``check`` the history (see ``history.py``)."""
        return check(self.history(**load))

    def report(self, name: str, report: Report, capsys: Any, **figures: object) -> None:
        """Print one line of figures for ``name`` (shown with ``-s``, and in CI's log even without)."""
        extra = "".join(f" {key}={_figure(value)}" for key, value in figures.items())
        with capsys.disabled():
            print(f"\nFAULTS {name}: {report.summary()}{extra}")

    def log(self, process: Process) -> str:
        return process.log_path.read_text(errors="replace")

    def stop(self) -> None:
        for process in self.processes:
            if process.proc is not None and process.proc.poll() is None:
                process.signal(signal.SIGCONT)  # a frozen process would not die of SIGKILL before it
            process.stop()


def runs_created_by(store: SQLStore) -> dict[str, int]:
    """Runs inserted so far by each process label (needs ``run_creators``)."""
    with store.engine.connect() as conn:
        rows = conn.execute(text("SELECT faults_created_by, count(*) FROM sundial_runs GROUP BY 1")).all()
    return {str(label): int(n) for label, n in rows}


# -- RabbitMQ ------------------------------------------------------------------------------


def rabbitmqctl_eval(expression: str) -> str:
    done = subprocess.run(["rabbitmqctl", "eval", expression], check=True, capture_output=True, text=True, timeout=60)
    return done.stdout.strip().splitlines()[-1]


def repair_dead_letter_supervisor() -> None:
    """Undo a RabbitMQ 3.10 bug: ``start_app`` does not restart ``rabbit_fifo_dlx_sup``.

    Without it no quorum queue with at-least-once dead-lettering can be
    declared (the channel dies with INTERNAL_ERROR) until the node restarts.
    Detected, not assumed, so a fixed RabbitMQ needs no repair.
    """
    if rabbitmqctl_eval("whereis(rabbit_fifo_dlx_sup).") == "undefined":
        assert rabbitmqctl_eval("rabbit_sup:start_restartable_child(rabbit_fifo_dlx_sup).") == "ok"


# -- Redis ---------------------------------------------------------------------------------


class RedisServer:
    """The Redis at ``REDIS_URL``, stopped and started again the way it was running (empty, no persistence)."""

    def __init__(self, url: str = REDIS_URL) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=2)
        self.errors: tuple[type[Exception], ...] = (redis.RedisError, OSError)
        config = self.client.config_get("*")
        # what it was started with, read back: the restart needs no path of this machine written down
        self.argv = [
            "redis-server", "--daemonize", "yes", "--port", str(config["port"]), "--bind", config["bind"],
            "--save", "", "--appendonly", "no", "--dir", config["dir"], "--logfile", config["logfile"],
        ]  # fmt: skip

    def answers(self) -> bool:
        try:
            return bool(self.client.ping())
        except self.errors:
            return False

    def stop(self) -> None:
        """``SHUTDOWN NOSAVE``: Redis is gone, and comes back empty."""
        with contextlib.suppress(*self.errors):  # the connection drops as the server exits: that is success
            self.client.shutdown(nosave=True)
        wait_for(lambda: not self.answers(), timeout=10)

    def start(self) -> None:
        """Start it again and wait until it answers."""
        if not self.answers():
            subprocess.run(self.argv, check=True, capture_output=True, timeout=30)
        wait_for(self.answers, timeout=30, interval=0.05)


def _figure(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}s"
    if value is None:
        return "n/a"
    return str(value)
