"""The seams of Sundial, each a short abstract class with its contract.

The job store has one implementation (``sundial.store.sqlalchemy.SQLStore``,
which serves PostgreSQL and SQLite alike), so it needs no abstract class
here; the broker has an embedded and a RabbitMQ implementation.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

from .job import Job
from .run import Run


@dataclass(frozen=True)
class Claim:
    """A worker's hold on one attempt of a run.

    ``fence`` is the run's fencing token after the claim raised it; the store
    accepts the attempt's result only while the run still carries it.
    """

    run: Run
    job: Job
    fence: int
    worker: str

    @property
    def attempt(self) -> int:
        return self.run.attempt


@dataclass(frozen=True)
class Delivery:
    """One run handed to a worker by a broker.

    Brokers that carry only the run id leave ``claim`` empty and the worker
    claims the run in the store; the embedded broker claims while it
    delivers, so the claim travels with the delivery.
    """

    run_id: int
    claim: Claim | None = None
    tag: object = None
    #: why the message could not be read (it is parked, never retried)
    error: str | None = None
    #: the run's job, where the message says (a hint for the locks' fast path; the claim is the truth)
    job_id: str | None = None


@dataclass
class PublishResult:
    """Which runs a broker accepted durably, refused (a full queue), or never answered for."""

    confirmed: list[int] = field(default_factory=list)
    rejected: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)


class Broker(ABC):
    """Carries runs from the outbox to the workers.

    The store is the source of truth: a broker may deliver a run twice (the
    worker's claim turns a duplicate away), but it must never lose one that
    ``publish`` accepted.
    """

    #: True when the broker reads runs straight from the store, so no relay is needed.
    reads_outbox: bool = False
    #: the longest retry delay the broker holds; a longer one waits in the store
    max_delay: float = float("inf")

    @abstractmethod
    def publish(self, runs: Sequence[Run]) -> PublishResult:
        """Hand ``runs`` over; a run is confirmed only once the broker holds it durably."""

    @abstractmethod
    def receive_many(self, queues: Sequence[str], worker: str, limit: int, timeout: float) -> list[Delivery]:
        """Wait at most ``timeout`` seconds for runs on ``queues``; return up to ``limit`` at once.

        Settle each delivery from the thread that received it.
        """

    def receive(self, queues: Sequence[str], worker: str, timeout: float) -> Delivery | None:
        """One delivery, or None after ``timeout`` seconds."""
        deliveries = self.receive_many(queues, worker, 1, timeout)
        return deliveries[0] if deliveries else None

    @abstractmethod
    def settle(self, delivery: Delivery) -> None:
        """Acknowledge a delivery whose outcome the store has already recorded."""

    def retry(self, delivery: Delivery, run: Run, delay: float, error: str | None) -> None:
        """Deliver ``run`` again after about ``delay`` seconds (at most ``max_delay``), then settle."""
        self.settle(delivery)

    def dead_letter(self, delivery: Delivery, run: Run | None, reason: str) -> None:
        """Park the delivery where an operator can inspect and replay it, then settle."""
        self.settle(delivery)

    def setup(self, queues: Sequence[str]) -> None:  # noqa: B027 - optional: only brokers with topology
        """Declare whatever the broker needs for ``queues`` (idempotent; called at start)."""

    def depths(self, queues: Sequence[str]) -> dict[str, int]:
        """Messages waiting in each of ``queues``' work queues, where the broker keeps its own (else empty)."""
        return {}

    def purge_parked(self) -> int:
        """Empty the broker's parking queue, if it has one; return how many messages went."""
        return 0

    def wake(self) -> None:  # noqa: B027 - optional: a hint brokers may ignore
        """Tell waiting receivers that new runs may be available (a hint only)."""

    def close(self) -> None:  # noqa: B027 - optional: not every broker holds connections
        """Release connections; further calls are errors."""
