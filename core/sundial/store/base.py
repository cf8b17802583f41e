"""The store's foundation: the SQLAlchemy engine for PostgreSQL or SQLite, transactions, and the clock.

SQLite is put in WAL mode with a busy timeout, and its write transactions
start with ``BEGIN IMMEDIATE`` (SQLAlchemy's documented recipe for taking
over pysqlite's transaction handling), which serialises writers and makes a
read-then-write claim atomic, as ``FOR UPDATE`` does on PostgreSQL.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    any_,
    bindparam,
    create_engine,
    event,
    func,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from ..errors import StoreError
from .forkgate import FORK_GATE


def now_utc() -> datetime:
    """The local wall clock in UTC (the database's clock is ``SQLStore.now``)."""
    return datetime.now(UTC)


class StoreBase:
    """Connections, transactions and the database clock, shared by every part of the store."""

    def __init__(self, url: str, *, echo: bool = False, pool_size: int = 10) -> None:
        self.url = url
        try:
            self.engine = _make_engine(url, echo=echo, pool_size=pool_size)
        except (SQLAlchemyError, ImportError) as e:
            raise StoreError(f"cannot open the job store at {_redact(url)}: {e}") from e
        self.dialect = self.engine.dialect.name
        self._clock_offset: float | None = None
        self._clock_checked = 0.0

    # -- lifecycle -----------------------------------------------------------

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    def migrate(self) -> str:
        """Bring the schema to the newest revision; return that revision."""
        from .migrate import upgrade

        return upgrade(self.engine)

    def now(self) -> datetime:
        """The database's clock, read at most every 10 s and followed locally in between.

        Due times and leases are compared against one clock shared by every
        process, so a worker with a skewed clock cannot fire early or steal a
        live lease.
        """
        if self.dialect == "sqlite":
            return now_utc()
        mono = time.monotonic()
        if self._clock_offset is None or mono - self._clock_checked > 10.0:
            self._clock_offset = self._read_clock_offset()
            self._clock_checked = mono
        return datetime.fromtimestamp(time.time() + self._clock_offset, UTC)

    def _read_clock_offset(self, wall: Callable[[], float] = time.time) -> float:
        """The database clock minus the local one, from the quickest of three readings.

        A reading is placed at the middle of its round trip, so its error is at
        most half of it; a process busy elsewhere (another thread holding the
        interpreter, a collection) stretches some round trips, and would
        otherwise leave the clock that far behind for the next 10 s.
        """
        readings = []
        with self._read() as conn:
            for _ in range(3):
                before = wall()
                db_now = conn.execute(select(func.clock_timestamp())).scalar_one()
                after = wall()
                readings.append((after - before, db_now.timestamp() - (before + after) / 2))
        return min(readings)[1]

    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as conn:
                yield conn
        except IntegrityError:
            raise
        except SQLAlchemyError as e:
            raise StoreError(f"job store write failed: {_reason(e)}") from e

    @contextlib.contextmanager
    def _read(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn:
                conn = conn.execution_options(sundial_read=True)
                with conn.begin():
                    yield conn
        except SQLAlchemyError as e:
            raise StoreError(f"job store read failed: {_reason(e)}") from e

    # -- helpers -------------------------------------------------------------

    def _among(self, column: ColumnElement[Any], values: Iterable[Any]) -> ColumnElement[bool]:
        """``column IN values``; on PostgreSQL ``column = ANY(:array)``, one statement text for any number of
        values, which SQLAlchemy renders and the server prepares once rather than at every batch size."""
        if self.dialect != "postgresql":
            return column.in_(list(values))
        return column == any_(bindparam(None, list(values), type_=postgresql.ARRAY(column.type)))

    def _insert_ignoring(self, table: Any, key: Sequence[str]) -> Any:
        """INSERT that skips rows whose ``key`` exists already (ON CONFLICT DO NOTHING)."""
        dialect_insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        return dialect_insert(table).on_conflict_do_nothing(index_elements=list(key))


def _make_engine(url: str, *, echo: bool, pool_size: int) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, echo=echo, poolclass=NullPool if ":memory:" in url else None)
        FORK_GATE.track(engine)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            reading = conn.get_execution_options().get("sundial_read", False)
            conn.exec_driver_sql("BEGIN" if reading else "BEGIN IMMEDIATE")

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    # no ping before each checkout (a round trip per transaction): a connection the server
    # dropped fails its statement, the pool discards it, and every caller's loop retries
    engine = create_engine(url, echo=echo, pool_size=pool_size, max_overflow=pool_size, pool_recycle=3600)

    @event.listens_for(engine, "connect")
    def _in_utc(dbapi_conn: Any, _record: Any) -> None:
        # times then come back as UTC, and rows need no conversion (tables.UTCDateTime)
        dbapi_conn.execute("SET TIME ZONE 'UTC'")
        dbapi_conn.commit()

    return engine


def _reason(e: SQLAlchemyError) -> str:
    """The driver's own message, without the SQL statement SQLAlchemy appends."""
    original = getattr(e, "orig", None)
    return f"{e.__class__.__name__}: {original if original is not None else e}".strip()


def _redact(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        creds, _, host = rest.rpartition("@")
        user = creds.split(":", 1)[0]
        return f"{scheme}{sep}{user}:***@{host}"
    return url
