"""Shared fixtures: a fresh store on SQLite and on PostgreSQL for every test.

Each test session creates its own PostgreSQL database (dropped at the end;
ones left by a crashed session are dropped by the next), so two sessions on
one machine never collide. With ``CI`` set, a missing service fails the
tests that need it instead of skipping them.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from sundial.clock import FakeClock
from sundial.pytest_plugin import is_stale, postgres_database, service_missing, session_name
from sundial.ratelimit import RedisRateLimiter
from sundial.store import tables
from sundial.store.sqlalchemy import SQLStore
from support import REDIS_URL


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The URL of a PostgreSQL database created for this test session."""
    with postgres_database() as url:
        yield url


@pytest.fixture(scope="session")
def _postgres_store(postgres_url: str) -> Iterator[SQLStore]:
    store = SQLStore(postgres_url)
    store.migrate()
    yield store
    store.close()


def _empty(store: SQLStore) -> None:
    with store.engine.begin() as conn:
        for table in reversed(tables.metadata.sorted_tables):
            conn.execute(table.delete())


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SQLStore]:
    store = SQLStore(f"sqlite:///{tmp_path / 'sundial.db'}")
    store.migrate()
    yield store
    store.close()


@pytest.fixture
def postgres_store(request: pytest.FixtureRequest) -> Iterator[SQLStore]:
    store: SQLStore = request.getfixturevalue("_postgres_store")
    _empty(store)
    yield store


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest) -> SQLStore:
    """The same tests, once on SQLite and once on PostgreSQL."""
    return request.getfixturevalue(f"{request.param}_store")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 3, 2, 12, 0, 0, tzinfo=UTC))


# -- RabbitMQ: a vhost of its own per test session -----------------------------------

RABBITMQ_HOST = os.environ.get("SUNDIAL_TEST_RABBITMQ_HOST", "127.0.0.1")
RABBITMQ_API = f"http://{RABBITMQ_HOST}:15672/api"


class RabbitAPI:
    """The management HTTP API, as operators see the queues."""

    def __init__(self, vhost: str) -> None:
        self.vhost = vhost

    def call(self, method: str, path: str, body: object = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{RABBITMQ_API}{path}", data=data, method=method)
        request.add_header("Authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read()
        return json.loads(text) if text else None

    def queue(self, name: str) -> dict[str, Any]:
        """A queue's state (counts refresh every few seconds in the management API)."""
        return self.call("GET", f"/queues/{quote(self.vhost, safe='')}/{quote(name, safe='')}")

    def queues(self) -> list[dict[str, Any]]:
        return self.call("GET", f"/queues/{quote(self.vhost, safe='')}")

    def peek(self, name: str, count: int = 100) -> list[dict[str, Any]]:
        """Messages in a queue, left in place."""
        return self.call(
            "POST",
            f"/queues/{quote(self.vhost, safe='')}/{quote(name, safe='')}/get",
            {"count": count, "ackmode": "ack_requeue_true", "encoding": "auto"},
        )


@pytest.fixture(scope="session")
def rabbitmq_vhost() -> Iterator[str]:
    """A RabbitMQ vhost created for this test session (stale ones from crashed sessions are removed)."""
    name = session_name()
    api = RabbitAPI(name)
    try:
        existing = api.call("GET", "/vhosts")
    except Exception as e:
        service_missing("the RabbitMQ management API", e)
    for vhost in existing:
        if is_stale(vhost["name"]):
            api.call("DELETE", f"/vhosts/{quote(vhost['name'], safe='')}")
    api.call("PUT", f"/vhosts/{quote(name, safe='')}")
    api.call("PUT", f"/permissions/{quote(name, safe='')}/guest", {"configure": ".*", "write": ".*", "read": ".*"})
    try:
        yield name
    finally:
        api.call("DELETE", f"/vhosts/{quote(name, safe='')}")


@pytest.fixture
def rabbit(rabbitmq_vhost: str) -> Iterator[RabbitAPI]:
    """The session's vhost, emptied of Sundial's queues and exchanges before the test."""
    api = RabbitAPI(rabbitmq_vhost)
    vhost = quote(rabbitmq_vhost, safe="")
    for queue in api.queues():
        api.call("DELETE", f"/queues/{vhost}/{quote(queue['name'], safe='')}")
    for exchange in api.call("GET", f"/exchanges/{vhost}"):
        if exchange["name"].startswith("sundial."):
            api.call("DELETE", f"/exchanges/{vhost}/{quote(exchange['name'], safe='')}")
    yield api


@pytest.fixture
def rabbitmq_url(rabbit: RabbitAPI) -> str:
    return f"amqp://guest:guest@{RABBITMQ_HOST}:5672/{quote(rabbit.vhost, safe='')}"


# -- Redis: a key prefix of each test's own ----------------------------------------------------


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test's own, its keys deleted afterwards."""
    limiter = RedisRateLimiter(REDIS_URL, prefix=f"sundial-test-{secrets.token_hex(6)}:")
    try:
        limiter.client.ping()
    except Exception as e:
        service_missing("Redis", e)
    yield limiter.prefix
    for key in limiter.client.scan_iter(f"{limiter.prefix}*"):
        limiter.client.delete(key)
    limiter.close()
