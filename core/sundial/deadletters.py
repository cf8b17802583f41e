"""Dead letters: runs that exhausted their retries, to inspect, replay or purge.

The store's dead runs are the list of record; the broker's parking queue
(``sundial.dead`` on RabbitMQ) holds a copy of each message for operators
watching the management UI, plus the messages Sundial could not even read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .abc import Broker
from .errors import ValidationError
from .run import Run
from .store.sqlalchemy import SQLStore


class DeadLetters:
    """List, replay and purge dead runs."""

    def __init__(self, store: SQLStore, broker: Broker, *, on_replay: Callable[[], None] = lambda: None) -> None:
        self.store = store
        self.broker = broker
        self.on_replay = on_replay

    def runs(self, *, job_id: str | None = None, limit: int = 100) -> list[Run]:
        """Dead runs (job, attempts, last error, when), newest first."""
        return self.store.dead_runs(job_id=job_id, limit=limit)

    def replay(self, run_ids: Sequence[int] = (), *, job_id: str | None = None, everything: bool = False) -> list[int]:
        """Give the chosen dead runs a new attempt; return the ids replayed.

        Choose by ids, by job, or ``everything``; asking for nothing is an
        error rather than a silent no-op.
        """
        chosen = self._choose(run_ids, job_id, everything)
        replayed = self.store.replay(chosen)
        if replayed:
            self.on_replay()
        return replayed

    def purge(self, run_ids: Sequence[int] = (), *, job_id: str | None = None, everything: bool = False) -> int:
        """Take the chosen runs off the dead-letter list (their history stays); return how many.

        Purging everything also empties the broker's parking queue.
        """
        chosen = self._choose(run_ids, job_id, everything)
        purged = self.store.purge(chosen)
        if everything:
            self.broker.purge_parked()
        return purged

    def _choose(self, run_ids: Sequence[int], job_id: str | None, everything: bool) -> list[int]:
        if not run_ids and job_id is None and not everything:
            raise ValidationError({"run_ids": ["name runs, a job, or everything"]})
        if run_ids:
            return list(run_ids)
        return [run.id for run in self.store.dead_runs(job_id=job_id, limit=1_000_000)]
