"""Maintenance jobs on real stores: archive and prune, reports, health, weekly clean-up, backups, alerts."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select, update

from sundial.handlers import HandlerRegistry, RunContext
from sundial.plugins import hookimpl
from sundial.run import RunStatus
from sundial.store import tables as store_tables
from sundial.testing import PluginHarness
from sundial_letters import letters, notifications
from sundial_letters.plugin import LettersPlugin
from sundial_maintenance.plugin import MaintenancePlugin
from sundial_maintenance.tables import alerts, backups, health, reports, run_archive

# the store stamps finished runs with the real time: the tests' day is today
TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def fail(ctx: RunContext) -> None:
    """Always fails."""
    raise RuntimeError("disk on fire")


class Failing:
    @hookimpl
    def sundial_register_handlers(self, registry: HandlerRegistry) -> None:
        registry.add("failing.fail", fail)


def make(url: str, **config: Any) -> PluginHarness:
    plugins = [("letters", LettersPlugin()), ("maintenance", MaintenancePlugin()), ("failing", Failing())]
    return PluginHarness(url, plugins, start=TODAY, config={"maintenance": config})


@pytest.fixture
def harness(sundial_database_url: str, tmp_path: Path) -> Iterator[PluginHarness]:
    h = make(sundial_database_url, backup_dir=str(tmp_path / "backups"))
    yield h
    h.close()


def add_failing_job(h: PluginHarness) -> None:
    h.engine.control.add_job({"id": "doomed", "name": "doomed", "handler": "failing.fail", "type": "event",
                              "trigger_event": "doom", "retry_policy": {"max_retries": 0}})  # fmt: skip


def test_old_runs_are_archived_then_pruned(harness: PluginHarness) -> None:
    harness.engine.control.add_job({"id": "hello", "name": "hello", "handler": "sundial.log_message",
                                    "type": "event", "trigger_event": "hi"})  # fmt: skip
    for i in range(3):
        harness.engine.control.emit("hi", {}, f"e{i}")
    done = harness.execute()
    old = [r.id for r in done[:2]]
    with harness.engine.store.engine.begin() as conn:
        conn.execute(update(store_tables.runs).where(store_tables.runs.c.id.in_(old))
                     .values(finished_at=TODAY - timedelta(days=40)))  # fmt: skip
    run = harness.run_now("maintenance.archive_run_history")
    assert run.status is RunStatus.SUCCEEDED
    with harness.domain.connect() as conn:
        assert sorted(conn.execute(select(run_archive.c.run_id)).scalars()) == sorted(old)
    left = {r.id for r in harness.engine.store.list_runs(job_id="hello")}
    assert left == {done[2].id}


def test_daily_and_weekly_reports_count_letters_runs_and_failures(harness: PluginHarness) -> None:
    with harness.domain.begin() as conn:
        conn.execute(insert(letters), [
            {"author_id": 1, "status": "delivered", "body": "", "created_at": TODAY + timedelta(hours=3),
             "delivered_at": TODAY + timedelta(hours=9)},
            {"author_id": 1, "status": "draft", "body": "", "created_at": TODAY - timedelta(days=3),
             "delivered_at": None},
        ])  # fmt: skip
    add_failing_job(harness)
    harness.engine.control.emit("doom", {}, "d1")
    harness.execute()
    harness.clock.set(TODAY + timedelta(days=1, hours=1))
    assert "maintenance.daily_report" in [r.job_id for r in harness.tick()]
    with harness.domain.connect() as conn:
        [report] = conn.execute(select(reports)).all()
    assert report.kind == "daily" and report.period_start == TODAY
    body = report.body
    assert body["letters"] == {"written": 1, "delivered": 1, "by_status": {"delivered": 1, "draft": 1}}
    assert body["failures_by_job"] == {"doomed": 1} and body["runs"]["dead"] == 1
    with harness.domain.connect() as conn:  # the dead run raised an alert through sundial_run_finished
        assert [(a.job_id, a.error) for a in conn.execute(select(alerts))] == [("doomed", "RuntimeError: disk on fire")]
    monday = TODAY + timedelta(days=7 - TODAY.weekday(), hours=4)
    harness.clock.set(monday)
    harness.tick()
    with harness.domain.connect() as conn:
        weekly = conn.execute(select(reports).where(reports.c.kind == "weekly")).one()
    assert weekly.period_end == monday.replace(hour=0) and weekly.period_start == weekly.period_end - timedelta(days=7)


def test_health_snapshot_every_six_hours(harness: PluginHarness) -> None:
    harness.tick()  # midnight's snapshot
    add_failing_job(harness)
    harness.engine.control.emit("doom", {}, "d1")
    harness.execute()
    harness.clock.set(TODAY + timedelta(hours=6))
    harness.tick()
    harness.clock.set(TODAY + timedelta(hours=12))
    harness.tick()
    with harness.domain.connect() as conn:
        snapshots = conn.execute(select(health).order_by(health.c.taken_at)).all()
    assert [s.taken_at for s in snapshots] == [TODAY, TODAY + timedelta(hours=6), TODAY + timedelta(hours=12)]
    assert snapshots[-1].body["dead_runs"] == 1 and snapshots[-1].body["runs"]["dead"] == 1


def test_weekly_maintenance_drops_what_outlived_its_keeping(harness: PluginHarness) -> None:
    old, recent = TODAY - timedelta(days=100), TODAY - timedelta(days=2)
    with harness.domain.begin() as conn:
        conn.execute(insert(notifications), [
            {"key": "a", "user_id": 1, "channel": "app", "kind": "k", "data": {}, "created_at": old, "sent_at": old},
            {"key": "b", "user_id": 1, "channel": "app", "kind": "k", "data": {}, "created_at": old, "sent_at": None},
            {"key": "c", "user_id": 1, "channel": "app", "kind": "k", "data": {}, "created_at": recent,
             "sent_at": recent},
        ])  # fmt: skip
        conn.execute(insert(health), [{"taken_at": old, "body": {}}, {"taken_at": recent, "body": {}}])
    harness.engine.limiter.hit("maintenance:x", 1, 60)
    harness.clock.advance(seconds=120)
    assert harness.run_now("maintenance.weekly_maintenance").status is RunStatus.SUCCEEDED
    with harness.domain.connect() as conn:
        assert sorted(conn.execute(select(notifications.c.key)).scalars()) == ["b", "c"]
        assert list(conn.execute(select(health.c.taken_at)).scalars()) == [recent]
    with harness.engine.store.engine.connect() as conn:
        assert conn.execute(select(store_tables.rate_limits)).all() == []


def test_backup_of_the_store(harness: PluginHarness, tmp_path: Path) -> None:
    run = harness.run_now("maintenance.backup_store")
    assert run.status is RunStatus.SUCCEEDED, run.error
    with harness.domain.connect() as conn:
        [row] = conn.execute(select(backups)).all()
    path = Path(row.path)
    assert path.parent == tmp_path / "backups" and row.bytes == path.stat().st_size > 0
    if harness.engine.store.dialect == "sqlite":
        copy = sqlite3.connect(path)
        assert ("maintenance.backup_store",) in copy.execute("SELECT id FROM sundial_jobs").fetchall()
        copy.close()
    else:
        assert path.read_bytes()[:5] == b"PGDMP"  # pg_dump's custom format


@pytest.mark.postgres
def test_backup_without_pg_dump_fails_the_run_clearly(sundial_postgres_url: str, tmp_path: Path) -> None:
    h = make(sundial_postgres_url, backup_dir=str(tmp_path), pg_dump="pg_dump-not-installed")
    try:
        run = h.run_now("maintenance.backup_store")
        assert run.status is RunStatus.DEAD
        assert "'pg_dump-not-installed' is not installed" in (run.error or "")
    finally:
        h.close()
