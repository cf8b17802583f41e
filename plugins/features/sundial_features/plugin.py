"""The features plugin: a module (the AI pen pals, the drifting-letter hall, ...) switched at an exact minute.

Each switch is a one-shot job of ``features.switch``, made by ``plan_switch``
(the API's way) or by the ``features.switch_planned`` event. The job id names
the feature, the state and the minute, so planning the same switch twice
makes one job.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates
from sqlalchemy import Boolean, Column, Integer, MetaData, String, Table, insert, select, update

from sundial.control import Control
from sundial.handlers import HandlerRegistry, RunContext
from sundial.job import Job
from sundial.plugins import hookimpl
from sundial.plugins.domain import PluginTables
from sundial.plugins.jobs import event_job
from sundial.schemas import AwareDateTime
from sundial.store.tables import UTCDateTime

SWITCH_PLANNED = "features.switch_planned"
metadata = MetaData()

flags = Table(
    "feature_flags",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("enabled", Boolean, nullable=False),
    Column("changed_at", UTCDateTime, nullable=False),
)

history = Table(
    "feature_switch_history",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(64), nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("at", UTCDateTime, nullable=False),
    # the run that switched it: a retried run does not log twice
    Column("run_key", String(64), nullable=False, unique=True),
)


class SwitchPlanned(Schema):
    """The payload of ``features.switch_planned``, and of each switch: which module, on or off, when."""

    feature = fields.String(required=True, validate=validate.Regexp(r"^[a-z][a-z0-9_]{0,63}$"))
    enabled = fields.Boolean(required=True)
    at = AwareDateTime(required=True)

    @validates("at")
    def _minute(self, value: datetime, **_: Any) -> None:
        if value.second or value.microsecond:
            raise ValidationError("must be an exact minute (seconds 00)")


def plan_switch(control: Control, feature: str, enabled: bool, at: datetime) -> Job:
    """Plan ``feature`` to be switched on (``enabled``) or off at the minute ``at``; return the one-shot job."""
    data = SwitchPlanned().load({"feature": feature, "enabled": enabled, "at": at.isoformat()})
    document = _switch_job(data["feature"], data["enabled"], data["at"])
    return control.ensure_job(document, known_handlers_only=True) or control.store.get_job(document["id"])


def _key(feature: str, enabled: bool, at: datetime) -> str:
    return f"{feature}:{'on' if enabled else 'off'}:{at.astimezone(UTC).strftime('%Y%m%dT%H%MZ')}"


def _switch_job(feature: str, enabled: bool, at: datetime) -> dict[str, Any]:
    # the id RunContext.schedule would give it, so the API and the event plan the same job
    state = "on" if enabled else "off"
    return {
        "id": f"features.switch:once:{_key(feature, enabled, at)}",
        "name": f"Switch {feature} {state}",
        "handler": "features.switch",
        "type": "date",
        "run_at": at.isoformat(),
        "payload_template": {"feature": feature, "enabled": enabled},
    }


def switch(ctx: RunContext) -> None:
    """Turn ``payload.feature`` on or off (``payload.enabled``), and log it."""
    feature, enabled, now = ctx.payload["feature"], bool(ctx.payload["enabled"]), ctx.now()
    with ctx.session() as session:
        if session.execute(select(history.c.id).where(history.c.run_key == ctx.idempotency_key)).first():
            return
        changed = session.execute(
            update(flags).where(flags.c.name == feature).values(enabled=enabled, changed_at=now)
        ).rowcount
        if not changed:
            session.execute(insert(flags).values(name=feature, enabled=enabled, changed_at=now))
        session.execute(insert(history).values(name=feature, enabled=enabled, at=now, run_key=ctx.idempotency_key))
    ctx.logger.info("feature %s switched %s", feature, "on" if enabled else "off")


def plan_from_event(ctx: RunContext) -> None:
    """The ``features.switch_planned`` event: make the switch's one-shot job."""
    data = SwitchPlanned().load(ctx.payload)
    payload = {"feature": data["feature"], "enabled": data["enabled"]}
    job = ctx.schedule("features.switch", data["at"], payload, key=_key(data["feature"], data["enabled"], data["at"]))
    ctx.logger.info("planned %s", job.id)


class FeaturesPlugin:
    """Registers the feature-switch handlers, tables and event."""

    @hookimpl
    def sundial_register_handlers(self, registry: HandlerRegistry) -> None:
        registry.add("features.switch", switch)
        registry.add("features.plan_from_event", plan_from_event)

    @hookimpl
    def sundial_tables(self) -> PluginTables:
        return PluginTables(metadata, version=1)

    @hookimpl
    def sundial_event_types(self) -> Mapping[str, Schema]:
        return {SWITCH_PLANNED: SwitchPlanned()}

    @hookimpl
    def sundial_default_jobs(self) -> list[dict[str, Any]]:
        return [event_job("features.plan_from_event", "Plan a feature switch", SWITCH_PLANNED)]

    @hookimpl
    def sundial_demo_data(self, now: datetime, control: Control) -> None:
        minute = now.replace(second=0, microsecond=0)
        plan_switch(control, "drifting_hall", True, minute + timedelta(minutes=1))
        plan_switch(control, "drifting_hall", False, minute + timedelta(minutes=2))
