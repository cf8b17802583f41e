"""The outbox relay: publishes pending runs and marks them queued once the broker confirmed them.

A run is committed to SQL before it is published, so a crash between the two
only means it is published again (a duplicate the worker's claim turns
away), never lost. When a work queue is full the broker refuses the run; the
relay keeps it pending and backs off, so nothing is dropped.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from .abc import Broker
from .failpoints import failpoint
from .loops import run_loop
from .metrics import Metrics
from .store.sqlalchemy import SQLStore

log = logging.getLogger(__name__)
MAX_BACKOFF_SECONDS = 10.0


@dataclass(frozen=True)
class RelayPass:
    """What one relay pass did."""

    published: int
    rejected: int
    failed: int
    full: bool  # the batch was full: more runs may be waiting


class Relay:
    """Moves runs from the store's outbox to the broker."""

    def __init__(
        self,
        store: SQLStore,
        broker: Broker,
        *,
        batch_size: int = 500,
        max_idle_seconds: float = 1.0,
        lookahead_seconds: float = 0.0,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.lookahead_seconds = lookahead_seconds
        self.broker = broker
        self.batch_size = batch_size
        self.max_idle_seconds = max_idle_seconds
        self.backpressure = False
        self.metrics = metrics or Metrics()
        self._wake = threading.Event()
        self._backoff = 0.1

    def relay_once(self) -> RelayPass:
        """Publish one batch of due pending runs; mark the confirmed ones queued."""
        # the batch stays locked while it is published, so the relays of other schedulers skip it
        with self.store.publishing(self.batch_size, ahead_seconds=self.lookahead_seconds) as (runs, conn):
            if not runs:
                self.backpressure = False
                self.metrics.relay_pass(0, 0)
                return RelayPass(0, 0, 0, full=False)
            failpoint("relay.before_publish")
            result = self.broker.publish(runs)
            failpoint("relay.after_publish")
            confirmed = set(result.confirmed)
            self.store.mark_queued([run for run in runs if run.id in confirmed], self.store.now(), connection=conn)
        self.backpressure = bool(result.rejected)
        self.metrics.relay_pass(len(result.confirmed), len(result.rejected))
        return RelayPass(len(result.confirmed), len(result.rejected), len(result.failed), len(runs) >= self.batch_size)

    def wake(self) -> None:
        """New runs are pending: publish them now rather than at the next poll."""
        self._wake.set()

    def run(self, stop: threading.Event) -> None:
        """Relay until ``stop`` is set, backing off while the broker refuses or is away."""
        run_loop(self._step, stop, self._wake, "relay pass")

    def _step(self) -> float:
        done = self.relay_once()
        if done.rejected or done.failed:
            if done.rejected:
                log.warning(
                    "a work queue is full: %d runs stay pending, retrying in %.1fs", done.rejected, self._backoff
                )
            delay, self._backoff = self._backoff, min(self._backoff * 2, MAX_BACKOFF_SECONDS)
            return delay
        self._backoff = 0.1
        return 0.0 if done.full else self.max_idle_seconds
