"""The engine: Sundial's parts wired together explicitly, and the roles a process plays."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from marshmallow import Schema
from marshmallow import ValidationError as MarshmallowError
from sqlalchemy import Engine as SQLEngine

from .abc import Broker
from .brokers.embedded import EmbeddedBroker
from .clock import Clock
from .config import Settings
from .control import Control
from .deadletters import DeadLetters
from .errors import ConfigError, SundialError, ValidationError
from .handlers import HandlerRegistry, Services
from .job import Job
from .locks.redis import RedisLocks
from .loops import run_loop
from .metrics import Metrics
from .plugins.domain import PluginTables, set_up_tables
from .plugins.manager import PluginFailure, Plugins, call_impl, load_plugins
from .ratelimit import RateLimiter, RedisRateLimiter, StoreRateLimiter
from .relay import Relay
from .run import Run
from .scheduler import Scheduler
from .store.base import StoreBase
from .store.migrate import current_revision, head_revision
from .store.sqlalchemy import SQLStore
from .worker import Worker, default_worker_name

log = logging.getLogger(__name__)
ROLES = ("scheduler", "worker", "api")


@dataclass
class StartReport:
    """What ``Engine.start`` found: plugin failures, default jobs added, jobs resumed."""

    plugin_failures: list[PluginFailure] = field(default_factory=list)
    tables: dict[str, str] = field(default_factory=dict)
    default_jobs_added: list[str] = field(default_factory=list)
    default_jobs_updated: list[str] = field(default_factory=list)
    default_jobs_invalid: dict[str, str] = field(default_factory=dict)
    unparked: list[str] = field(default_factory=list)


class Engine:
    """One Sundial process: a store, a broker, plugins, and the roles it runs."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: SQLStore | None = None,
        broker: Broker | None = None,
        plugins: Plugins | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.store = store or SQLStore(settings.database_url)
        self.clock: Clock = clock or self.store
        self.plugins = plugins or load_plugins(disabled=settings.plugins_disabled)
        self.plugin_configs = self._load_plugin_configs()
        # the plugins' tables live with the jobs unless the domain has a database of its own
        self._domain_store = StoreBase(settings.domain_database_url) if settings.domain_database_url else None
        self.domain: SQLEngine = self._domain_store.engine if self._domain_store else self.store.engine
        self.limiter: RateLimiter = (
            RedisRateLimiter(settings.redis_url, settings.redis_key_prefix)
            if settings.redis_url
            else StoreRateLimiter(self.store, self.clock)
        )
        # with a broker of its own, workers see busy jobs in Redis before asking the store
        self.locks = RedisLocks(settings.redis_url, settings.redis_key_prefix) if settings.redis_url else None
        if self.locks is not None:
            self.metrics.watch_redis(self.locks)
        self.registry = HandlerRegistry()
        self._register_handlers()
        self.broker = broker or self._make_broker()
        self.relay = Relay(
            self.store,
            self.broker,
            batch_size=settings.batch_size,
            max_idle_seconds=settings.max_idle_seconds,
            lookahead_seconds=settings.lookahead_seconds,
            metrics=self.metrics,
        )
        self.scheduler = Scheduler(
            self.store,
            self.registry,
            self.clock,
            batch_size=settings.batch_size,
            max_idle_seconds=settings.max_idle_seconds,
            lookahead_seconds=settings.lookahead_seconds,
            on_runs=self._runs_added,
            name=settings.worker_name or default_worker_name(),
            backpressure=lambda: self.relay.backpressure,
        )
        self.control = Control(
            self.store,
            self.registry,
            self.clock,
            max_payload_bytes=settings.max_payload_bytes,
            on_change=self._changed,
            event_schemas=self._event_schemas(),
        )
        self.registry.services = Services(self.control, self.clock, self.limiter, self.domain, self.plugin_configs)
        self.dead_letters = DeadLetters(self.store, self.broker, on_replay=self._runs_added)
        self.worker: Worker | None = None
        self.api: Any = None  # the gRPC server of the api role
        self.metrics_address: tuple[str, int] | None = None  # where /metrics listens, once started
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _make_broker(self) -> Broker:
        if self.settings.broker_url is None:
            return EmbeddedBroker(self.store, lease_seconds=self.settings.lease_seconds)
        try:
            from .brokers.rabbitmq import RabbitMQBroker
        except ImportError as e:
            raise ConfigError(f"broker_url: RabbitMQ needs pika: pip install 'sundial[rabbitmq]' ({e})") from e
        return RabbitMQBroker(
            self.settings.broker_url,
            prefetch=self.settings.prefetch * self.settings.concurrency,  # the setting is per handler thread
            queue_max_length=self.settings.queue_max_length,
        )

    def _load_plugin_configs(self) -> dict[str, Mapping[str, Any]]:
        """Each plugin's settings section, loaded with its schema; a plugin whose section is invalid is disabled."""
        configs: dict[str, Mapping[str, Any]] = {}
        schemas = dict(self.plugins.each("sundial_config_schema"))
        for name in self.plugins.names():
            section = dict(self.settings.plugins.get(name, {}))
            declared = schemas.get(name)
            schema: Schema | None = declared() if isinstance(declared, type) else declared
            try:
                if schema is None:
                    if section:
                        raise MarshmallowError({key: ["unknown setting (the plugin declares none)"] for key in section})
                    configs[name] = {}
                else:
                    configs[name] = schema.load(section)
            except MarshmallowError as e:
                self.plugins.fail(name, f"config [plugins.{name}]", str(e.messages), disable=True)
        for name in sorted(set(self.settings.plugins) - set(configs)):
            log.warning("settings section [plugins.%s] names no loaded plugin", name)
        return configs

    def _config_of(self, plugin: str) -> dict[str, Any]:
        return {"config": self.plugin_configs.get(plugin, {})}

    def _register_handlers(self) -> None:
        # each plugin registers separately so a failing one is reported, disabled and skipped
        for name in self.plugins.names():
            self.registry.plugin = name
            register = getattr(self.plugins.manager.get_plugin(name), "sundial_register_handlers", None)
            if register is None:
                continue
            try:
                register(registry=self.registry)
            except Exception as e:
                self._disable(name, "register_handlers", e)
        self.registry.plugin = None

    def _disable(self, name: str, stage: str, error: BaseException | str) -> None:
        self.registry.remove_plugin(name)
        self.plugins.fail(name, stage, error, disable=True)

    def _event_schemas(self) -> dict[str, Schema]:
        schemas: dict[str, Schema] = {}
        owner: dict[str, str] = {}
        for name, declared in self.plugins.each("sundial_event_types"):
            for event, schema in dict(declared or {}).items():
                if event in owner:
                    self.plugins.fail(name, "event_types", f"event {event!r} is already declared by {owner[event]}")
                    continue
                owner[event] = name
                schemas[event] = schema() if isinstance(schema, type) else schema
        return schemas

    def _changed(self) -> None:
        self.scheduler.wake()
        self._runs_added()

    def _runs_added(self) -> None:
        self.relay.wake()
        self.broker.wake()

    # -- start and stop --------------------------------------------------------

    def prepare(self) -> StartReport:
        """Check the schema (creating it in an empty store), add default jobs, resume unparked jobs."""
        revision = current_revision(self.store.engine)
        if revision is None:
            log.info("empty job store: creating the schema")
            self.store.migrate()
        elif revision != head_revision(self.store.engine):
            raise SundialError(
                f"the job store is at schema revision {revision}, "
                f"this Sundial needs {head_revision(self.store.engine)}:"
                " run `python server.py migrate`"
            )
        report = StartReport()
        # a plugin without its tables cannot work: it is disabled, its jobs park (unknown handler)
        for name, tables in list(self.plugins.each("sundial_tables", on_error=self._disable)):
            try:
                if not isinstance(tables, PluginTables):
                    raise TypeError(f"sundial_tables returned {type(tables).__name__}, not PluginTables")
                report.tables[name] = set_up_tables(name, tables, self.domain, self.store)
            except (SundialError, TypeError) as e:
                self._disable(name, "tables", e)
        for name, documents in list(self.plugins.each("sundial_default_jobs", self._config_of)):
            for document in documents or ():
                job_id = str(document.get("id", "?"))
                try:
                    outcome = self.control.apply_default(name, document)
                except ValidationError as e:
                    log.error("default job %s is invalid: %s", job_id, e)
                    report.default_jobs_invalid[job_id] = str(e)
                    continue
                if outcome == "added":
                    report.default_jobs_added.append(job_id)
                elif outcome == "updated":
                    report.default_jobs_updated.append(job_id)
        report.unparked = [job.id for job in self.control.unpark()]
        report.plugin_failures = list(self.plugins.failures)
        for failure in report.plugin_failures:
            self.metrics.plugin_failures.labels(failure.name).inc()
        return report

    def start(self, roles: Iterable[str] = ("scheduler", "worker")) -> StartReport:
        """Prepare the store and start ``roles`` (of ``ROLES``) in background threads."""
        roles = set(roles)
        unknown = roles - set(ROLES)
        if unknown:
            raise ConfigError(f"unknown roles {sorted(unknown)}; known: {', '.join(ROLES)}")
        report = self.prepare()
        try:
            self.broker.setup(self.settings.queues)
        except SundialError as e:
            # not fatal: every connection declares what it uses, once the broker answers
            log.warning("broker not ready at start (%s); carrying on, connections retry with backoff", e)
        for role in ROLES:
            self.metrics.roles.labels(role).set(1 if role in roles else 0)
        if "scheduler" in roles:
            self.metrics.watch_store(self.store)
            self._spawn("sundial-scheduler", self.scheduler.run, self._stop)
            self._spawn("sundial-sweeper", run_loop, self._sweep, self._stop, threading.Event(), "lease sweep")
            if not self.broker.reads_outbox:
                self._spawn("sundial-relay", self.relay.run, self._stop)
        if "worker" in roles:
            self.worker = Worker(
                self.store,
                self.broker,
                self.registry,
                name=self.settings.worker_name or default_worker_name(),
                queues=self.settings.queues,
                concurrency=self.settings.concurrency,
                prefetch=self.settings.prefetch,
                lookahead_seconds=self.settings.lookahead_seconds,
                lease_seconds=self.settings.lease_seconds,
                observe=self.observe,
                metrics=self.metrics,
                isolation=self.settings.handler_isolation,
                locks=None if self.broker.reads_outbox else self.locks,
            )
            self.worker.start()
        if "api" in roles:
            from .api.server import serve  # grpc is loaded only by processes that serve it

            self.api = serve(self)
        if self.settings.metrics_addr:
            try:
                self.metrics_address = self.metrics.serve(self.settings.metrics_addr)
            except OSError as e:
                self.stop(grace_seconds=0)
                raise ConfigError(f"setting 'metrics_addr' (SUNDIAL_METRICS_ADDR): cannot listen there: {e}") from e
        return report

    def stop(self, grace_seconds: float | None = None) -> None:
        """Stop scheduling, let in-flight runs finish (or give them back), close connections."""
        self._stop.set()
        if self.api is not None:
            self.api.stop()
        self.scheduler.wake()
        for thread in self._threads:
            thread.join(5.0)
        if self.worker is not None:
            grace = self.settings.shutdown_grace_seconds if grace_seconds is None else grace_seconds
            self.worker.stop(grace)
        self.metrics.close()
        self.broker.close()
        self.store.close()
        if self._domain_store is not None:
            self._domain_store.close()
        if isinstance(self.limiter, RedisRateLimiter):
            self.limiter.close()
        if self.locks is not None:
            self.locks.close()

    def request_stop(self, *, hurry: bool = False) -> None:
        """Ask ``wait`` to return (safe from a signal handler); ``hurry`` cuts the grace period short."""
        self._stop.set()
        if hurry and self.worker is not None:
            self.worker.hurry()

    def wait(self) -> None:
        """Block until ``stop`` is called (from a signal handler, say)."""
        self._stop.wait()

    def _spawn(self, name: str, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)  # type: ignore[arg-type]
        thread.start()
        self._threads.append(thread)

    def _sweep(self) -> float:
        """Redeliver runs whose worker's lease expired (it died or hung), or whose message went missing."""
        requeued = self.store.expire_leases()
        if requeued:
            self.metrics.leases_expired.inc(len(requeued))
            log.warning("lease expired on runs %s: redelivering", requeued)
        if not self.broker.reads_outbox:
            stale = self.store.requeue_stale(self.settings.requeue_queued_after_seconds)
            if stale:
                log.warning("%d runs queued too long without a worker taking them: republishing", stale)
        if requeued:
            self._runs_added()
        return self.settings.sweep_interval_seconds

    def observe(self, job: Job, run: Run, status: str, error: str | None) -> None:
        """Tell every plugin's ``sundial_run_finished`` about an attempt's outcome; their errors are logged."""
        args = {"job": job, "run": run, "status": status, "error": error, "domain": self.domain}
        for impl in self.plugins.hook.sundial_run_finished.get_hookimpls():
            try:
                call_impl(impl, args)
            except Exception:
                log.exception("plugin %r failed observing run %s", impl.plugin_name, run.id)
