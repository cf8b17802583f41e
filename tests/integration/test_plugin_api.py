"""The plugin API on real stores: tables, config, events, default jobs and operator edits, the run context."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from marshmallow import Schema, fields
from sqlalchemy import Column, Connection, Integer, MetaData, String, Table, func, insert, select, update

from sundial.errors import ValidationError
from sundial.handlers import RunContext
from sundial.plugins import hookimpl
from sundial.plugins.domain import PluginTables
from sundial.ratelimit import RedisRateLimiter, StoreRateLimiter
from sundial.run import RunStatus
from sundial.store import tables as store_tables
from sundial.testing import PluginHarness
from support import REDIS_URL

START = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
metadata = MetaData()
notes = Table(
    "demo_notes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("key", String(64), unique=True),
    Column("text", String(200)),
)


class DemoConfig(Schema):
    every_minutes = fields.Integer(load_default=10)
    greeting = fields.String(load_default="hi")


class DemoPlugin:
    """A small plugin using every hook."""

    def __init__(self, version: int = 1) -> None:
        self.version = version
        self.finished: list[tuple[str, str]] = []
        self.upgraded_from: list[int] = []

    def upgrade(self, connection: Connection, from_version: int) -> None:
        self.upgraded_from.append(from_version)
        connection.execute(update(notes).values(text="upgraded"))

    @hookimpl
    def sundial_config_schema(self) -> Schema:
        return DemoConfig()

    @hookimpl
    def sundial_register_handlers(self, registry: Any) -> None:
        registry.add("demo.write_note", write_note)
        registry.add("demo.plan_later", plan_later)
        registry.add("demo.limited", limited)
        registry.add("demo.limited_then_fail", limited_then_fail)

    @hookimpl
    def sundial_event_types(self) -> dict[str, Schema]:
        return {"demo.noted": Schema.from_dict({"key": fields.String(required=True)})()}

    @hookimpl
    def sundial_tables(self) -> PluginTables:
        return PluginTables(metadata, version=self.version, upgrade=self.upgrade)

    @hookimpl
    def sundial_default_jobs(self, config: Any) -> list[dict[str, Any]]:
        return [
            {
                "id": "demo.notes",
                "name": f"Notes v{self.version}",
                "handler": "demo.write_note",
                "type": "cron",
                "cron_expression": f"*/{config['every_minutes']} * * * *",
                "payload_template": {"key": "n-{{ run_id }}", "since": "{{ scheduled_at - 1d }}", "v": self.version},
            }
        ]

    @hookimpl
    def sundial_run_finished(self, job: Any, status: str) -> None:
        self.finished.append((job.id, status))


def write_note(ctx: RunContext) -> None:
    """Write a note keyed by the payload's key, with the configured greeting."""
    with ctx.session() as session:
        session.execute(insert(notes).values(key=ctx.payload["key"], text=f"{ctx.config['greeting']} {ctx.payload}"))


def plan_later(ctx: RunContext) -> None:
    """Schedule a note in an hour, twice with the same key, and emit an event."""
    for _ in range(2):
        ctx.schedule("demo.write_note", ctx.now() + timedelta(hours=1), {"key": "later"}, key="later")
    ctx.emit("demo.noted", {"key": "later"})


def limited(ctx: RunContext) -> None:
    """Write a note only when the cooldown of its key allows."""
    if ctx.cooldown("k", 3600):
        with ctx.session() as session:
            session.execute(insert(notes).values(key=f"l-{ctx.run_id}", text="limited"))


def limited_then_fail(ctx: RunContext) -> None:
    """Take the cooldown inside the session, write, then fail: the cooldown goes with the write."""
    with ctx.session() as session:
        if ctx.cooldown("f", 3600):
            session.execute(insert(notes).values(key=f"f-{ctx.run_id}", text="x"))
            if ctx.payload.get("fail"):
                raise RuntimeError("after the cooldown")


@pytest.fixture
def harness(sundial_database_url: str) -> Iterator[PluginHarness]:
    h = PluginHarness(
        sundial_database_url, [("demo", DemoPlugin())], start=START, config={"demo": {"greeting": "hello"}}
    )
    yield h
    h.close()


def rows(h: PluginHarness) -> list[Any]:
    with h.domain.connect() as conn:
        return list(conn.execute(select(notes.c.key, notes.c.text).order_by(notes.c.id)))


def test_tables_config_and_rendered_payload(harness: PluginHarness) -> None:
    assert harness.report.tables == {"demo": "created"}
    assert "demo.notes" in harness.report.default_jobs_added
    harness.clock.advance(minutes=10)
    [run] = harness.tick()
    assert run.status is RunStatus.SUCCEEDED
    [(key, text)] = rows(harness)
    assert key == f"n-{run.id}"
    assert "hello" in text and (START + timedelta(minutes=10) - timedelta(days=1)).isoformat() in text


def test_operator_edits_survive_a_new_plugin_version(harness: PluginHarness) -> None:
    control = harness.engine.control
    control.update_job("demo.notes", {"cron_expression": "0 6 * * *", "timezone": "Europe/Berlin"})
    control.pause("demo.notes")
    job = harness.engine.store.get_job("demo.notes")
    assert {"cron_expression", "timezone", "paused"} <= job.operator_fields
    url = harness.engine.store.url
    harness.close()
    with harness.domain.begin() as conn:
        conn.execute(insert(notes).values(key="old", text="v1"))
    plugin = DemoPlugin(version=2)
    upgraded = PluginHarness(url, [("demo", plugin)], start=START)
    try:
        assert upgraded.report.tables == {"demo": "upgraded"} and plugin.upgraded_from == [1]
        assert [text for _, text in rows(upgraded)] == ["upgraded"]
        assert upgraded.report.default_jobs_updated == ["demo.notes"]
        job = upgraded.engine.store.get_job("demo.notes")
        assert job.name == "Notes v2" and job.payload_template["v"] == 2  # the plugin's change applied
        assert job.trigger.cron_expression == "0 6 * * *" and job.timezone == "Europe/Berlin" and job.paused
        again = PluginHarness(url, [("demo", DemoPlugin(version=2))], start=START)
        assert again.report.default_jobs_updated == [] and again.report.tables == {"demo": "current"}
        again.close()
    finally:
        upgraded.close()


def test_schedule_and_emit_are_durable_and_idempotent(harness: PluginHarness) -> None:
    harness.engine.control.add_job({"id": "planner", "name": "p", "handler": "demo.plan_later", "type": "event",
                                    "trigger_event": "demo.plan"})  # fmt: skip
    harness.engine.control.add_job({"id": "on-noted", "name": "n", "handler": "demo.write_note", "type": "event",
                                    "trigger_event": "demo.noted"})  # fmt: skip
    harness.engine.control.emit("demo.plan", {}, "e1")
    done = harness.execute()
    assert [r.status for r in done] == [RunStatus.SUCCEEDED, RunStatus.SUCCEEDED]
    assert [key for key, _ in rows(harness)] == ["later"]  # the emitted event's run wrote it
    [job] = [j for j in harness.engine.store.list_jobs() if j.handler == "demo.write_note" and j.type == "date"]
    assert job.id == "demo.write_note:once:later" and job.trigger.run_at == START + timedelta(hours=1)
    with pytest.raises(ValidationError, match="key"):
        harness.engine.control.emit("demo.noted", {"other": 1}, "e2")


def test_cooldown_in_the_store_follows_the_clock(harness: PluginHarness) -> None:
    harness.engine.control.add_job({"id": "lim", "name": "l", "handler": "demo.limited", "type": "interval",
                                    "interval_seconds": 600})  # fmt: skip
    for _ in range(7):  # an hour and ten minutes, a run every ten
        harness.clock.advance(minutes=10)
        harness.tick()
    assert len([key for key, _ in rows(harness) if key.startswith("l-")]) == 2


def test_a_cooldown_taken_in_a_failed_session_is_undone(harness: PluginHarness) -> None:
    control = harness.engine.control
    control.add_job({"id": "bad", "name": "b", "handler": "demo.limited_then_fail", "type": "event",
                     "trigger_event": "go", "payload_template": {"fail": True}})  # fmt: skip
    control.add_job({"id": "good", "name": "g", "handler": "demo.limited_then_fail", "type": "event",
                     "trigger_event": "go2"})  # fmt: skip
    control.emit("go", {}, "1")
    assert [r.status for r in harness.execute()] == [RunStatus.DEAD]
    control.emit("go2", {}, "2")
    control.emit("go2", {}, "3")
    [first, second] = harness.execute()
    assert [key for key, _ in rows(harness)] == [f"f-{first.id}"]  # the failed run's cooldown did not count


def test_event_data_is_passed_through_unrendered(harness: PluginHarness) -> None:
    harness.engine.control.add_job(
        {
            "id": "ev",
            "name": "e",
            "handler": "demo.write_note",
            "type": "event",
            "trigger_event": "demo.noted",
            "payload_template": {"key": "k-{{ run_id }}"},
        }
    )
    harness.engine.control.emit("demo.noted", {"key": "{{ run_id }}-as-sent"}, "e1")
    [run] = harness.execute()
    assert run.status is RunStatus.SUCCEEDED
    assert [key for key, _ in rows(harness)] == ["{{ run_id }}-as-sent"]


def test_store_rate_limit_is_atomic_under_concurrency(harness: PluginHarness) -> None:
    limiter = StoreRateLimiter(harness.engine.store, harness.clock)
    results: list[bool] = []
    lock = threading.Lock()

    def hit() -> None:
        for _ in range(5):
            ok = limiter.hit("race", 7, 60)
            with lock:
                results.append(ok)

    threads = [threading.Thread(target=hit) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(True) == 7
    harness.clock.advance(seconds=61)
    assert limiter.hit("race", 7, 60)


def test_redis_rate_limit(redis_prefix: str) -> None:
    limiter = RedisRateLimiter(REDIS_URL, prefix=redis_prefix)
    try:
        assert [limiter.hit("k", 2, 0.5) for _ in range(3)] == [True, True, False]
        threading.Event().wait(0.6)
        assert limiter.hit("k", 2, 0.5)
    finally:
        limiter.close()


def test_handlers_cooldowns_live_in_redis_when_it_is_configured(tmp_path: Any, redis_prefix: str) -> None:
    h = PluginHarness(f"sqlite:///{tmp_path / 'r.db'}", [("demo", DemoPlugin())], start=START,
                      redis_url=REDIS_URL, redis_key_prefix=redis_prefix)  # fmt: skip
    try:
        h.engine.control.add_job({"id": "lim", "name": "l", "handler": "demo.limited", "type": "event",
                                  "trigger_event": "go"})  # fmt: skip
        for i in range(3):
            h.engine.control.emit("go", {}, f"e{i}")
        assert len(h.execute()) == 3
        assert len([key for key, _ in rows(h) if key.startswith("l-")]) == 1
        assert isinstance(h.engine.limiter, RedisRateLimiter)
        assert h.engine.limiter.client.exists(f"{redis_prefix}ratelimit:demo:k") == 1
        with h.engine.store.engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(store_tables.rate_limits)).scalar_one() == 0
    finally:
        h.close()


def test_bad_templates_and_config_are_refused(tmp_path: Any) -> None:
    h = PluginHarness(f"sqlite:///{tmp_path / 'bad.db'}", [("demo", DemoPlugin())], start=START,
                      config={"demo": {"every_minutes": "often"}})  # fmt: skip
    try:
        assert [f.name for f in h.report.plugin_failures] == ["demo"]
        assert "demo.write_note" not in h.engine.registry  # disabled, and the rest runs
        assert "sundial.log_message" in h.engine.registry
        with pytest.raises(ValidationError, match="unknown placeholder"):
            h.engine.control.add_job({"name": "x", "handler": "sundial.log_message", "type": "interval",
                                      "interval_seconds": 5, "payload_template": {"a": "{{ nope }}"}})  # fmt: skip
    finally:
        h.close()
