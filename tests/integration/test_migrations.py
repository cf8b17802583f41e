"""The store's migrations: a store at the first revision upgrades with its jobs intact, and downgrades."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from sqlalchemy import inspect, text

from sundial.store.migrate import alembic_config, current_revision, head_revision
from sundial.store.sqlalchemy import SQLStore


def test_upgrading_from_0001_keeps_existing_jobs_and_downgrades(sundial_database_url: str) -> None:
    store = SQLStore(sundial_database_url)
    try:
        config = alembic_config(store.engine)
        command.upgrade(config, "0001")
        now = datetime(2026, 3, 2, tzinfo=UTC)
        with store.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO sundial_jobs (id, name, handler, type, interval_seconds, timezone, payload_template,"
                    " enabled, paused, active, max_retries, backoff, retry_delay_seconds, retry_max_delay_seconds,"
                    " coalesce, max_instances, overlap, timeout_seconds, jitter_seconds, queue, priority, version,"
                    " created_at, updated_at) VALUES ('old', 'old', 'sundial.log_message', 'interval', 60, 'UTC',"
                    " '{}', true, false, true, 3, 'fixed', 1, 1, true, 1, 'skip', 10, 0, 'default', 0, 1, :t, :t)"
                ),
                {"t": now if store.dialect == "postgresql" else now.strftime("%Y-%m-%d %H:%M:%S.%f")},
            )
        command.upgrade(config, "head")
        assert current_revision(store.engine) == head_revision(store.engine) == "0004_control"
        job = store.get_job("old")
        assert job.origin is None and job.operator_fields == frozenset() and job.defaults_hash is None
        tables = set(inspect(store.engine).get_table_names())
        assert {"sundial_plugin_schemas", "sundial_rate_limits", "sundial_pauses", "sundial_schedulers"} <= tables
        assert "sundial_event_nonces" in tables
        command.downgrade(config, "0001")
        assert "origin" not in {c["name"] for c in inspect(store.engine).get_columns("sundial_jobs")}
        assert not {"sundial_rate_limits", "sundial_pauses"} & set(inspect(store.engine).get_table_names())
    finally:
        store.close()
