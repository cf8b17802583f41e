"""Handlers stopped at their timeout: interrupted in a thread, killed in a child process."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sundial.config import Settings
from sundial.engine import Engine
from sundial.handlers import HandlerRegistry, RunContext
from sundial.isolation import HandlerProcess
from sundial.plugins import hookimpl
from sundial.plugins.manager import load_plugins
from sundial.run import Run, RunStatus
from sundial.store import tables
from support import wait_for


class Isolated:
    """Handlers that leave their evidence in files, as a child process's memory is its own."""

    def __init__(self, evidence: Path) -> None:
        self.evidence = evidence

    def note(self, name: str, text: str) -> None:
        (self.evidence / name).write_text(text)

    @hookimpl
    def sundial_register_handlers(self, registry: HandlerRegistry) -> None:
        registry.add("iso.spin", self.spin)
        registry.add("iso.block", self.block)
        registry.add("iso.work", self.work)
        registry.add("iso.crash", self.crash)
        registry.add("iso.fail", self.fail)
        registry.add("iso.long_first", self.long_first)

    def spin(self, ctx: RunContext) -> None:
        """Busy in Python, ignoring ctx.cancelled: only an interrupt stops it."""
        try:
            while True:
                sum(range(100))
        except BaseException as e:
            self.note(f"spin-{ctx.run_id}", type(e).__name__)
            raise

    def block(self, ctx: RunContext) -> None:
        """Blocked in C, where no interrupt reaches: only a kill stops it."""
        self.note(f"block-{ctx.run_id}", str(os.getpid()))
        time.sleep(60)

    def work(self, ctx: RunContext) -> None:
        ctx.logger.info("in process %s", os.getpid())
        self.note(f"cooldown-{ctx.run_id}", str(ctx.cooldown("once", 3600)))

    def long_first(self, ctx: RunContext) -> None:
        """The first attempt takes 20 s in short sleeps (an interrupt lands between them); later ones are quick."""
        if ctx.attempt > 1:
            return
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                time.sleep(0.01)
        except BaseException as e:
            self.note(f"long-{ctx.run_id}", type(e).__name__)
            raise

    def crash(self, ctx: RunContext) -> None:
        os._exit(3)

    def fail(self, ctx: RunContext) -> None:
        raise ValueError("bad input")


EngineFactory = Callable[..., Engine]


@pytest.fixture
def make_engine(tmp_path: Path) -> Iterator[EngineFactory]:
    engines: list[Engine] = []

    def make(isolation: str, **extra: Any) -> Engine:
        settings = Settings(database_url=f"sqlite:///{tmp_path / 'iso.db'}", concurrency=2, max_idle_seconds=0.2,
                            sweep_interval_seconds=0.2, handler_isolation=isolation, **extra)  # fmt: skip
        engine = Engine(settings, plugins=load_plugins(extra=[("iso", Isolated(tmp_path))], entry_points=False))
        engine.start()
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.stop(grace_seconds=1)


def run_once(engine: Engine, job_id: str, handler: str, **extra: Any) -> Run:
    engine.control.add_job({"id": job_id, "name": job_id, "handler": handler, "type": "date",
                            "run_at": datetime.now(UTC).isoformat(), "retry_policy": {"max_retries": 0},
                            **extra})  # fmt: skip
    done = [RunStatus.SUCCEEDED, RunStatus.DEAD]
    [run] = wait_for(lambda: engine.store.list_runs(job_id=job_id, statuses=done), timeout=30)
    return run


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_thread_handler_busy_in_python_is_interrupted_at_its_timeout(
    make_engine: EngineFactory, tmp_path: Path
) -> None:
    engine = make_engine("thread")
    run = run_once(engine, "spin", "iso.spin", timeout_seconds=0.3)
    assert (run.status, run.error) == (RunStatus.DEAD, "timed out after 0.3s")
    assert wait_for(lambda: (tmp_path / f"spin-{run.id}").exists() and (tmp_path / f"spin-{run.id}").read_text(),
                    timeout=5) == "HandlerTimeout"  # fmt: skip
    assert run_once(engine, "after", "iso.work").status is RunStatus.SUCCEEDED


def test_a_process_handler_blocked_in_c_is_killed_at_its_timeout(make_engine: EngineFactory, tmp_path: Path) -> None:
    engine = make_engine("process")
    run = run_once(engine, "block", "iso.block", timeout_seconds=0.5)
    assert (run.status, run.error) == (RunStatus.DEAD, "timed out after 0.5s")
    pid = int((tmp_path / f"block-{run.id}").read_text())
    assert pid != os.getpid()
    wait_for(lambda: not alive(pid), timeout=5)  # killed and reaped, not left sleeping
    # the next runs get a fresh child, with the store and the helpers working there
    work = run_once(engine, "work", "iso.work")
    assert work.status is RunStatus.SUCCEEDED
    [line] = engine.store.run_logs(work.id)
    child = int(line.message.rsplit(" ", 1)[1])
    assert child not in (os.getpid(), pid)
    assert (tmp_path / f"cooldown-{work.id}").read_text() == "True"
    assert run_once(engine, "again", "iso.work", payload_template={}).status is RunStatus.SUCCEEDED
    [again] = engine.store.list_runs(job_id="again")
    assert (tmp_path / f"cooldown-{again.id}").read_text() == "False"  # the child's cooldown was stored


def test_a_handler_process_that_dies_or_raises_fails_its_run_and_the_worker_goes_on(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine("process")
    crashed = run_once(engine, "crash", "iso.crash")
    assert (crashed.status, crashed.error) == (RunStatus.DEAD, "the handler's process exited with code 3")
    failed = run_once(engine, "fail", "iso.fail")
    assert (failed.status, failed.error) == (RunStatus.DEAD, "ValueError: bad input")
    assert "Traceback" in engine.store.run_logs(failed.id)[0].message
    assert run_once(engine, "work", "iso.work").status is RunStatus.SUCCEEDED


@pytest.mark.parametrize("isolation", ["thread", "process"])
def test_a_handler_whose_lease_was_lost_is_stopped_and_its_result_rejected(
    make_engine: EngineFactory, tmp_path: Path, isolation: str
) -> None:
    engine = make_engine(isolation, lease_seconds=3)
    engine.control.add_job({"id": "long", "name": "long", "handler": "iso.long_first", "type": "date",
                            "run_at": datetime.now(UTC).isoformat(), "timeout_seconds": 60})  # fmt: skip
    [run] = wait_for(lambda: engine.store.list_runs(job_id="long", statuses=[RunStatus.RUNNING]))
    # what a worker paused past its lease meets: the lease runs out and the sweeper hands the run on
    with engine.store.engine.begin() as conn:
        conn.execute(tables.runs.update().where(tables.runs.c.id == run.id)
                     .values(lease_expires_at=datetime.now(UTC) - timedelta(seconds=1)))  # fmt: skip
    wait_for(lambda: engine.store.get_run(run.id).status is RunStatus.SUCCEEDED, timeout=20)
    attempts = engine.store.attempts(run.id)
    assert [(a.attempt, a.status) for a in attempts] == [(1, "lost"), (2, "succeeded")]
    if isolation == "thread":  # the first execution was interrupted, not left running for 20 s
        evidence = tmp_path / f"long-{run.id}"
        assert wait_for(lambda: evidence.exists() and evidence.read_text(), timeout=5) == "HandlerTimeout"
    assert engine.store.get_run(run.id).fence == 2  # and its late result, had it come, would not match


def test_a_handler_process_forked_while_another_thread_writes_to_sqlite_can_write(
    make_engine: EngineFactory, tmp_path: Path
) -> None:
    """SQLite's in-memory lock table is inherited: a fork amid a transaction left the child unable to write."""
    engine = make_engine("process")
    engine.control.add_job({"id": "later", "name": "later", "handler": "iso.work", "type": "date",
                            "run_at": (datetime.now(UTC) + timedelta(days=1)).isoformat()})  # fmt: skip
    job = engine.store.get_job("later")
    assert job is not None
    inside = threading.Event()

    def hold_the_write_lock() -> None:
        with engine.store.engine.begin():  # BEGIN IMMEDIATE: the write lock, until the block ends
            inside.set()
            time.sleep(0.3)

    writer = threading.Thread(target=hold_the_write_lock)
    writer.start()
    inside.wait(5)
    child = HandlerProcess(engine.registry, engine.store)  # forks while the writer holds the lock
    outcome: list[tuple[bool, str | None, Any]] = []
    caller = threading.Thread(target=lambda: outcome.append(child.run(7, job, {}, datetime.now(UTC), 1)), daemon=True)
    caller.start()
    caller.join(10)
    writer.join()
    if not outcome:
        child.kill()
    child.close()
    assert outcome, "the child's write waited on a lock nobody holds"
    assert outcome[0][:2] == (True, None)
    assert (tmp_path / "cooldown-7").read_text() == "True"
