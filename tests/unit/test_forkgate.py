"""The fork gate: a fork waits for SQLite connections in use, and never waits forever."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, create_engine, text

from sundial.store import forkgate
from sundial.store.forkgate import ForkGate


@pytest.fixture
def tracked(tmp_path: Path) -> Iterator[tuple[ForkGate, Engine]]:
    gate, engine = ForkGate(), create_engine(f"sqlite:///{tmp_path / 'gate.db'}")
    gate.track(engine)
    yield gate, engine
    engine.dispose()


def fork_and_reap(gate: ForkGate) -> float:
    """Fork through ``gate`` (the child leaves at once); the parent's time of the fork."""
    pid = gate.fork()
    if pid == 0:
        os._exit(0)
    forked = time.monotonic()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return forked


def test_a_fork_waits_until_another_thread_returns_its_connection(tracked: tuple[ForkGate, Engine]) -> None:
    gate, engine = tracked
    inside, returned = threading.Event(), []

    def transaction() -> None:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            inside.set()
            time.sleep(0.3)
        returned.append(time.monotonic())

    worker = threading.Thread(target=transaction)
    worker.start()
    inside.wait(5)
    forked = fork_and_reap(gate)
    worker.join()
    assert forked >= returned[0]


def test_a_thread_holding_a_connection_may_take_another_while_a_fork_waits(
    tracked: tuple[ForkGate, Engine],
) -> None:
    gate, engine = tracked
    inside, nested = threading.Event(), threading.Event()

    def nesting() -> None:
        with engine.connect():
            inside.set()
            time.sleep(0.2)  # the fork is waiting by now
            with engine.connect() as second:  # held off, it would deadlock with the fork
                second.execute(text("SELECT 1"))
                nested.set()

    worker = threading.Thread(target=nesting)
    worker.start()
    inside.wait(5)
    started = time.monotonic()
    fork_and_reap(gate)
    worker.join()
    assert nested.is_set() and time.monotonic() - started < forkgate.WAIT_SECONDS


def test_a_connection_never_returned_delays_a_fork_only_so_long(
    tracked: tuple[ForkGate, Engine], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    gate, engine = tracked
    monkeypatch.setattr(forkgate, "WAIT_SECONDS", 0.2)
    leaked: list[Connection] = []  # checked out by another thread, and kept
    taker = threading.Thread(target=lambda: leaked.append(engine.connect()))
    taker.start()
    taker.join()
    try:
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="sundial.store.forkgate"):
            forked = fork_and_reap(gate)
        assert 0.2 <= forked - started < 2
        assert "1 SQLite connections are in use" in caplog.text
        # and checkouts go on afterwards
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1
    finally:
        leaked[0].close()
