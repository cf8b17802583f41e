"""Handlers: named functions that do a job's work, and the context each run gets."""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from . import templates
from .errors import Conflict, SundialError
from .job import HANDLER_NAME

if TYPE_CHECKING:
    from .clock import Clock
    from .control import Control
    from .job import Job
    from .ratelimit import RateLimiter
    from .run import Run
    from .store.sqlalchemy import SQLStore

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

    def extend(self, lines: list[tuple[datetime, str, str]]) -> None:
        """Add lines collected elsewhere (a handler's child process), within the same limit."""
        with self._lock:
            room = max(MAX_LOG_LINES - len(self.lines), 0)
            self.lines.extend(lines[:room])
            self.dropped += max(len(lines) - room, 0)

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


@dataclass(frozen=True)
class Services:
    """What the engine lends every run: the control API, the clock, rate limits, the domain database, configs."""

    control: Control
    clock: Clock
    limiter: RateLimiter
    domain: Engine
    configs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass
class RunContext:
    """What a handler gets: the run, its job and rendered payload, a logger, the store and helpers.

    ``idempotency_key`` is stable across every attempt of the run (it is the
    run id): a handler that records it with its effect can make that effect
    happen exactly once although delivery is at-least-once. ``payload`` is
    the job's payload template rendered for this run (see
    ``sundial.templates``), merged with an event's data for an event run.

    The helpers (``now``, ``session``, ``schedule``, ``emit``, ``cooldown``,
    ``rate_limit``, ``config``) need the engine's services, which the handler
    registry binds before the handler is called.
    """

    run_id: int
    job: Job
    payload: dict[str, Any]
    scheduled_at: datetime
    attempt: int
    store: SQLStore
    logger: RunLogger
    cancelled: threading.Event = field(default_factory=threading.Event)
    services: Services | None = None
    plugin: str | None = None
    # helpers' default keys: the n-th call in a run gets the same key on every attempt
    _made: int = field(default=0, init=False, repr=False)
    _session: Session | None = field(default=None, init=False, repr=False)  # the one open in ``session()``

    @property
    def idempotency_key(self) -> str:
        return f"sundial-run-{self.run_id}"

    def bind(self, services: Services | None, plugin: str | None) -> None:
        """Attach the engine's services and render the payload (done once, before the handler runs)."""
        if self.services is not None:
            return
        self.services, self.plugin = services, plugin
        values = templates.variables(self.run_id, self.job.id, self.scheduled_at, self.job.timezone)
        template = self.job.payload_template
        # only the template's own values are rendered: an event's data is passed through as sent
        self.payload = {
            key: templates.render(value, values) if key in template and template[key] == value else value
            for key, value in self.payload.items()
        }

    def _services(self) -> Services:
        if self.services is None:
            raise SundialError("this context has no engine services; bind(services, plugin) it first")
        return self.services

    @property
    def config(self) -> Mapping[str, Any]:
        """The plugin's configuration, validated by its ``sundial_config_schema`` (empty without one)."""
        return self._services().configs.get(self.plugin or "", {})

    def now(self) -> datetime:
        """The engine's clock (the database's in production; a test may drive it)."""
        return self.services.clock.now() if self.services is not None else self.store.now()

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A SQLAlchemy session on the domain database, in one transaction committed on success."""
        if self._session is not None:
            raise SundialError("ctx.session() is open already; use the session it gave")
        with Session(self._services().domain) as session, session.begin():
            self._session = session
            try:
                yield session
            finally:
                self._session = None

    def _shared_connection(self) -> Connection | None:
        """The open session's connection when it is on the job store's database, else None."""
        services = self._services()
        if self._session is None or services.domain is not self.store.engine:
            return None
        return self._session.connection()

    def _outside_session(self, what: str) -> None:
        # SQLite has one writer: the store's own transaction would wait for the session's forever
        if self._session is not None and self.store.dialect == "sqlite":
            raise SundialError(f"ctx.{what}() on SQLite must be called outside ctx.session()")

    def _key(self, key: str | None) -> str:
        self._made += 1
        return key if key is not None else f"run{self.run_id}-{self._made}"

    def schedule(
        self, handler: str, at: datetime, payload: Mapping[str, Any] | None = None, *, key: str | None = None
    ) -> Job:
        """Run ``handler`` once at ``at`` with ``payload``: a one-shot job, durable in the store.

        The job's id is ``<handler>:once:<key>``; scheduling the same key again
        returns the job already there, so a retried attempt schedules nothing
        twice. Without ``key``, the n-th call of this run has the same key on
        every attempt.
        """
        self._outside_session("schedule")
        job_id = f"{handler}:once:{self._key(key)}"
        document = {
            "id": job_id,
            "name": f"{handler} at {at.isoformat()}",
            "handler": handler,
            "type": "date",
            "run_at": at.isoformat(),
            "payload_template": dict(payload or {}),
        }
        control = self._services().control
        added = control.ensure_job(document, known_handlers_only=True)
        return added if added is not None else control.store.get_job(job_id)

    def emit(self, event: str, payload: Mapping[str, Any], *, event_id: str | None = None) -> list[Run]:
        """Fire ``event`` (a run per listening job); the default id makes a retried attempt fire nothing new."""
        self._outside_session("emit")
        return self._services().control.emit(event, payload, event_id or f"sundial-run-{self.run_id}-{self._key(None)}")

    def rate_limit(self, key: str, limit: int, per_seconds: float) -> bool:
        """Whether one more use of ``key`` fits ``limit`` uses per ``per_seconds``; counts the use if so.

        Keys are the plugin's own (prefixed with its name). Atomic across
        processes: in Redis when ``redis_url`` is set, else in the job store;
        there, when called inside ``session()`` on the store's database, the
        use belongs to the session's transaction and is undone with it.
        """
        connection = self._shared_connection()
        return self._services().limiter.hit(f"{self.plugin or '-'}:{key}", limit, per_seconds, connection=connection)

    def cooldown(self, key: str, seconds: float) -> bool:
        """True at most once per ``key`` every ``seconds``: the caller may act now, and the cooldown starts."""
        return self.rate_limit(key, 1, seconds)


Handler = Callable[[RunContext], Any]


@dataclass(frozen=True)
class HandlerInfo:
    name: str
    function: Handler
    plugin: str | None
    description: str


class HandlerRegistry:
    """Handler names to functions; filled by plugins through ``sundial_register_handlers``.

    ``function`` of a registered handler binds the engine's ``services`` to the
    context before calling the plugin's function, so every caller (the worker,
    a test) hands handlers a context whose helpers work.
    """

    def __init__(self, services: Services | None = None) -> None:
        self._handlers: dict[str, HandlerInfo] = {}
        self._originals: dict[str, Handler] = {}
        self.plugin: str | None = None  # the plugin registering right now, recorded with each handler
        self.services = services

    def add(self, name: str, function: Handler, *, description: str = "") -> None:
        """Register ``function`` as ``name``; ``Conflict`` when another function has that name."""
        if not HANDLER_NAME.match(name):
            raise ValueError(f"handler name {name!r} must look like 'plugin.verb_phrase' (lower case)")
        existing = self._handlers.get(name)
        if existing is not None and self._originals[name] is not function:
            raise Conflict(f"handler {name!r} is registered twice (plugins {existing.plugin} and {self.plugin})")
        doc = description or (function.__doc__ or "").strip().split("\n")[0]
        self._originals[name] = function
        self._handlers[name] = HandlerInfo(name, self._bound(function, self.plugin), self.plugin, doc)

    def _bound(self, function: Handler, plugin: str | None) -> Handler:
        @functools.wraps(function)
        def call(ctx: RunContext) -> Any:
            ctx.bind(self.services, plugin)
            return function(ctx)

        return call

    def remove_plugin(self, plugin: str) -> list[str]:
        """Unregister every handler ``plugin`` registered (it failed after registering); return their names."""
        names = [name for name, info in self._handlers.items() if info.plugin == plugin]
        for name in names:
            del self._handlers[name], self._originals[name]
        return names

    def get(self, name: str) -> HandlerInfo | None:
        return self._handlers.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._handlers

    def names(self) -> list[str]:
        return sorted(self._handlers)
