"""Prometheus metrics: what each process did, and what the store holds.

Every process counts what it did itself (runs finished by outcome, run
duration, fire lag, publishes refused by a full queue, leases expired,
plugins that failed to load). Processes that run the scheduler also export
what the store holds, read at scrape time (open runs by queue and status,
dead runs, outbox lag, and each job's last success), so those figures are
right however many processes come and go; with several schedulers, take the
``max`` across them.

``sundial_job_last_success_timestamp_seconds`` comes from SQL, not from a
process's memory, so a restarted worker does not reset it: it is what the
dead man's switch in ``docs/alerts.yml`` watches.

Each ``Metrics`` has a registry of its own (no global state): two engines in
one process, as in tests, never share counters.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .scheduler import ALIVE_SECONDS

if TYPE_CHECKING:
    from .locks.redis import RedisLocks
    from .store.sqlalchemy import SQLStore

log = logging.getLogger(__name__)

# runs are short or long: from a no-op handler to an hour's backup
_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600)
_LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# a run's finish time is the database's clock at its transaction, committed a moment later:
# re-reading this far back catches a late commit, and max() makes the overlap harmless
_SUCCESS_OVERLAP = timedelta(minutes=5)


class Metrics:
    """The metrics of one Sundial process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.runs = Counter(
            "sundial_job_runs", "Attempts finished by this process, by job and outcome", ["job", "outcome"], registry=r
        )
        self.duration = Histogram(
            "sundial_run_duration_seconds", "Handler run time", ["handler"], buckets=_DURATION_BUCKETS, registry=r
        )
        self.fire_lag = Histogram(
            "sundial_fire_lag_seconds", "Handler start minus fire time", ["queue"], buckets=_LAG_BUCKETS, registry=r
        )
        self.timeouts = Counter("sundial_run_timeouts", "Handlers stopped at their timeout", ["handler"], registry=r)
        self.published = Counter("sundial_relay_published_runs", "Runs the broker confirmed", registry=r)
        self.refused = Counter("sundial_relay_refused_runs", "Runs a full work queue refused", registry=r)
        self.backpressure = Gauge(
            "sundial_relay_backpressure", "1 while a full work queue makes the relay hold runs back", registry=r
        )
        self.leases_expired = Counter(
            "sundial_leases_expired_runs", "Runs redelivered because their worker's lease expired", registry=r
        )
        self.plugin_failures = Gauge(
            "sundial_plugin_failures", "Failures of a plugin at start (it is disabled)", ["plugin"], registry=r
        )
        self.busy_holds = Counter(
            "sundial_lock_busy_deliveries", "Deliveries held back a moment: Redis showed their job busy", registry=r
        )
        self.roles = Gauge("sundial_process_role", "1 for each role this process runs", ["role"], registry=r)
        self._server: object | None = None

    # -- what components report ------------------------------------------------------

    def run_finished(
        self, job: str, handler: str, queue: str, outcome: str, duration: float | None, lag: float | None
    ) -> None:
        """One attempt recorded: ``outcome`` is the run's new status (or ``rejected`` for a stale result)."""
        self.runs.labels(job, outcome).inc()
        if duration is not None:
            self.duration.labels(handler).observe(duration)
        if lag is not None:
            self.fire_lag.labels(queue).observe(max(lag, 0.0))

    def relay_pass(self, confirmed: int, refused: int) -> None:
        """One relay pass: how many runs the broker took, and how many a full queue refused."""
        self.published.inc(confirmed)
        self.refused.inc(refused)
        self.backpressure.set(1 if refused else 0)

    def watch_redis(self, locks: RedisLocks) -> None:
        """Export whether Redis answers, asked at each scrape as ``server.py status`` asks it.

        A process whose jobs never take a lock would otherwise show the
        answer of its last call, however old. Within ``retry_after_seconds``
        of a failure Redis is not asked again, so a scrape costs at most one
        short timeout.
        """
        up = Gauge(
            "sundial_redis_up", "1 while Redis answers (0: the store alone decides overlaps)", registry=self.registry
        )
        up.set_function(lambda: 1.0 if locks.ping() else 0.0)

    def watch_store(self, store: SQLStore) -> None:
        """Export what ``store`` holds, read at each scrape (for processes that run the scheduler)."""
        self.registry.register(StoreCollector(store))

    # -- serving ----------------------------------------------------------------------

    def serve(self, address: str) -> tuple[str, int]:
        """Serve ``/metrics`` over HTTP at ``host:port`` (port 0 picks one); return where it listens."""
        host, port = parse_address(address)
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        self._server = server
        bound_host, bound_port = server.server_address[:2]
        log.info("metrics at http://%s:%d/metrics", bound_host, bound_port)
        return str(bound_host), int(bound_port)

    def close(self) -> None:
        """Stop serving."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()  # type: ignore[attr-defined]
            server.server_close()  # type: ignore[attr-defined]


def parse_address(address: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:9464`` for IPv6) as a pair; the settings have checked its form."""
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


class StoreCollector(Collector):
    """Gauges read off the store at scrape time; a store that does not answer yields none, never an error."""

    def __init__(self, store: SQLStore) -> None:
        self.store = store
        self._successes: dict[str, datetime] = {}
        self._read_up_to: datetime | None = None
        self._lock = threading.Lock()  # scrapes may overlap

    def describe(self) -> list[Metric]:
        return []  # gauges come and go with the store's contents: nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        try:
            with self._lock:
                now = self.store.now()
                depths = self.store.queue_depths()
                dead_letters = self.store.dead_by_queue()
                schedulers = len(self.store.schedulers(now - timedelta(seconds=ALIVE_SECONDS)))
                lag = self.store.outbox_lag()
                since = self._read_up_to - _SUCCESS_OVERLAP if self._read_up_to else None
                for job, at in self.store.last_successes(since).items():
                    if job not in self._successes or at > self._successes[job]:
                        self._successes[job] = at
                self._read_up_to = now
                successes = dict(self._successes)
        except Exception as e:  # a scrape must not fail: the process's own metrics still count
            log.warning("metrics: the store did not answer (%s)", e)
            yield GaugeMetricFamily("sundial_store_up", "1 when the store answered this scrape", value=0)
            return
        yield GaugeMetricFamily("sundial_store_up", "1 when the store answered this scrape", value=1)
        runs = GaugeMetricFamily("sundial_queue_runs", "Open runs in the store", labels=["queue", "status"])
        for queue, counts in sorted(depths.items()):
            for status, n in sorted(counts.items()):
                runs.add_metric([queue, status], n)
        yield runs
        dead = GaugeMetricFamily(
            "sundial_dead_letters", "Dead runs on the dead-letter list, by queue", labels=["queue"]
        )
        for queue, n in sorted(dead_letters.items()):
            dead.add_metric([queue], n)
        yield dead
        yield GaugeMetricFamily(
            "sundial_schedulers_alive",
            "Schedulers whose heartbeat is recent: they cooperate, none leads, one is enough",
            value=schedulers,
        )
        yield GaugeMetricFamily(
            "sundial_outbox_lag_seconds", "How long the oldest due pending run has waited to be published", value=lag
        )
        last = GaugeMetricFamily(
            "sundial_job_last_success_timestamp_seconds",
            "When the job's newest successful run finished",
            labels=["job"],
        )
        for job, at in sorted(successes.items()):
            last.add_metric([job], at.timestamp())
        yield last
