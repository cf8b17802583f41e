"""Processes starting together on a fresh database race to create a plugin's tables; none of them fails."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import Column, Integer, MetaData, Table

from sundial.plugins.domain import PluginTables, set_up_tables
from sundial.store.sqlalchemy import SQLStore


@pytest.mark.postgres
def test_the_process_that_loses_the_race_to_create_a_plugins_tables_finds_them(postgres_store: SQLStore) -> None:
    metadata = MetaData()
    Table("race_things", metadata, Column("id", Integer, primary_key=True))
    tables = PluginTables(metadata, version=1)
    engine = postgres_store.engine
    results: list[object] = []
    try:
        with engine.begin() as winner:
            metadata.create_all(winner)  # the first process's CREATE, not committed yet
            loser = threading.Thread(target=lambda: results.append(_set_up(tables, postgres_store)))
            loser.start()
            loser.join(1.0)
            assert loser.is_alive()  # its CREATE waits for the first one's transaction ...
        # ... which commits before it records the version: the second one's CREATE fails
        loser.join(30)
        assert results == ["created"]
        assert postgres_store.plugin_schema_versions()["race"] == 1
    finally:
        metadata.drop_all(engine)


def _set_up(tables: PluginTables, store: SQLStore) -> object:
    try:
        return set_up_tables("race", tables, store.engine, store)
    except Exception as e:  # the failure is the result the test looks at
        return e
