"""Handlers: named functions that do a job's work, and the context each run gets."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .errors import Conflict

if TYPE_CHECKING:
    from .job import Job
    from .store.sqlalchemy import SQLStore

HANDLER_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
MAX_LOG_LINES = 1000
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

log = logging.getLogger("sundial.run")


class RunLogger:
    """Collects the lines a handler writes; they are stored with the run's outcome.

    Lines are also passed to the ``sundial.run`` Python logger. At most
    ``MAX_LOG_LINES`` are kept per attempt, so a chatty handler cannot bloat
    the store.
    """

    def __init__(self, run_id: int) -> None:
        self.run_id = run_id
        self.lines: list[tuple[datetime, str, str]] = []
        self.dropped = 0
        self._lock = threading.Lock()

    def log(self, level: str, message: str, *args: Any) -> None:
        level = level.upper()
        if level not in _LEVELS:
            raise ValueError(f"level must be one of {', '.join(_LEVELS)}")
        text = message % args if args else message
        log.log(getattr(logging, level), "run %s: %s", self.run_id, text)
        with self._lock:
            if len(self.lines) < MAX_LOG_LINES:
                self.lines.append((datetime.now(UTC), level, text))
            else:
                self.dropped += 1

    def debug(self, message: str, *args: Any) -> None:
        self.log("DEBUG", message, *args)

    def info(self, message: str, *args: Any) -> None:
        self.log("INFO", message, *args)

    def warning(self, message: str, *args: Any) -> None:
        self.log("WARNING", message, *args)

    def error(self, message: str, *args: Any) -> None:
        self.log("ERROR", message, *args)

    def drain(self) -> list[tuple[datetime, str, str]]:
        """The collected lines (with a note of any dropped), emptying the buffer."""
        with self._lock:
            lines, self.lines = self.lines, []
            if self.dropped:
                lines.append((datetime.now(UTC), "WARNING", f"{self.dropped} more lines dropped"))
                self.dropped = 0
        return lines


@dataclass
class RunContext:
    """What a handler gets: the run, its job and payload, a logger, and the store.

    ``idempotency_key`` is stable across every attempt of the run (it is the
    run id): a handler that records it with its effect can make that effect
    happen exactly once although delivery is at-least-once.
    """

    run_id: int
    job: Job
    payload: dict[str, Any]
    scheduled_at: datetime
    attempt: int
    store: SQLStore
    logger: RunLogger
    cancelled: threading.Event = field(default_factory=threading.Event)

    @property
    def idempotency_key(self) -> str:
        return f"sundial-run-{self.run_id}"


Handler = Callable[[RunContext], Any]


@dataclass(frozen=True)
class HandlerInfo:
    name: str
    function: Handler
    plugin: str | None
    description: str


class HandlerRegistry:
    """Handler names to functions; filled by plugins through ``sundial_register_handlers``."""

    def __init__(self) -> None:
        self._handlers: dict[str, HandlerInfo] = {}
        self.plugin: str | None = None  # the plugin registering right now, recorded with each handler

    def add(self, name: str, function: Handler, *, description: str = "") -> None:
        """Register ``function`` as ``name``; ``Conflict`` when another function has that name."""
        if not HANDLER_NAME.match(name):
            raise ValueError(f"handler name {name!r} must look like 'plugin.verb_phrase' (lower case)")
        existing = self._handlers.get(name)
        if existing is not None and existing.function is not function:
            raise Conflict(f"handler {name!r} is registered twice (plugins {existing.plugin} and {self.plugin})")
        doc = description or (function.__doc__ or "").strip().split("\n")[0]
        self._handlers[name] = HandlerInfo(name, function, self.plugin, doc)

    def get(self, name: str) -> HandlerInfo | None:
        return self._handlers.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._handlers

    def names(self) -> list[str]:
        return sorted(self._handlers)
