"""The plugins' own tables: declared with ``sundial_tables``, created or upgraded at start.

A plugin keeps its domain tables in its own SQLAlchemy ``MetaData``, in the
domain database (the job store's database unless ``domain_database_url`` says
otherwise). Sundial chose ``metadata.create_all`` with a version number over
one Alembic history per plugin: a plugin that only adds tables needs nothing
but a higher version, and one that changes existing tables brings an
``upgrade`` function (which may well drive Alembic's operations itself). The
version each plugin is at lives in the job store (``sundial_plugin_schemas``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, MetaData, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from ..errors import SundialError
from ..store.sqlalchemy import SQLStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PluginTables:
    """A plugin's tables and their version.

    ``upgrade(connection, from_version)`` is called, in a transaction, when
    the store records an older version than ``version``; tables that do not
    exist yet are created after it.
    """

    metadata: MetaData
    version: int = 1
    upgrade: Callable[[Connection, int], None] | None = None


def set_up_tables(plugin: str, tables: PluginTables, domain: Engine, store: SQLStore) -> str:
    """Create or upgrade ``plugin``'s tables; return what was done (created, upgraded, current).

    ``SundialError`` when the store records a newer version than the plugin
    declares (an older plugin on a newer database), or the database refuses.
    """
    recorded = store.plugin_schema_versions().get(plugin)
    if recorded == tables.version:
        return "current"
    if recorded is not None and recorded > tables.version:
        raise SundialError(
            f"plugin {plugin!r} tables are at version {recorded}, newer than this plugin's {tables.version}"
        )
    try:
        with domain.begin() as conn:
            if recorded is not None and tables.upgrade is not None:
                tables.upgrade(conn, recorded)
            tables.metadata.create_all(conn, checkfirst=True)
    except SQLAlchemyError as e:
        # two processes starting at once may race to create a table: the second one finds it there
        if store.plugin_schema_versions().get(plugin) == tables.version:
            return "current"
        # ... or finds it a moment before the first records the version: its CREATE failed as the
        # first one's commit went in, and a second look sees the tables (an upgrade is never repeated)
        if recorded is not None or not _created_on_second_look(tables, domain):
            raise SundialError(f"plugin {plugin!r} tables could not be set up: {e}") from e
    store.set_plugin_schema_version(plugin, tables.version)
    log.info("plugin %r tables %s at version %d", plugin, "upgraded" if recorded else "created", tables.version)
    return "upgraded" if recorded is not None else "created"


def _created_on_second_look(tables: PluginTables, domain: Engine) -> bool:
    try:
        with domain.begin() as conn:
            tables.metadata.create_all(conn, checkfirst=True)
    except SQLAlchemyError:
        return False
    return True


def insert_ignoring(dialect: str, table: Table, key: Sequence[str]) -> Any:
    """An INSERT into ``table`` that skips rows whose ``key`` exists (ON CONFLICT DO NOTHING).

    The way to make a handler's effect exactly-once: key the row on something
    the run determines (its idempotency key, the letter it is about), so a
    second attempt inserts nothing. ``dialect`` is ``session.bind.dialect.name``.
    """
    dialect_insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return dialect_insert(table).on_conflict_do_nothing(index_elements=list(key))
