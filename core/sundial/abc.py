"""The seams of Sundial, each a short abstract class with its contract.

The job store has one implementation (``sundial.store.sqlalchemy.SQLStore``,
which serves PostgreSQL and SQLite alike), so it needs no abstract class
here; the broker has an embedded and a RabbitMQ implementation.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

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


class Broker(ABC):
    """Carries runs from the outbox to the workers.

    The store is the source of truth: a broker may deliver a run twice (the
    worker's claim turns a duplicate away), but it must never lose one that
    ``publish`` accepted.
    """

    #: True when the broker reads runs straight from the store, so no relay is needed.
    reads_outbox: bool = False

    @abstractmethod
    def publish(self, runs: Sequence[Run]) -> None:
        """Hand ``runs`` over; return only once the broker holds them durably."""

    @abstractmethod
    def receive(self, queues: Sequence[str], worker: str, timeout: float) -> Delivery | None:
        """Wait at most ``timeout`` seconds for the next run on ``queues``."""

    @abstractmethod
    def settle(self, delivery: Delivery) -> None:
        """Acknowledge a delivery whose outcome the store has already recorded."""

    def wake(self) -> None:  # noqa: B027 - optional: a hint brokers may ignore
        """Tell waiting receivers that new runs may be available (a hint only)."""

    def close(self) -> None:  # noqa: B027 - optional: not every broker holds connections
        """Release connections; further calls are errors."""
