"""The envelopes plugin: contest rounds close at their deadline.

Two jobs share the work: a daily sweep at 00:30 closes every round past its
deadline (and plans the exact close of rounds still open), and a one-shot
job per round closes it at the exact minute of its deadline. A round opened
through the ``envelopes.round_opened`` event gets its one-shot at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from marshmallow import Schema, fields
from sqlalchemy import Column, ForeignKey, Integer, MetaData, String, Table, func, insert, select, update
from sqlalchemy.orm import Session

from sundial.handlers import HandlerRegistry, RunContext
from sundial.plugins import hookimpl
from sundial.plugins.domain import PluginTables
from sundial.plugins.jobs import cron_job, event_job
from sundial.store.tables import UTCDateTime

ROUND_OPENED = "envelopes.round_opened"
metadata = MetaData()

rounds = Table(
    "envelope_rounds",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("title", String(200), nullable=False),
    Column("status", String(16), nullable=False, default="open"),  # open, closed
    Column("deadline", UTCDateTime),  # none: the round stays open until closed by hand
    Column("closed_at", UTCDateTime),
    Column("submissions", Integer),  # counted when the round closes
)

submissions = Table(
    "envelope_submissions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("round_id", Integer, ForeignKey("envelope_rounds.id"), nullable=False),
    Column("user_id", Integer, nullable=False),
    Column("design", String(500), nullable=False),
    Column("submitted_at", UTCDateTime, nullable=False),
)


class RoundOpened(Schema):
    """The payload of ``envelopes.round_opened``."""

    round_id = fields.Integer(required=True)


def _close(session: Session, round_ids: list[int], now: datetime) -> None:
    for round_id in round_ids:
        count = session.execute(
            select(func.count()).select_from(submissions).where(submissions.c.round_id == round_id)
        ).scalar_one()
        session.execute(
            update(rounds)
            .where(rounds.c.id == round_id, rounds.c.status == "open")
            .values(status="closed", closed_at=now, submissions=count)
        )


def close_rounds(ctx: RunContext) -> int:
    """Close every open round past its deadline; plan the exact close of the others that have one."""
    now = ctx.now()
    with ctx.session() as session:
        open_rounds = session.execute(
            select(rounds.c.id, rounds.c.deadline).where(rounds.c.status == "open", rounds.c.deadline.is_not(None))
        ).all()
        due = [r.id for r in open_rounds if r.deadline <= now]
        _close(session, due, now)
    for later in (r for r in open_rounds if r.deadline > now):
        _plan_close(ctx, later.id, later.deadline)
    ctx.logger.info("closed rounds %s", due)
    return len(due)


def close_round(ctx: RunContext) -> None:
    """Close the round ``payload.round_id`` (the one-shot at its deadline)."""
    with ctx.session() as session:
        _close(session, [int(ctx.payload["round_id"])], ctx.now())
    ctx.logger.info("closed round %s at its deadline", ctx.payload["round_id"])


def plan_round_close(ctx: RunContext) -> None:
    """A round opened: schedule its close at the exact deadline, if it has one."""
    round_id = int(ctx.payload["round_id"])
    with ctx.session() as session:
        deadline = session.execute(select(rounds.c.deadline).where(rounds.c.id == round_id)).scalar_one()
    if deadline is not None:
        _plan_close(ctx, round_id, deadline)


def _plan_close(ctx: RunContext, round_id: int, deadline: datetime) -> None:
    # the key names the deadline: moving it plans a new one-shot, the old one closes nothing early
    key = f"round-{round_id}-{deadline.strftime('%Y%m%dT%H%M%S')}"
    ctx.schedule("envelopes.close_round", deadline, {"round_id": round_id}, key=key)


class EnvelopesPlugin:
    """Registers the contest-round handlers, tables, event and default jobs."""

    @hookimpl
    def sundial_register_handlers(self, registry: HandlerRegistry) -> None:
        registry.add("envelopes.close_rounds", close_rounds)
        registry.add("envelopes.close_round", close_round)
        registry.add("envelopes.plan_round_close", plan_round_close)

    @hookimpl
    def sundial_tables(self) -> PluginTables:
        return PluginTables(metadata, version=1)

    @hookimpl
    def sundial_event_types(self) -> Mapping[str, Schema]:
        return {ROUND_OPENED: RoundOpened()}

    @hookimpl
    def sundial_default_jobs(self) -> list[dict[str, Any]]:
        return [
            cron_job("envelopes.close_rounds", "Close contest rounds past their deadline", "30 0 * * *"),
            event_job("envelopes.plan_round_close", "Plan a new round's close at its deadline", ROUND_OPENED),
        ]

    @hookimpl
    def sundial_demo_data(self, session: Session, now: datetime) -> None:
        closed = session.execute(
            insert(rounds).values(title="Autumn envelopes", deadline=now - timedelta(hours=1)).returning(rounds.c.id)
        ).scalar_one()
        next_minute = now.replace(second=0, microsecond=0) + timedelta(minutes=2)
        session.execute(
            insert(rounds).values(title="Winter envelopes (closes in a minute or two)", deadline=next_minute)
        )
        session.execute(insert(submissions), [
            {"round_id": closed, "user_id": user, "design": f"design {user}", "submitted_at": now} for user in (1, 2)
        ])  # fmt: skip
