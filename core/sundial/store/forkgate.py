"""Forking beside SQLite: a fork waits until no thread of this process is inside a SQLite transaction.

SQLite keeps its file locks in memory as well as in the kernel, in one
table per process. A child forked while another thread of its parent was
inside a transaction inherits that table saying "a connection of this
process holds the write lock", though the child holds none and never will
release it; every write the child tries then waits out the busy timeout
and fails. So a handler process (``handler_isolation = "process"``) is
forked only at a moment when no SQLite connection is checked out: the fork
holds off new checkouts, waits for those in flight to end, and forks.

PostgreSQL keeps no such state in the client, so only SQLite engines are
tracked, and nothing is paid on PostgreSQL.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from sqlalchemy import Engine, event

log = logging.getLogger(__name__)

WAIT_SECONDS = 5.0
"""How long a fork waits for transactions to end, and a checkout for a fork: a stall, never a deadlock."""


class ForkGate:
    """Counts checked-out SQLite connections, and forks when there are none."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._cond = threading.Condition()
        self._forker = threading.Lock()  # one fork at a time
        self._active = 0
        self._forking = False
        self._held = threading.local()  # connections each thread has checked out

    def track(self, engine: Engine) -> None:
        """Count ``engine``'s connections while they are checked out."""
        event.listen(engine, "checkout", self._checkout)
        event.listen(engine, "checkin", self._checkin)

    def fork(self) -> int:
        """``os.fork()`` at a moment when no other thread has a SQLite connection checked out."""
        self._forker.acquire()
        mine = getattr(self._held, "count", 0)
        with self._cond:
            self._forking = True
            quiet = self._cond.wait_for(lambda: self._active <= mine, timeout=WAIT_SECONDS)
        if not quiet:
            log.warning("forking while %d SQLite connections are in use: the child's writes may wait", self._active)
        pid = os.fork()
        if pid == 0:
            self._reset()  # the copies of our locks may be held by threads the child does not have
            return pid
        with self._cond:
            self._forking = False
            self._cond.notify_all()
        self._forker.release()
        return pid

    def _checkout(self, *_: Any) -> None:
        held = getattr(self._held, "count", 0)
        with self._cond:
            if held == 0:  # a thread that holds a connection already goes on, so its transaction can end
                self._cond.wait_for(lambda: not self._forking, timeout=WAIT_SECONDS)
            self._active += 1
        self._held.count = held + 1

    def _checkin(self, *_: Any) -> None:
        held = getattr(self._held, "count", 0)
        self._held.count = max(held - 1, 0)
        with self._cond:
            self._active = max(self._active - 1, 0)
            if self._forking:  # only a fork waits on checkins
                self._cond.notify_all()


FORK_GATE = ForkGate()
"""The process's one gate: every SQLite engine is tracked by it, and handler processes fork through it."""
