"""Calling handlers: in the worker's own threads, or in child processes that can be killed.

In a thread (``handler_isolation = "thread"``, the default) a handler that
overruns its timeout gets ``ctx.cancelled`` set and a ``HandlerTimeout``
raised inside it, which stops Python code at its next instruction; one
blocked in a C call (a socket read without a timeout, say) cannot be
stopped that way, so its thread is abandoned and replaced, and it costs a
thread, never a worker slot.

With ``handler_isolation = "process"`` each handler thread drives a child
process forked from the worker, and a handler that overruns its timeout is
stopped for real, whatever it is doing: its child is killed (``SIGKILL``)
and a fresh one forked for the next run. It is forked when no thread is
inside a SQLite transaction (``store.forkgate`` says why). The child
inherits the worker's plugins and handlers, opens database connections of
its own, sends back the outcome and the lines the handler logged, and dies
with its worker.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import traceback
from datetime import datetime
from multiprocessing.connection import Connection
from typing import Any

from .handlers import HandlerInfo, HandlerRegistry, RunContext, RunLogger
from .job import Job
from .store.forkgate import FORK_GATE
from .store.sqlalchemy import SQLStore

MAX_ERROR_CHARS = 2000
LogLines = list[tuple[datetime, str, str]]
_PR_SET_PDEATHSIG = 1


class HandlerTimeout(BaseException):
    """Raised inside a handler thread that overran its timeout (a BaseException, so ``except Exception`` lets it go)."""


def interrupt(thread_id: int) -> bool:
    """Raise ``HandlerTimeout`` in the thread ``thread_id`` at its next Python instruction; False if it is gone."""
    done = ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(HandlerTimeout))
    return bool(done == 1)


def call_handler(info: HandlerInfo, ctx: RunContext) -> tuple[bool, str | None]:
    """Run one handler; its exception is the run's failure (with the traceback in its log), never the caller's."""
    try:
        info.function(ctx)
        return True, None
    except BaseException as e:
        ctx.logger.error("%s", traceback.format_exc()[-MAX_ERROR_CHARS:])
        return False, f"{e.__class__.__name__}: {e}"[:MAX_ERROR_CHARS]


class HandlerProcess:
    """A child process forked from the worker that runs handlers one at a time."""

    def __init__(self, registry: HandlerRegistry, store: SQLStore) -> None:
        ours, theirs = multiprocessing.Pipe()
        pid = FORK_GATE.fork()
        if pid == 0:  # the child: serve until told to stop, then leave without running the parent's exit code
            code = 0
            try:
                ours.close()
                # the worker handles ^C and SIGTERM for its children: it stops or kills them itself
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                _die_with_parent()
                _open_own_connections(registry, store)
                _serve(theirs, registry, store)
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        theirs.close()
        self.pid = pid
        self.dead = False  # reaped: a new child is needed
        self._conn = ours

    def run(
        self, run_id: int, job: Job, payload: dict[str, Any], scheduled_at: datetime, attempt: int
    ) -> tuple[bool, str | None, LogLines]:
        """Run one handler in the child; ``EOFError`` when the child died (it was killed, or crashed)."""
        self._conn.send((run_id, job, payload, scheduled_at, attempt))
        answer: tuple[bool, str | None, LogLines] = self._conn.recv()
        return answer

    def kill(self) -> None:
        """Stop the child at once, whatever its handler is doing."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)

    def exit_status(self) -> str:
        """Reap the dead child; how it ended, for the run's error."""
        _, status = os.waitpid(self.pid, 0)
        self.dead = True
        self._conn.close()
        if os.WIFSIGNALED(status):
            return f"killed by signal {os.WTERMSIG(status)}"
        return f"exited with code {os.waitstatus_to_exitcode(status)}"

    def close(self) -> None:
        """Let the child finish and reap it."""
        with contextlib.suppress(OSError):
            self._conn.send(None)
        with contextlib.suppress(ChildProcessError):
            self.exit_status()


def _die_with_parent() -> None:
    """Linux: be killed when the worker thread that forked us ends (a worker killed with -9 leaves no orphan)."""
    parent = os.getppid()
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the worker died before the request took effect
        os._exit(1)


def _open_own_connections(registry: HandlerRegistry, store: SQLStore) -> None:
    """Leave the worker's database connections to the worker: the child's pools start empty."""
    store.engine.dispose(close=False)
    services = registry.services
    if services is not None and services.domain is not store.engine:
        services.domain.dispose(close=False)


def _serve(conn: Connection, registry: HandlerRegistry, store: SQLStore) -> None:
    while True:
        request = conn.recv()
        if request is None:
            return
        run_id, job, payload, scheduled_at, attempt = request
        ctx = RunContext(
            run_id=run_id, job=job, payload=payload, scheduled_at=scheduled_at,
            attempt=attempt, store=store, logger=RunLogger(run_id),
        )  # fmt: skip
        info = registry.get(job.handler)
        ok: bool
        error: str | None
        if info is None:
            ok, error = False, f"unknown handler {job.handler!r}"
        else:
            ok, error = call_handler(info, ctx)
        conn.send((ok, error, ctx.logger.drain()))
