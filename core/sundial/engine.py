"""The engine: Sundial's parts wired together explicitly, and the roles a process plays."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

from .abc import Broker
from .brokers.embedded import EmbeddedBroker
from .clock import Clock
from .config import Settings
from .control import Control
from .deadletters import DeadLetters
from .errors import ConfigError, SundialError, ValidationError
from .handlers import HandlerRegistry
from .job import Job
from .loops import run_loop
from .plugins.manager import PluginFailure, Plugins, load_plugins
from .relay import Relay
from .run import Run
from .scheduler import Scheduler
from .store.migrate import current_revision, head_revision
from .store.sqlalchemy import SQLStore
from .worker import Worker, default_worker_name

log = logging.getLogger(__name__)
ROLES = ("scheduler", "worker")


@dataclass
class StartReport:
    """What ``Engine.start`` found: plugin failures, default jobs added, jobs resumed."""

    plugin_failures: list[PluginFailure] = field(default_factory=list)
    default_jobs_added: list[str] = field(default_factory=list)
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
        self.store = store or SQLStore(settings.database_url)
        self.clock: Clock = clock or self.store
        self.plugins = plugins or load_plugins(disabled=settings.plugins_disabled)
        self.registry = HandlerRegistry()
        self._register_handlers()
        self.broker = broker or self._make_broker()
        self.relay = Relay(
            self.store,
            self.broker,
            batch_size=settings.batch_size,
            max_idle_seconds=settings.max_idle_seconds,
            lookahead_seconds=settings.lookahead_seconds,
        )
        self.scheduler = Scheduler(
            self.store,
            self.registry,
            self.clock,
            batch_size=settings.batch_size,
            max_idle_seconds=settings.max_idle_seconds,
            lookahead_seconds=settings.lookahead_seconds,
            on_runs=self._runs_added,
        )
        self.control = Control(
            self.store,
            self.registry,
            self.clock,
            max_payload_bytes=settings.max_payload_bytes,
            on_change=self._changed,
        )
        self.dead_letters = DeadLetters(self.store, self.broker, on_replay=self._runs_added)
        self.worker: Worker | None = None
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

    def _register_handlers(self) -> None:
        # each plugin registers separately so a failing one is reported and skipped
        for name, plugin in self.plugins.manager.list_name_plugin():
            impl = getattr(plugin, "sundial_register_handlers", None)
            if impl is None:
                continue
            self.registry.plugin = name
            try:
                impl(registry=self.registry)
            except Exception as e:
                log.error("plugin %r failed to register its handlers: %s", name, e)
                self.plugins.failures.append(PluginFailure(name, f"register_handlers: {e.__class__.__name__}: {e}"))
        self.registry.plugin = None

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
        report = StartReport(plugin_failures=list(self.plugins.failures))
        for document in self._default_jobs():
            job_id = str(document.get("id", "?"))
            try:
                if self.control.ensure_job(document) is not None:
                    report.default_jobs_added.append(job_id)
            except ValidationError as e:
                log.error("default job %s is invalid: %s", job_id, e)
                report.default_jobs_invalid[job_id] = str(e)
        report.unparked = [job.id for job in self.control.unpark()]
        return report

    def _default_jobs(self) -> Iterable[dict]:
        for name, plugin in self.plugins.manager.list_name_plugin():
            impl = getattr(plugin, "sundial_default_jobs", None)
            if impl is None:
                continue
            try:
                yield from (dict(doc) for doc in impl() or ())
            except Exception as e:
                log.error("plugin %r failed to declare its default jobs: %s", name, e)
                self.plugins.failures.append(PluginFailure(name, f"default_jobs: {e.__class__.__name__}: {e}"))

    def start(self, roles: Iterable[str] = ROLES) -> StartReport:
        """Prepare the store and start ``roles`` in background threads."""
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
        if "scheduler" in roles:
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
                observe=self._observe,
            )
            self.worker.start()
        return report

    def stop(self, grace_seconds: float | None = None) -> None:
        """Stop scheduling, let in-flight runs finish (or give them back), close connections."""
        self._stop.set()
        self.scheduler.wake()
        for thread in self._threads:
            thread.join(5.0)
        if self.worker is not None:
            grace = self.settings.shutdown_grace_seconds if grace_seconds is None else grace_seconds
            self.worker.stop(grace)
        self.broker.close()
        self.store.close()

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
            log.warning("lease expired on runs %s: redelivering", requeued)
        if not self.broker.reads_outbox:
            stale = self.store.requeue_stale(self.settings.requeue_queued_after_seconds)
            if stale:
                log.warning("%d runs queued too long without a worker taking them: republishing", stale)
        if requeued:
            self._runs_added()
        return self.settings.sweep_interval_seconds

    def _observe(self, job: Job, run: Run, status: str, error: str | None) -> None:
        for name, plugin in self.plugins.manager.list_name_plugin():
            impl = getattr(plugin, "sundial_run_finished", None)
            if impl is None:
                continue
            try:
                impl(job=job, run=run, status=status, error=error)
            except Exception:
                log.exception("plugin %r failed observing run %s", name, run.id)
