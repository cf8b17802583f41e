"""Fixtures of the fault suite (the helpers they hand out are in ``harness.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import redis
from harness import REDIS_URL, Cluster
from sqlalchemy import text

from sundial.pytest_plugin import service_missing, session_name
from sundial.store.sqlalchemy import SQLStore


@pytest.fixture
def cluster(tmp_path: Path, postgres_url: str, postgres_store: SQLStore, rabbitmq_url: str) -> Iterator[Cluster]:
    """Scheduler and worker processes on the session's PostgreSQL database and RabbitMQ vhost."""
    env = {"SUNDIAL_DATABASE_URL": postgres_url, "SUNDIAL_BROKER_URL": rabbitmq_url, "SUNDIAL_CONCURRENCY": "2"}
    cluster = Cluster(tmp_path, postgres_store, env)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def no_default_jobs(cluster: Cluster) -> Iterator[None]:
    """Every plugin off but the test's handlers, for tests that count runs and messages exactly (or crash at the
    first run to reach a failpoint): a default job firing on its own schedule (a plugin's every ten minutes, the
    built-in daily pruning) must neither be counted nor be that run."""
    names = {plugin.name for plugin in entry_points(group="sundial.plugins")} | {"builtin"}
    cluster.env["SUNDIAL_PLUGINS_DISABLED"] = ",".join(sorted(names))
    yield
    assert [job.id for job in cluster.store.find_jobs(limit=1000) if job.origin is not None] == []


@pytest.fixture
def run_creators(postgres_store: SQLStore) -> Iterator[None]:
    """Record which process inserted each run (its PGAPPNAME) in a column of the test's own, dropped after.

    A column default costs the insert path nothing measurable, and Sundial's
    queries name their columns, so they never see it.
    """
    with postgres_store.engine.begin() as conn:
        conn.execute(
            text(
                "ALTER TABLE sundial_runs ADD COLUMN faults_created_by text DEFAULT current_setting('application_name')"
            )
        )
    try:
        yield
    finally:
        with postgres_store.engine.begin() as conn:
            conn.execute(text("ALTER TABLE sundial_runs DROP COLUMN IF EXISTS faults_created_by"))


@pytest.fixture(scope="session")
def redis_key_prefix() -> str:
    """A key prefix of this test session's own in the shared Redis; fails (CI) or skips when Redis is down."""
    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=5).ping()
    except redis.RedisError as e:
        service_missing("Redis", e)
    return f"{session_name()}:"
