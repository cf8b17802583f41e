"""Jobs: what to run, when, and how to treat failures and overlap."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from .triggers import TriggerSpec

#: how a handler is named: ``<plugin>.<verb_phrase>``, lower case (``letters.release_future_letters``)
HANDLER_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
Backoff = Literal["fixed", "exponential"]
Overlap = Literal["skip", "queue"]


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how late a failed run is tried again.

    ``max_retries`` counts retries after the first attempt. With
    ``exponential`` backoff the n-th retry waits ``delay * 2**(n-1)``; both
    kinds are capped at ``max_delay_seconds`` and jittered by the worker.
    """

    max_retries: int = 3
    backoff: Backoff = "exponential"
    delay_seconds: float = 10.0
    max_delay_seconds: float = 3600.0

    def delay_for(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1-based), before jitter."""
        if self.backoff == "fixed":
            base = self.delay_seconds
        else:
            base = self.delay_seconds * 2.0 ** min(retry - 1, 60)
        return min(base, self.max_delay_seconds)


@dataclass(frozen=True)
class Job:
    """A stored job. Instances are immutable snapshots of one version of a row."""

    id: str
    name: str
    handler: str
    trigger: TriggerSpec
    payload_template: dict[str, Any] = field(default_factory=dict)
    enabled: bool = True
    paused: bool = False
    retry_policy: RetryPolicy = RetryPolicy()
    misfire_grace_seconds: float | None = None
    coalesce: bool = True
    max_instances: int = 1
    overlap: Overlap = "skip"
    timeout_seconds: float = 300.0
    jitter_seconds: float = 0.0
    queue: str = "default"
    priority: int = 0
    # kept by the store
    parked_reason: str | None = None
    next_run_at: datetime | None = None
    last_executed_at: datetime | None = None
    version: int = 1
    created_at: datetime | None = None
    updated_at: datetime | None = None
    # where a plugin's default job came from, and what an operator changed since (see ``Control``)
    origin: str | None = None
    defaults_hash: str | None = None
    operator_fields: frozenset[str] = frozenset()

    @property
    def type(self) -> str:
        """The trigger's type: cron, interval, date or event."""
        return self.trigger.type

    @property
    def timezone(self) -> str:
        """The IANA zone the job's cron expression is evaluated in."""
        return self.trigger.timezone

    @property
    def active(self) -> bool:
        """Whether the scheduler should consider this job at all."""
        return self.enabled and not self.paused and self.parked_reason is None

    def replace(self, **changes: Any) -> Job:
        """A copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)
