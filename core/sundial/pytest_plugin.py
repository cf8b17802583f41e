"""pytest fixtures for plugin authors, registered through the ``pytest11`` entry point.

``sundial_database_url`` gives each test an empty database, once on SQLite and
once on PostgreSQL (a database of its own per test session, at
``SUNDIAL_TEST_POSTGRES_URL``, default ``postgresql+psycopg://127.0.0.1:5432/test``).
PostgreSQL tests are marked ``postgres``, and skipped when the server is
missing, unless ``CI`` is set, where they fail.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

_ADMIN_URL = os.environ.get("SUNDIAL_TEST_POSTGRES_URL", "postgresql+psycopg://127.0.0.1:5432/test")
TEST_DB_PREFIX = "sundial_t_"
# a database or vhost left by a session that crashed is removed by a later session after this long
STALE_AFTER_SECONDS = 6 * 3600


def service_missing(what: str, error: Exception) -> None:
    """Skip a test whose service is down, or fail it when ``CI`` is set."""
    message = f"{what} is not available: {error}"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def session_name() -> str:
    """A name for a database or vhost of this test session, stamped with its creation time."""
    return f"{TEST_DB_PREFIX}{int(time.time())}_{secrets.token_hex(4)}"


def is_stale(name: str) -> bool:
    """Whether ``name`` (from ``session_name``) was made longer than ``STALE_AFTER_SECONDS`` ago."""
    stamp = name[len(TEST_DB_PREFIX) :].split("_")[0]
    return name.startswith(TEST_DB_PREFIX) and stamp.isdigit() and time.time() - int(stamp) > STALE_AFTER_SECONDS


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "postgres: needs the PostgreSQL server (SUNDIAL_TEST_POSTGRES_URL)")


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """Create a PostgreSQL database, yield its URL, drop it (and stale ones of crashed sessions)."""
    try:
        admin = create_engine(_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as e:
        service_missing("PostgreSQL", e)
    name = session_name()
    with admin.connect() as conn:
        found = conn.execute(text("SELECT datname FROM pg_database WHERE datname LIKE :p"), {"p": TEST_DB_PREFIX + "%"})
        for stale in [n for n in found.scalars() if is_stale(n)]:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{stale}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield _ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def sundial_postgres_database() -> Iterator[str]:
    """A PostgreSQL database for this test session's plugin tests (the framework's tests have their own)."""
    with postgres_database() as url:
        yield url


@pytest.fixture
def sundial_postgres_url(sundial_postgres_database: str) -> str:
    """The session's PostgreSQL database, emptied for this test."""
    url = sundial_postgres_database
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def sundial_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: an SQLite file, then the session's PostgreSQL database emptied."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'sundial.db'}"
    return str(request.getfixturevalue("sundial_postgres_url"))
