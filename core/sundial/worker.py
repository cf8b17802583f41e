"""Workers: receive runs, execute their handlers with a timeout, record the outcome, then acknowledge.

The outcome is committed to the store before the broker is told, so a
worker that dies in between causes a redelivery (turned away by the fence
or run again, idempotently), never a lost run.

One loop thread owns the broker connection: it receives deliveries in
batches, claims them in one transaction and hands them to the handler pool
(``sundial.handlerpool``, ``concurrency`` threads); a bookkeeper thread
records finished outcomes in batches on a database connection of its own,
and the loop acknowledges them once they are recorded. Batching the
bookkeeping is what lets recording every run cost little throughput. A
handler that overruns its timeout, or whose lease was lost, is stopped by
the pool, and its attempt recorded as failed (or rejected by the fence).
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import logging
import os
import queue
import random
import socket
import threading
import time
from collections.abc import Callable, Sequence

from .abc import Broker, Claim, Delivery
from .errors import SundialError
from .failpoints import failpoint
from .handlerpool import HandlerPool, InFlight, Key
from .handlers import HandlerRegistry, RunContext, RunLogger
from .job import Job
from .locks.redis import RedisLocks
from .metrics import Metrics
from .run import Run, RunStatus
from .store.rows import Outcome
from .store.sqlalchemy import SQLStore

log = logging.getLogger(__name__)
# how long past the lookahead a worker holds an early delivery rather than sending it round a retry tier
_HOLD_SECONDS = 1.0
# how soon a delivery of a busy overlap=queue job is looked at again (Redis said busy: no database write)
_BUSY_RECHECK_SECONDS = 0.5
# a run may be delivered before its relay marked it queued, or again after a lease expired
_CLAIMABLE = (RunStatus.PENDING, RunStatus.QUEUED, RunStatus.RETRYING)

RunObserver = Callable[[Job, Run, str, "str | None"], None]


def _owner(claim: Claim) -> str:
    """The owner token of an attempt's Redis slot: unique per attempt, as the fence only grows."""
    return f"{claim.worker}:{claim.run.id}:{claim.fence}"


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


class Worker:
    """Executes runs from one broker, ``concurrency`` at a time.

    It holds up to ``prefetch`` runs per handler thread (executing, waiting
    for a thread, or awaiting their record): taking runs ahead of free threads
    lets one claim transaction and one outcome transaction serve many runs,
    which is what makes short handlers cheap. A run waiting for a thread holds
    its lease (renewed), and its timeout starts with its handler.
    """

    def __init__(
        self,
        store: SQLStore,
        broker: Broker,
        registry: HandlerRegistry,
        *,
        name: str | None = None,
        queues: Sequence[str] = ("default",),
        concurrency: int = 4,
        prefetch: int = 4,
        lookahead_seconds: float = 0.0,
        lease_seconds: float = 30.0,
        observe: RunObserver | None = None,
        metrics: Metrics | None = None,
        isolation: str = "thread",
        locks: RedisLocks | None = None,
    ) -> None:
        self.store = store
        self.broker = broker
        self.registry = registry
        self.name = name or default_worker_name()
        self.queues = tuple(queues)
        self.concurrency = concurrency
        self.prefetch = prefetch
        # runs are claimed this long before they are due, so that claiming is off their start's path
        self.lookahead = lookahead_seconds / 2
        self.lease_seconds = lease_seconds
        self.observe = observe
        self.metrics = metrics or Metrics()
        self.locks = locks
        # max_instances of the overlap=queue jobs met so far: their runs are checked in Redis before claiming
        self._queued_jobs: dict[str, int] = {}
        self._stopping = threading.Event()
        self._hurry = threading.Event()
        self._closed = threading.Event()  # stops the lease renewer, after the loop
        self._finished: queue.SimpleQueue[Key] = queue.SimpleQueue()
        self._to_record: queue.SimpleQueue[list[tuple[InFlight, Outcome]]] = queue.SimpleQueue()
        self._recorded: queue.SimpleQueue[tuple[InFlight, RunStatus | None, Run | None]] = queue.SimpleQueue()
        # by run and fence: a run given to this worker again (its lease lost meanwhile)
        # is in flight twice until the stale attempt has been stopped and let go
        self._inflight: dict[Key, InFlight] = {}
        self._unclaimed: list[Delivery] = []  # received, but their claim failed: tried again next pass
        self._held: list[tuple[float, int, Delivery]] = []  # (monotonic time to claim, order, delivery)
        self._order = itertools.count()
        self._lock = threading.Lock()
        self.pool = HandlerPool(
            registry, store, size=concurrency, isolation=isolation, lock=self._lock,
            finished=lambda running: self._finished.put(running.key),
        )  # fmt: skip
        self._loop_thread: threading.Thread | None = None
        self._deadline = float("inf")

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        """Start the loop thread and the lease renewer."""
        self._loop_thread = threading.Thread(target=self._loop, name="sundial-worker", daemon=True)
        self._loop_thread.start()
        threading.Thread(target=self._renew_leases, name="sundial-lease-renewer", daemon=True).start()
        threading.Thread(target=self._record, name="sundial-bookkeeper", daemon=True).start()
        self.pool.start()

    def stop(self, grace_seconds: float = 30.0) -> int:
        """Stop receiving; let in-flight runs finish for ``grace_seconds``, then give the rest back.

        Returns how many runs were given back to the queue unfinished.
        """
        self._deadline = time.monotonic() + grace_seconds
        self._stopping.set()
        self.broker.wake()
        if self._loop_thread is not None:
            self._loop_thread.join()
        self._closed.set()
        self.pool.close()
        with self._lock:
            leftover = list(self._inflight.values())
            self._inflight.clear()
        for running in leftover:
            running.ctx.cancelled.set()
            if running.process is not None:
                running.process.kill()
        released = self.store.release([r.claim for r in leftover]) if leftover else 0
        self._unlock_jobs([r.claim for r in leftover])
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

    # -- the loop ------------------------------------------------------------

    def _loop(self) -> None:
        backoff = 0.5
        # a broker that reads the store answers each receive with a write transaction:
        # while handlers run, ask it at most this often (RabbitMQ is asked every pass,
        # which also flushes acknowledgements and heartbeats)
        poll_gap = 0.1 if self.broker.reads_outbox else 0.0
        next_receive = 0.0
        while True:
            if self._stopping.is_set():
                if not self._inflight or self._hurry.is_set() or time.monotonic() > self._deadline:
                    return
            try:
                held = self._due_held()
                if self._unclaimed or held:
                    self._begin(held)
                room = self.prefetch * self.concurrency - len(self._inflight) - len(self._held)
                if room > 0 and not self._stopping.is_set() and time.monotonic() >= next_receive:
                    wait = 0.0 if self._inflight else 0.5
                    if self._held:  # wake for the first held delivery's time to be claimed
                        wait = min(wait, max(self._held[0][0] - time.monotonic(), 0.0))
                    deliveries = self.broker.receive_many(self.queues, self.name, room, wait)
                    busy_and_empty = not deliveries and self._inflight
                    next_receive = time.monotonic() + poll_gap if busy_and_empty else 0.0
                    self._begin(deliveries)
                self._complete(wait=0.005 if self._inflight else 0.0)
                backoff = 0.5
            except SundialError as e:  # the broker or the store is away: say so in a line, and reconnect
                log.warning("worker loop: %s; retrying in %.1fs", e, backoff)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, 30.0)
            except Exception:
                # unsettled deliveries come back: the broker redelivers, the sweeper requeues
                log.exception("worker loop failed; retrying in %.1fs", backoff)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, 30.0)

    def _begin(self, deliveries: list[Delivery]) -> None:
        """Claim a batch of deliveries in one transaction and start their handlers."""
        if self._unclaimed:
            deliveries, self._unclaimed = self._unclaimed + deliveries, []
        if not deliveries:
            return
        unreadable = [d for d in deliveries if d.error is not None]
        for delivery in unreadable:
            self.broker.dead_letter(delivery, None, f"undecodable message: {delivery.error}")
        readable = self._hold_busy([d for d in deliveries if d.error is None])
        claims: dict[int, Claim] = {d.run_id: d.claim for d in readable if d.claim is not None}
        to_claim = [d.run_id for d in readable if d.claim is None]
        if to_claim:
            try:
                fresh = self.store.claim_many(
                    self.name, self.lease_seconds, run_ids=to_claim, statuses=_CLAIMABLE, limit=len(to_claim),
                    ahead_seconds=self.lookahead,
                )  # fmt: skip
            except Exception:
                # kept, and claimed again on the next pass: an unsettled delivery would
                # otherwise hold a prefetch slot until the connection closes
                self._unclaimed = readable
                raise
            claims.update((claim.run.id, claim) for claim in fresh)
            self._lock_jobs(fresh)
        refused = [d for d in readable if d.run_id not in claims]
        for delivery in readable:
            if delivery.run_id in claims:
                self._launch(delivery, claims.pop(delivery.run_id))
        if refused:
            self._turn_away(refused)

    def _hold_busy(self, deliveries: list[Delivery]) -> list[Delivery]:
        """Hold back deliveries of overlap=queue jobs whose every slot Redis shows taken.

        Without this each would cost a claim transaction a second while it
        waits. Redis only advises here: a delivery it does not hold back is
        decided by the store's claim as always, and while Redis is away none is.
        """
        if self.locks is None:
            return deliveries
        known = {d.job_id: self._queued_jobs[d.job_id] for d in deliveries if d.job_id in self._queued_jobs}
        busy = self.locks.busy(list(known.items())) if known else None
        if not busy:
            return deliveries
        for delivery in deliveries:
            if delivery.job_id in busy:
                self.metrics.busy_holds.inc()
                heapq.heappush(self._held, (time.monotonic() + _BUSY_RECHECK_SECONDS, next(self._order), delivery))
        return [d for d in deliveries if d.job_id not in busy]

    def _lock_jobs(self, claims: list[Claim]) -> None:
        """Take the Redis slot of each claimed run of an overlap=queue job, so other workers see it busy."""
        for claim in claims:
            job = claim.job
            if job.overlap != "queue":
                self._queued_jobs.pop(job.id, None)
                continue
            self._queued_jobs[job.id] = job.max_instances
            if self.locks is not None:
                # False: a slot still held by an attempt the store has already ended (a dead
                # worker's, until its expiry); the store decided, so the run goes ahead
                self.locks.acquire(job.id, _owner(claim), self.lease_seconds, job.max_instances)

    def _unlock_jobs(self, claims: list[Claim]) -> None:
        held = [(c.job.id, _owner(c), c.job.max_instances) for c in claims if c.job.overlap == "queue"]
        if held and self.locks is not None:
            self.locks.release(held)

    def _launch(self, delivery: Delivery, claim: Claim) -> None:
        failpoint("worker.after_claim")
        run, job = claim.run, claim.job
        ctx = RunContext(
            run_id=run.id, job=job, payload=run.payload, scheduled_at=run.scheduled_at,
            attempt=run.attempt, store=self.store, logger=RunLogger(run.id),
        )  # fmt: skip
        running = InFlight(delivery, claim, ctx)
        with self._lock:
            self._inflight[running.key] = running
        if self.registry.get(job.handler) is None:
            running.error, running.final = f"unknown handler {job.handler!r}", True
            self._finished.put(running.key)
            return
        wait = (run.available_at - self.store.now()).total_seconds() if run.available_at else 0.0
        self.pool.submit(running, time.monotonic() + max(wait, 0.0))

    def _complete(self, wait: float) -> None:
        """Hand finished (or timed-out) attempts to the bookkeeper; settle those it has recorded."""
        done: dict[Key, InFlight] = {}
        try:
            key = self._finished.get(timeout=wait) if wait else self._finished.get_nowait()
            while True:
                with self._lock:
                    running = self._inflight.get(key)
                if running is not None and not running.recording:  # else: already recorded as timed out
                    done[key] = running
                key = self._finished.get_nowait()
        except queue.Empty:
            pass
        now = time.monotonic()
        with self._lock:
            late = [
                r
                for r in self._inflight.values()
                if not r.recording and r.key not in done and (now > r.deadline or r.lease_lost)
            ]
            for running in late:
                running.ok, running.error = (
                    False,
                    (
                        "lease lost: the run was given to another worker"
                        if running.lease_lost
                        else f"timed out after {running.claim.job.timeout_seconds:g}s"
                    ),
                )
                running.recording = True
                self.pool.stop(running)
        for running in late:
            running.ctx.cancelled.set()
            if not running.lease_lost:
                self.metrics.timeouts.labels(running.claim.job.handler).inc()
            done[running.key] = running
            self.pool.let_go(running)
        if done:
            with self._lock:
                for running in done.values():
                    running.recording = True
            self._to_record.put([(r, self._outcome(r, now)) for r in done.values()])
        routed: list[Claim] = []
        try:
            while True:
                running, status, run = self._recorded.get_nowait()
                failpoint("worker.after_commit")
                with self._lock:
                    self._inflight.pop(running.key, None)
                self._route(running, status, run)
                routed.append(running.claim)
        except queue.Empty:
            pass
        self._unlock_jobs(routed)

    def _record(self) -> None:
        """The bookkeeper: record outcomes in batches, on a database connection of its own.

        Recording and claiming then overlap; the loop thread still does every
        acknowledgement, as the broker connection is its alone.
        """
        backoff = 0.5
        while not (self._closed.is_set() and self._to_record.empty()):
            try:
                batch = self._to_record.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                while True:
                    batch.extend(self._to_record.get_nowait())
            except queue.Empty:
                pass
            while True:
                try:
                    failpoint("worker.after_handler")
                    statuses = self.store.finish_many([(r.claim, outcome) for r, outcome in batch])
                    for (running, _), status in zip(batch, statuses):
                        needs_run = status in (RunStatus.RETRYING, RunStatus.DEAD)
                        self._recorded.put((running, status, self.store.get_run(running.run_id) if needs_run else None))
                    break
                except Exception:
                    # outcomes are kept and retried: their runs stay leased (renewed) meanwhile
                    log.exception("recording %d outcomes failed; retrying in %.1fs", len(batch), backoff)
                    if self._closed.wait(backoff):
                        return
                    backoff = min(backoff * 2, 30.0)
            backoff = 0.5

    def _outcome(self, running: InFlight, now: float) -> Outcome:
        running.duration = now - running.started if running.started else None
        retry_in = (
            None if running.ok or running.final else retry_delay(running.claim.job, running.claim.run.failures + 1)
        )
        return Outcome(
            ok=running.ok,
            error=running.error,
            duration_seconds=running.duration or 0.0,
            logs=running.ctx.logger.drain(),
            retry_in=retry_in,
            retry_from_outbox=retry_in is not None and retry_in > self.broker.max_delay,
            started_at=running.started_at,
        )

    def _route(self, running: InFlight, status: RunStatus | None, run: Run | None) -> None:
        """Tell the broker where a recorded outcome sends the delivery, and tell observers."""
        claim, delivery = running.claim, running.delivery
        job = claim.job
        # the fire lag of a first attempt; a retry's start is late by its backoff, not by Sundial
        lag = (running.started_at - claim.run.scheduled_at).total_seconds() if running.started_at else None
        self.metrics.run_finished(
            job.id, job.handler, job.queue, status.value if status else "rejected", running.duration,
            lag if claim.attempt == 1 else None,
        )  # fmt: skip
        if status is None:
            log.warning("run %s: result of attempt %s rejected, its lease was taken over", claim.run.id, claim.attempt)
            self.broker.settle(delivery)
            return
        if run is not None:
            run = dataclasses.replace(run, handler=claim.job.handler)  # for the message's headers
            if status is RunStatus.RETRYING:
                delay = (run.available_at - self.store.now()).total_seconds() if run.available_at else 0.0
                self.broker.retry(delivery, run, max(delay, 0.0), run.error)
            else:
                self.broker.dead_letter(delivery, run, run.error or "failed")
        else:
            self.broker.settle(delivery)
        if self.observe is not None:
            try:
                self.observe(claim.job, claim.run, status.value, running.error)
            except Exception:
                log.exception("run observer failed for run %s", claim.run.id)

    def _turn_away(self, deliveries: list[Delivery]) -> None:
        """Deliveries whose runs could not be claimed: early, duplicates, or unknown."""
        runs = self.store.get_runs([d.run_id for d in deliveries])
        now = self.store.now()
        for delivery in deliveries:
            run = runs.get(delivery.run_id)
            if run is None:
                self.broker.dead_letter(delivery, None, f"unknown run {delivery.run_id}")
                continue
            waiting = run.status in (RunStatus.PENDING, RunStatus.QUEUED, RunStatus.RETRYING)
            wait = (run.available_at - now).total_seconds() if waiting and run.available_at else 0.0
            if wait > self.lookahead + _HOLD_SECONDS:
                # back from a retry tier before its time: round again for what is left, no attempt used
                self.broker.retry(delivery, run, wait, run.error)
            elif waiting:
                # due soon (published ahead, or its job still busy): held here and claimed when it is
                # due within the lookahead, or, if that time has come, when it is due. A run that
                # became due since the claim turned it away is claimed again at once: only a
                # final or running run's delivery is a duplicate to settle
                hold = wait - self.lookahead if wait > self.lookahead else max(wait, 0.0)
                heapq.heappush(self._held, (time.monotonic() + hold, next(self._order), delivery))
            else:
                self.broker.settle(delivery)  # finished, or running under a live lease: a duplicate

    def _due_held(self) -> list[Delivery]:
        """Held deliveries whose time to be claimed has come."""
        due: list[Delivery] = []
        now = time.monotonic()
        while self._held and self._held[0][0] <= now:
            due.append(heapq.heappop(self._held)[2])
        return due

    def _renew_leases(self) -> None:
        interval = self.lease_seconds / 3
        while not self._closed.wait(interval):
            with self._lock:
                held = dict(self._inflight)
            if not held:
                continue
            try:
                lost = self.store.renew([r.claim for r in held.values()], self.lease_seconds)
            except Exception:
                log.exception("lease renewal failed")
                continue
            if self.locks is not None:
                claims = [r.claim for r in held.values() if r.claim.job.overlap == "queue"]
                self.locks.extend([(c.job.id, _owner(c), c.job.max_instances) for c in claims], self.lease_seconds)
            for claim in lost:
                running = held[(claim.run.id, claim.fence)]
                if running.recording:
                    continue  # finished and recorded meanwhile: the lease ended with the attempt
                # paused or cut off past its lease: the sweeper gave the run to another worker,
                # so stop this execution now (its result would be rejected by the fence anyway)
                log.warning("run %s: lease lost; stopping its handler, its result will be rejected", claim.run.id)
                running.ctx.cancelled.set()
                with self._lock:
                    running.lease_lost = True
