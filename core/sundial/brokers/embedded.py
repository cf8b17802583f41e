"""The embedded broker: the job store's outbox is the queue.

A separate queue would be one more thing to keep durable and in step with
the store; reading open runs straight from the runs table keeps every run
durable by construction and needs no relay. Receivers in this process are
woken when runs are added; other processes notice within ``poll_seconds``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from ..abc import Broker, Delivery, PublishResult
from ..run import Run, RunStatus
from ..store.sqlalchemy import SQLStore

_CLAIMABLE = (RunStatus.PENDING, RunStatus.QUEUED, RunStatus.RETRYING)


class EmbeddedBroker(Broker):
    """Delivers runs by claiming them in the store."""

    reads_outbox = True

    def __init__(self, store: SQLStore, *, lease_seconds: float = 30.0, poll_seconds: float = 0.5) -> None:
        self.store = store
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self._ready = threading.Condition()
        self._generation = 0

    def publish(self, runs: Sequence[Run]) -> PublishResult:
        # the runs are rows in the store already: that is the durable hand-over
        self.wake()
        return PublishResult(confirmed=[run.id for run in runs])

    def receive_many(self, queues: Sequence[str], worker: str, limit: int, timeout: float) -> list[Delivery]:
        deadline = time.monotonic() + timeout
        while True:
            with self._ready:
                seen = self._generation
            claims = self.store.claim_many(worker, self.lease_seconds, queues=queues, statuses=_CLAIMABLE, limit=limit)
            if claims:
                return [Delivery(run_id=claim.run.id, claim=claim) for claim in claims]
            left = deadline - time.monotonic()
            if left <= 0:
                return []
            with self._ready:
                if self._generation == seen:
                    self._ready.wait(min(left, self.poll_seconds))

    def settle(self, delivery: Delivery) -> None:
        # the outcome written to the store is the acknowledgement
        return None

    def wake(self) -> None:
        with self._ready:
            self._generation += 1
            self._ready.notify_all()
