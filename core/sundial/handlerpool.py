"""The handler pool: threads that start each attempt at its time, run its handler, and stop it when told.

Each of ``size`` threads takes the next attempt whose start time has come
and runs its handler: in the thread itself (``isolation = "thread"``), or in
a child process of its own (``isolation = "process"``, see
``sundial.isolation``). The worker decides when an attempt must stop (its
timeout passed, or its lease was lost) and calls ``stop``; a thread whose
handler will not stop is let go and replaced, so a hung handler costs a
thread, never a slot.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from .abc import Claim, Delivery
from .handlers import HandlerRegistry, RunContext
from .isolation import HandlerProcess, HandlerTimeout, call_handler, interrupt
from .store.sqlalchemy import SQLStore

Key = tuple[int, int]  # (run id, fence)


@dataclass
class InFlight:
    """One attempt in flight: its delivery, claim, context and deadline."""

    delivery: Delivery
    claim: Claim
    ctx: RunContext
    started: float = 0.0
    started_at: datetime | None = None  # the store's clock, for the record
    deadline: float = float("inf")
    duration: float | None = None
    ok: bool = False
    error: str | None = None
    final: bool = False  # no retry can help (the handler is unknown)
    recording: bool = False  # handed to the bookkeeper
    thread: threading.Thread | None = None  # the handler thread running it, once started
    process: HandlerProcess | None = None  # the child process running it, with process isolation
    in_handler: bool = False  # its handler is running now (guarded by the worker's lock when cleared)
    lease_lost: bool = False  # the store gave the run to another worker: stop and let go
    abandoned: bool = False

    @property
    def run_id(self) -> int:
        return self.claim.run.id

    @property
    def key(self) -> Key:
        """The attempt's run and fence: unique among the attempts in flight."""
        return self.claim.run.id, self.claim.fence


class _StartQueue:
    """Runs for the handler threads, each handed out once its start time (monotonic) has come."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, InFlight | None]] = []
        self._order = itertools.count()
        self._ready = threading.Condition()

    def put(self, running: InFlight | None, start: float) -> None:
        with self._ready:
            heapq.heappush(self._heap, (start, next(self._order), running))
            self._ready.notify()

    def get(self) -> InFlight | None:
        with self._ready:
            while True:
                wait = self._heap[0][0] - time.monotonic() if self._heap else None
                if wait is not None and wait <= 0:
                    return heapq.heappop(self._heap)[2]
                self._ready.wait(wait)


class HandlerPool:
    """``size`` handler threads, fed by ``submit``; ``finished`` is called as each attempt's handler returns.

    ``lock`` is the worker's: the pool clears an attempt's ``in_handler`` and
    stores its outcome under it, and the worker calls ``stop`` under it.
    """

    def __init__(
        self,
        registry: HandlerRegistry,
        store: SQLStore,
        *,
        size: int,
        isolation: str,
        lock: threading.Lock,
        finished: Callable[[InFlight], None],
    ) -> None:
        if isolation not in ("thread", "process"):
            raise ValueError(f"isolation must be 'thread' or 'process', not {isolation!r}")
        self.registry = registry
        self.store = store
        self.size = size
        self.isolation = isolation
        self._lock = lock
        self._finished = finished
        self._queue = _StartQueue()

    def start(self) -> None:
        for _ in range(self.size):
            self._add_thread()

    def submit(self, running: InFlight, start: float) -> None:
        """Run ``running``'s handler once the monotonic clock reaches ``start``."""
        self._queue.put(running, start)

    def close(self) -> None:
        """Let every thread end once the attempts before it are done."""
        for _ in range(self.size):
            self._queue.put(None, 0.0)

    def stop(self, running: InFlight) -> None:
        """Stop ``running``'s handler if it is still in it.

        Called with the lock held, the lock its thread takes when the handler
        returns: a stop meant for this handler never lands in the next one.
        """
        if not running.in_handler:
            return
        if running.process is not None:
            running.process.kill()  # its thread sees the child die and forks another
        elif running.thread is not None:
            interrupt(running.thread.ident or 0)

    def let_go(self, running: InFlight) -> None:
        """After ``stop``: a thread whose handler may ignore it (blocked in C) is abandoned and replaced.

        It leaves once its handler returns; a child process needs nothing, its
        thread forks a fresh one.
        """
        if running.thread is not None and running.process is None:
            running.abandoned = True
            self._add_thread()

    def _add_thread(self) -> None:
        threading.Thread(target=self._handle_runs, name="sundial-handler", daemon=True).start()

    def _handle_runs(self) -> None:
        """A handler thread: runs handlers one after another until it is abandoned or stopped.

        With process isolation it drives a child process of its own, and forks
        a fresh one after its child was killed (a timeout) or died.
        """
        child: HandlerProcess | None = None
        try:
            while True:
                running = self._queue.get()
                if running is None:
                    return
                if running.recording:
                    continue  # timed out before a thread was free to start it
                if self.isolation == "process" and (child is None or child.dead):
                    child = HandlerProcess(self.registry, self.store)
                running.thread, running.process = threading.current_thread(), child
                running.started_at = self.store.now()
                running.started = time.monotonic()
                running.deadline = running.started + running.claim.job.timeout_seconds
                running.in_handler = True
                try:
                    ok, error = self._call(running, child)
                    with self._lock:
                        running.in_handler = False
                        if not running.recording:  # else it timed out: its outcome is written already
                            running.ok, running.error = ok, error
                except HandlerTimeout:
                    pass  # raised just after the handler returned: it had timed out, its outcome is written
                self._finished(running)
                if running.abandoned:
                    return  # timed out earlier: a replacement thread has taken this one's place
        finally:
            if child is not None:
                child.close()

    def _call(self, running: InFlight, child: HandlerProcess | None) -> tuple[bool, str | None]:
        """Run the handler here, or in ``child``; a child that dies is the run's failure, with how it died."""
        info, ctx, run = self.registry.get(running.claim.job.handler), running.ctx, running.claim.run
        assert info is not None, "checked before queueing"
        if child is None:
            return call_handler(info, ctx)
        try:
            ok, error, lines = child.run(run.id, running.claim.job, ctx.payload, run.scheduled_at, run.attempt)
        except (EOFError, OSError):
            return False, f"the handler's process {child.exit_status()}"
        ctx.logger.extend(lines)
        return ok, error
