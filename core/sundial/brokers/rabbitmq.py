"""The RabbitMQ broker (pika).

Topology, declared idempotently by every process (names read well in the
management UI)::

    sundial.work (direct) --<queue name>--> sundial.work.<queue name>   (quorum, bounded, reject-publish)
    sundial.retry.<tier> (fanout) --> sundial.retry.<tier>              (quorum, TTL = tier)
        --TTL expiry, dead-lettered at-least-once--> sundial.work, with the message's own routing key
    sundial.dead (fanout) --> sundial.dead                              (the parking queue)

One retry queue per delay tier, because RabbitMQ expires messages only at the
head of a queue: in one shared queue a 1 s retry would wait behind a 1 h one.
Dead-lettering out of a quorum queue with ``dead-letter-strategy=at-least-once``
is confirmed (classic queues may drop it), which needs ``overflow=reject-publish``.

A pika connection belongs to one thread, so each thread (the relay, every
worker thread) gets its own, opened on first use and dropped on any error;
RabbitMQ redelivers whatever a dropped connection left unacknowledged.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection

from ..abc import Broker, Delivery, PublishResult
from ..errors import SundialError
from ..run import Run

log = logging.getLogger(__name__)

WORK_EXCHANGE = "sundial.work"
DEAD_EXCHANGE = "sundial.dead"
DEAD_QUEUE = "sundial.dead"
#: retry delay tiers in seconds; a longer delay waits in SQL, not in the broker
RETRY_TIERS = (1, 5, 30, 120, 600, 3600)
MESSAGE_VERSION = 1
HEADER = "x-sundial-"


class BrokerError(SundialError):
    """The broker could not be reached or refused an operation; the connection was dropped."""


def work_queue(name: str) -> str:
    """The work queue of Sundial queue ``name``."""
    return f"{WORK_EXCHANGE}.{name}"


def tier_name(seconds: int) -> str:
    """``sundial.retry.5s``, ``sundial.retry.2m``, ``sundial.retry.1h``: exchange and queue alike."""
    if seconds % 3600 == 0:
        return f"sundial.retry.{seconds // 3600}h"
    if seconds % 60 == 0:
        return f"sundial.retry.{seconds // 60}m"
    return f"sundial.retry.{seconds}s"


def tier_for(delay: float) -> int:
    """The largest tier not longer than ``delay`` (the first tier for shorter delays).

    A run that comes back early is sent round again for what is left, so a
    delay is never cut short, and it is exceeded by at most a smaller tier.
    """
    fitting = [tier for tier in RETRY_TIERS if tier <= delay]
    return fitting[-1] if fitting else RETRY_TIERS[0]


def encode(run: Run, *, last_error: str | None = None) -> tuple[bytes, pika.BasicProperties]:
    """A run as a persistent JSON message whose headers tell an operator what it is."""
    body = {
        "v": MESSAGE_VERSION,
        "run_id": run.id,
        "job_id": run.job_id,
        "attempt": run.attempt,
        "scheduled_at": run.scheduled_at.isoformat(),
    }
    headers: dict[str, Any] = {
        f"{HEADER}job": run.job_id,
        f"{HEADER}attempt": run.attempt,
        f"{HEADER}scheduled-at": run.scheduled_at.isoformat(),
    }
    if run.handler:
        headers[f"{HEADER}handler"] = run.handler
    if last_error:
        headers[f"{HEADER}last-error"] = last_error[:1000]
    properties = pika.BasicProperties(
        message_id=str(run.id),
        content_type="application/json",
        delivery_mode=pika.DeliveryMode.Persistent,
        headers=headers,
        type="sundial.run",
    )
    return json.dumps(body, separators=(",", ":")).encode(), properties


def decode(body: bytes) -> tuple[int, str | None]:
    """The run id (and job id) a message carries; ``ValueError`` saying why when it cannot be read."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"not JSON: {e}") from e
    if not isinstance(data, dict) or data.get("v") != MESSAGE_VERSION:
        raise ValueError(f"not a Sundial run message of version {MESSAGE_VERSION}")
    run_id = data.get("run_id")
    if not isinstance(run_id, int) or isinstance(run_id, bool) or run_id <= 0:
        raise ValueError("run_id is missing or not a positive integer")
    job_id = data.get("job_id")
    return run_id, job_id if isinstance(job_id, str) else None


@dataclass
class _Link:
    """One thread's connection: a consuming channel and a confirming publish channel."""

    connection: BlockingConnection
    publish: BlockingChannel
    consume: BlockingChannel | None = None
    consuming: tuple[str, ...] = ()
    buffer: deque[tuple[Any, Any, bytes]] = field(default_factory=deque)
    declared: set[str] = field(default_factory=set)
    confirmed: dict[int, bool | None] = field(default_factory=dict)  # delivery tag -> acked (None: waiting)
    returned: set[str] = field(default_factory=set)  # message ids returned unroutable
    next_tag: int = 1


@dataclass(frozen=True)
class _Tag:
    """Where a delivery came from: acknowledged on the same channel, or not at all."""

    link: _Link
    delivery_tag: int
    body: bytes
    properties: pika.BasicProperties


def _tag(delivery: Delivery) -> _Tag:
    assert isinstance(delivery.tag, _Tag), "a delivery from another broker"
    return delivery.tag


class RabbitMQBroker(Broker):
    """Runs as messages in RabbitMQ; the store stays the source of truth."""

    reads_outbox = False
    max_delay = float(RETRY_TIERS[-1])

    def __init__(
        self,
        url: str,
        *,
        prefetch: int = 4,
        queue_max_length: int = 100_000,
        confirm_timeout: float = 30.0,
    ) -> None:
        self.parameters = pika.URLParameters(url)
        self.parameters.heartbeat = self.parameters.heartbeat or 30
        self.parameters.blocked_connection_timeout = 60
        self.prefetch = prefetch
        self.queue_max_length = queue_max_length
        self.confirm_timeout = confirm_timeout
        self._local = threading.local()
        self._links: list[_Link] = []
        self._lock = threading.Lock()

    # -- connections -------------------------------------------------------------

    def _link(self) -> _Link:
        link: _Link | None = getattr(self._local, "link", None)
        if link is not None and link.connection.is_open:
            return link
        try:
            connection = BlockingConnection(self.parameters)
            publish = connection.channel()
            link = _Link(connection, publish)
            # pika's blocking channel waits for each confirm in turn; the
            # protocol lets confirms be pipelined, so confirm mode is enabled
            # on the underlying channel with our own callback
            selected = threading.Event()
            publish._impl.confirm_delivery(ack_nack_callback=self._on_confirm(link), callback=lambda _f: selected.set())
            publish._impl.add_on_return_callback(self._on_return(link))
            while not selected.is_set():
                connection.process_data_events(time_limit=0.1)
            self._declare_shared(publish)
        except pika.exceptions.AMQPError as e:
            where = f"{self.parameters.host}:{self.parameters.port}"
            raise BrokerError(f"cannot connect to RabbitMQ at {where}: {e!r}") from e
        self._local.link = link
        with self._lock:
            self._links.append(link)
        return link

    def _drop(self) -> None:
        link: _Link | None = getattr(self._local, "link", None)
        self._local.link = None
        if link is not None:
            with self._lock:
                if link in self._links:
                    self._links.remove(link)
            try:
                if link.connection.is_open:
                    link.connection.close()
            except Exception:  # already broken: nothing more to release
                pass

    @staticmethod
    def _on_confirm(link: _Link) -> Any:
        def on_confirm(frame: Any) -> None:
            method = frame.method
            ok = isinstance(method, pika.spec.Basic.Ack)
            tags = [t for t in link.confirmed if t <= method.delivery_tag] if method.multiple else [method.delivery_tag]
            for tag in tags:
                link.confirmed[tag] = ok

        return on_confirm

    @staticmethod
    def _on_return(link: _Link) -> Any:
        def on_return(_channel: Any, _method: Any, properties: Any, _body: bytes) -> None:
            link.returned.add(properties.message_id)

        return on_return

    # -- topology -------------------------------------------------------------------

    def _declare_shared(self, channel: BlockingChannel) -> None:
        channel.exchange_declare(WORK_EXCHANGE, "direct", durable=True)
        channel.exchange_declare(DEAD_EXCHANGE, "fanout", durable=True)
        channel.queue_declare(DEAD_QUEUE, durable=True, arguments={"x-queue-type": "quorum"})
        channel.queue_bind(DEAD_QUEUE, DEAD_EXCHANGE)
        for tier in RETRY_TIERS:
            name = tier_name(tier)
            channel.exchange_declare(name, "fanout", durable=True)
            channel.queue_declare(
                name,
                durable=True,
                arguments={
                    "x-queue-type": "quorum",
                    "x-message-ttl": tier * 1000,
                    "x-dead-letter-exchange": WORK_EXCHANGE,
                    "x-dead-letter-strategy": "at-least-once",
                    "x-overflow": "reject-publish",
                },
            )
            channel.queue_bind(name, name)

    def setup(self, queues: Sequence[str]) -> None:
        """Declare the shared topology and ``queues`` on a connection of its own, then close it."""
        try:
            for name in queues:
                self.declare_queue(name)
        finally:
            self._drop()

    def declare_queue(self, name: str) -> None:
        """Declare the work queue of Sundial queue ``name`` (idempotent)."""
        link = self._link()
        if name in link.declared:
            return
        try:
            link.publish.queue_declare(
                work_queue(name),
                durable=True,
                arguments={
                    "x-queue-type": "quorum",
                    "x-max-length": self.queue_max_length,
                    "x-overflow": "reject-publish",
                    "x-dead-letter-exchange": DEAD_EXCHANGE,
                    "x-dead-letter-strategy": "at-least-once",
                },
            )
            link.publish.queue_bind(work_queue(name), WORK_EXCHANGE, routing_key=name)
        except pika.exceptions.AMQPError as e:
            self._drop()
            raise BrokerError(f"cannot declare queue {work_queue(name)}: {e!r}") from e
        link.declared.add(name)

    # -- publishing -------------------------------------------------------------------

    def publish(self, runs: Sequence[Run]) -> PublishResult:
        """Publish to each run's work queue; wait for all confirms at once."""
        try:
            for queue in {run.queue for run in runs}:
                self.declare_queue(queue)
        except BrokerError:
            return PublishResult(failed=[run.id for run in runs])
        return self._publish([(WORK_EXCHANGE, run.queue, *encode(run), run.id) for run in runs])

    def _publish(self, items: Sequence[tuple[str, str, bytes, pika.BasicProperties, int]]) -> PublishResult:
        """Publish (exchange, routing key, body, properties, run id) items, then wait for every confirm.

        A broker nack (a full queue refusing with reject-publish) or an
        unroutable return lands the run in ``rejected``; a failure before the
        confirms came lands every unconfirmed run in ``failed``.
        """
        result = PublishResult()
        if not items:
            return result
        tags: dict[int, int] = {}
        link: _Link | None = None
        try:
            link = self._link()
            for exchange, routing_key, body, properties, run_id in items:
                tags[link.next_tag] = run_id
                link.confirmed[link.next_tag] = None
                link.next_tag += 1
                # queue the frames on the underlying channel; the wait below sends them in one
                # flush instead of one socket write and poll per message
                link.publish._impl.basic_publish(exchange, routing_key, body, properties, mandatory=True)
            deadline = time.monotonic() + self.confirm_timeout
            while any(link.confirmed.get(tag) is None for tag in tags):
                if time.monotonic() > deadline:
                    raise BrokerError(f"no publisher confirm within {self.confirm_timeout}s")
                link.connection.process_data_events(time_limit=0.05)
        except (pika.exceptions.AMQPError, BrokerError) as e:
            self._drop()
            log.warning("publishing %d messages failed: %r", len(items), e)
            done = link.confirmed if link is not None else {}
            result.confirmed.extend(run_id for tag, run_id in tags.items() if done.get(tag))
            result.failed.extend(run_id for run_id in (item[4] for item in items) if run_id not in result.confirmed)
            return result
        for tag, run_id in tags.items():
            acked = link.confirmed.pop(tag)
            returned = str(run_id) in link.returned
            link.returned.discard(str(run_id))
            (result.confirmed if acked and not returned else result.rejected).append(run_id)
        return result

    # -- consuming -------------------------------------------------------------------

    def receive_many(self, queues: Sequence[str], worker: str, limit: int, timeout: float) -> list[Delivery]:
        try:
            link = self._link()
            if link.consume is None or link.consuming != tuple(queues):
                link.consume = link.connection.channel()
                link.consume.basic_qos(prefetch_count=self.prefetch)
                for name in queues:
                    self.declare_queue(name)
                    link.consume.basic_consume(
                        work_queue(name), on_message_callback=lambda ch, m, p, b: link.buffer.append((m, p, b))
                    )
                link.consuming = tuple(queues)
            # always pump: heartbeats and acks flow even while the buffer is full
            link.connection.process_data_events(time_limit=0 if link.buffer else timeout)
        except pika.exceptions.AMQPError as e:
            self._drop()
            raise BrokerError(f"consuming failed: {e!r}") from e
        deliveries: list[Delivery] = []
        while link.buffer and len(deliveries) < limit:
            method, properties, body = link.buffer.popleft()
            tag = _Tag(link, method.delivery_tag, body, properties)
            try:
                run_id, job_id = decode(body)
                deliveries.append(Delivery(run_id=run_id, tag=tag, job_id=job_id))
            except ValueError as e:
                deliveries.append(Delivery(run_id=0, tag=tag, error=str(e)))
        return deliveries

    def settle(self, delivery: Delivery) -> None:
        tag = _tag(delivery)
        if tag.link is not getattr(self._local, "link", None) or tag.link.consume is None:
            return  # its connection is gone: RabbitMQ redelivers it, and the claim turns the copy away
        try:
            # queued on the underlying channel and sent with the next flush (the next
            # receive pumps the connection), not one socket write and poll per ack
            tag.link.consume._impl.basic_ack(tag.delivery_tag)
        except pika.exceptions.AMQPError as e:
            self._drop()
            raise BrokerError(f"ack failed: {e!r}") from e

    def retry(self, delivery: Delivery, run: Run, delay: float, error: str | None) -> None:
        """Send the run round a retry tier (about ``delay`` seconds), then acknowledge the delivery."""
        tier = tier_name(tier_for(delay))
        self._forward(delivery, (tier, run.queue, *encode(run, last_error=error), run.id))

    def dead_letter(self, delivery: Delivery, run: Run | None, reason: str) -> None:
        """Park the message in ``sundial.dead`` with ``reason``, then acknowledge the delivery.

        Without a run (the message could not be read, or names no run), the
        message's own body and headers are parked as they came.
        """
        if run is not None:
            body, properties = encode(run, last_error=reason)
        else:
            body, came = _tag(delivery).body, _tag(delivery).properties
            headers = {**(came.headers or {}), f"{HEADER}last-error": reason[:1000]}
            properties = pika.BasicProperties(
                message_id=came.message_id, content_type=came.content_type,
                delivery_mode=pika.DeliveryMode.Persistent, headers=headers,
            )  # fmt: skip
        self._forward(delivery, (DEAD_EXCHANGE, "", body, properties, delivery.run_id))

    def _forward(self, delivery: Delivery, item: tuple[str, str, bytes, pika.BasicProperties, int]) -> None:
        # publish the copy before acknowledging the original: at worst a duplicate, never a loss
        result = self._publish([item])
        if not result.confirmed:
            raise BrokerError(f"{item[0]} did not accept run {item[4]}")
        self.settle(delivery)

    def depths(self, queues: Sequence[str]) -> dict[str, int]:
        """Ready messages per work queue, read with passive declares (a queue not declared yet holds 0)."""
        depths: dict[str, int] = {}
        for name in queues:
            try:
                frame = self._link().publish.queue_declare(work_queue(name), passive=True)
            except pika.exceptions.ChannelClosedByBroker as e:
                self._drop()
                if e.reply_code != 404:
                    raise BrokerError(f"reading {work_queue(name)} failed: {e!r}") from e
                depths[name] = 0
                continue
            except pika.exceptions.AMQPError as e:
                self._drop()
                raise BrokerError(f"reading {work_queue(name)} failed: {e!r}") from e
            depths[name] = int(frame.method.message_count)
        return depths

    def purge_parked(self) -> int:
        try:
            frame = self._link().publish.queue_purge(DEAD_QUEUE)
        except pika.exceptions.AMQPError as e:
            self._drop()
            raise BrokerError(f"purging {DEAD_QUEUE} failed: {e!r}") from e
        return int(frame.method.message_count)

    def close(self) -> None:
        with self._lock:
            links, self._links = list(self._links), []
        for link in links:
            try:
                if link.connection.is_open:
                    link.connection.close()
            except Exception:  # closing is best effort; the broker cleans up after us
                pass
