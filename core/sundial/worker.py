"""Workers: receive runs, execute their handlers with a timeout, record the outcome, then acknowledge.

The outcome is committed to the store before the broker is told, so a
worker that dies in between causes a redelivery (turned away by the fence
or run again, idempotently), never a lost run.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .abc import Broker, Claim, Delivery
from .errors import NotFound
from .handlers import HandlerRegistry, RunContext, RunLogger
from .job import Job
from .run import Run, RunStatus
from .store.rows import Outcome
from .store.sqlalchemy import SQLStore

log = logging.getLogger(__name__)
MAX_ERROR_CHARS = 2000
# a run may be delivered before its relay marked it queued, or again after a lease expired
_CLAIMABLE = (RunStatus.PENDING, RunStatus.QUEUED, RunStatus.RETRYING)

RunObserver = Callable[[Job, Run, str, "str | None"], None]


def default_worker_name() -> str:
    """host:pid: unique per process, readable in the run history."""
    return f"{socket.gethostname()}:{os.getpid()}"


def retry_delay(job: Job, failures: int, rng: random.Random | None = None) -> float | None:
    """Seconds before the next attempt after the ``failures``-th failure; None when retries are used up.

    Jitter spreads the retries of many runs that failed together ("equal
    jitter": between half and all of the backoff).
    """
    policy = job.retry_policy
    if failures > policy.max_retries:
        return None
    delay = policy.delay_for(failures)
    return delay / 2 + (rng or random).uniform(0, delay / 2)


@dataclass
class _Result:
    ok: bool = False
    error: str | None = None
    final: bool = False  # no retry can help (the handler is unknown)


class Worker:
    """A pool of threads consuming from one broker."""

    def __init__(
        self,
        store: SQLStore,
        broker: Broker,
        registry: HandlerRegistry,
        *,
        name: str | None = None,
        queues: Sequence[str] = ("default",),
        concurrency: int = 4,
        lease_seconds: float = 30.0,
        observe: RunObserver | None = None,
    ) -> None:
        self.store = store
        self.broker = broker
        self.registry = registry
        self.name = name or default_worker_name()
        self.queues = tuple(queues)
        self.concurrency = concurrency
        self.lease_seconds = lease_seconds
        self.observe = observe
        self._stopping = threading.Event()
        self._closed = threading.Event()
        self._hurry = threading.Event()  # stops the lease renewer, after the grace period
        self._threads: list[threading.Thread] = []
        self._inflight: dict[int, tuple[Claim, RunContext]] = {}
        self._lock = threading.Lock()

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        """Start the consumer threads and the lease renewer."""
        for i in range(self.concurrency):
            thread = threading.Thread(target=self._consume, name=f"sundial-worker-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)
        threading.Thread(target=self._renew_leases, name="sundial-lease-renewer", daemon=True).start()

    def stop(self, grace_seconds: float = 30.0) -> int:
        """Stop receiving; let in-flight runs finish for ``grace_seconds``, then give the rest back.

        Returns how many runs were given back to the queue unfinished.
        """
        self._stopping.set()
        self.broker.wake()
        deadline = time.monotonic() + grace_seconds
        for thread in self._threads:
            while thread.is_alive() and not self._hurry.is_set() and time.monotonic() < deadline:
                thread.join(0.1)
        with self._lock:
            leftover = [claim for claim, ctx in self._inflight.values()]
            for _, ctx in self._inflight.values():
                ctx.cancelled.set()
        self._closed.set()
        released = self.store.release(leftover) if leftover else 0
        if released:
            log.warning("gave %d unfinished runs back to the queue at shutdown", released)
        return released

    def hurry(self) -> None:
        """Cut a running ``stop`` short: unfinished runs are given back at once."""
        self._hurry.set()

    @property
    def busy(self) -> int:
        """Runs executing right now."""
        with self._lock:
            return len(self._inflight)

    # -- the run path ----------------------------------------------------------

    def _consume(self) -> None:
        backoff = 0.5
        while not self._stopping.is_set():
            try:
                delivery = self.broker.receive(self.queues, self.name, timeout=1.0)
                backoff = 0.5
            except Exception:
                log.exception("receiving failed; retrying in %.1fs", backoff)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            if delivery is None:
                continue
            try:
                self._handle(delivery)
            except Exception:
                # not settled: the broker or the lease sweeper redelivers it
                log.exception("run %s could not be completed", delivery.run_id)

    def _handle(self, delivery: Delivery) -> None:
        """Claim, execute and record one delivery, then tell the broker where it goes next."""
        if delivery.error is not None:
            self.broker.dead_letter(delivery, None, f"undecodable message: {delivery.error}")
            return
        claim = delivery.claim or self.store.claim(
            self.name, self.lease_seconds, run_id=delivery.run_id, statuses=_CLAIMABLE
        )
        if claim is None:
            self._turn_away(delivery)
            return
        status = self.execute(claim)
        run = self.store.get_run(claim.run.id) if status in (RunStatus.RETRYING, RunStatus.DEAD) else claim.run
        if status is RunStatus.RETRYING:
            delay = (run.available_at - self.store.now()).total_seconds() if run.available_at else 0.0
            self.broker.retry(delivery, run, max(delay, 0.0), run.error)
        elif status is RunStatus.DEAD:
            self.broker.dead_letter(delivery, run, run.error or "failed")
        else:
            self.broker.settle(delivery)

    def _turn_away(self, delivery: Delivery) -> None:
        """A delivery whose run cannot be claimed: a duplicate, early, or unknown."""
        try:
            run = self.store.get_run(delivery.run_id)
        except NotFound:
            self.broker.dead_letter(delivery, None, f"unknown run {delivery.run_id}")
            return
        early = run.available_at is not None and run.status in (RunStatus.RETRYING, RunStatus.PENDING)
        wait = (run.available_at - self.store.now()).total_seconds() if early and run.available_at else 0.0
        if wait > 0.5:
            # back from a retry tier before its time: round again for what is left, no attempt used
            self.broker.retry(delivery, run, wait, run.error)
        else:
            self.broker.settle(delivery)  # finished, or running under a live lease: a duplicate

    def execute(self, claim: Claim) -> RunStatus | None:
        """Run one claimed attempt to its recorded outcome; None when the result was rejected as stale."""
        run, job = claim.run, claim.job
        logger = RunLogger(run.id)
        ctx = RunContext(
            run_id=run.id, job=job, payload=run.payload, scheduled_at=run.scheduled_at,
            attempt=run.attempt, store=self.store, logger=logger,
        )  # fmt: skip
        with self._lock:
            self._inflight[run.id] = (claim, ctx)
        try:
            started = time.monotonic()
            result = self._call(job, ctx)
            duration = time.monotonic() - started
        finally:
            with self._lock:
                self._inflight.pop(run.id, None)
        retry_in = None if result.ok or result.final else retry_delay(job, run.failures + 1)
        outcome = Outcome(
            ok=result.ok,
            error=result.error,
            duration_seconds=duration,
            logs=logger.drain(),
            retry_in=retry_in,
            retry_from_outbox=retry_in is not None and retry_in > self.broker.max_delay,
        )
        status = self.store.finish(claim, outcome)
        if status is None:
            log.warning("run %s: result of attempt %s rejected, its lease was taken over", run.id, run.attempt)
        elif self.observe is not None:
            try:
                self.observe(job, run, status.value, result.error)
            except Exception:
                log.exception("run observer failed for run %s", run.id)
        return status

    def _call(self, job: Job, ctx: RunContext) -> _Result:
        info = self.registry.get(job.handler)
        if info is None:
            return _Result(error=f"unknown handler {job.handler!r}", final=True)
        result = _Result()

        def target() -> None:
            try:
                info.function(ctx)
                result.ok = True
            except BaseException as e:  # a handler's failure is the run's, never the worker's
                result.error = f"{e.__class__.__name__}: {e}"[:MAX_ERROR_CHARS]
                ctx.logger.error("%s", traceback.format_exc()[-MAX_ERROR_CHARS:])

        # the handler runs in its own thread so a hung one costs a thread, not
        # this worker slot; threads cannot be killed, so it is abandoned with
        # its cancellation flag set
        thread = threading.Thread(target=target, name=f"sundial-run-{ctx.run_id}", daemon=True)
        thread.start()
        thread.join(job.timeout_seconds)
        if thread.is_alive():
            ctx.cancelled.set()
            return _Result(error=f"timed out after {job.timeout_seconds:g}s")
        return result

    def _renew_leases(self) -> None:
        interval = self.lease_seconds / 3
        while not self._closed.wait(interval):
            with self._lock:
                held = dict(self._inflight)
            if not held:
                continue
            try:
                lost = self.store.renew([claim for claim, _ in held.values()], self.lease_seconds)
            except Exception:
                log.exception("lease renewal failed")
                continue
            for run_id in lost:
                log.warning("run %s: lease lost; its result will be rejected", run_id)
                held[run_id][1].cancelled.set()
