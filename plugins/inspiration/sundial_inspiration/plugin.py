"""The inspiration plugin: one writing-inspiration card a day, pushed to every subscriber.

The spec gives 20:00 (section 3) and 08:00 (section 7); the default is 20:00,
in the zone ``timezone`` (UTC unless configured).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from marshmallow import Schema, fields
from sqlalchemy import (
    Boolean,
    Column,
    Date,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    insert,
    select,
)
from sqlalchemy.orm import Session

from sundial.handlers import HandlerRegistry, RunContext
from sundial.plugins import hookimpl
from sundial.plugins.domain import PluginTables, insert_ignoring
from sundial.plugins.jobs import cron_job
from sundial_letters import notify

metadata = MetaData()

cards = Table(
    "inspiration_cards",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("text", Text, nullable=False),
    Column("active", Boolean, nullable=False, default=True),
)

subscribers = Table(
    "inspiration_subscribers",
    metadata,
    Column("user_id", Integer, primary_key=True),
    Column("channel", String(16), nullable=False, default="app"),  # app or email
)

pushes = Table(
    "inspiration_pushes",
    metadata,
    Column("user_id", Integer, nullable=False),
    Column("day", Date, nullable=False),
    Column("card_id", Integer, nullable=False),
    PrimaryKeyConstraint("user_id", "day"),
)


class InspirationConfig(Schema):
    """``[plugins.inspiration]``."""

    push_cron = fields.String(load_default="0 20 * * *")
    timezone = fields.String(load_default="UTC")


def push_card(ctx: RunContext) -> int:
    """Push the day's card (the cards take turns, day by day) to every subscriber, once per day."""
    day = ctx.scheduled_at.date()
    with ctx.session() as session:
        active = session.execute(select(cards).where(cards.c.active.is_(True)).order_by(cards.c.id)).all()
        if not active:
            ctx.logger.warning("no active inspiration cards")
            return 0
        card = active[day.toordinal() % len(active)]
        people = session.execute(select(subscribers)).all()
        record = insert_ignoring(session.get_bind().dialect.name, pushes, ["user_id", "day"])
        for person in people:
            session.execute(record.values(user_id=person.user_id, day=day, card_id=card.id))
            notify(session, f"inspiration:{day.isoformat()}:{person.user_id}", person.user_id, "inspiration_card",
                   {"card_id": card.id, "text": card.text}, ctx.now(), channel=person.channel)  # fmt: skip
    ctx.logger.info("card %d pushed to %d subscribers", card.id, len(people))
    return len(people)


class InspirationPlugin:
    """Registers the daily card push."""

    @hookimpl
    def sundial_config_schema(self) -> Schema:
        return InspirationConfig()

    @hookimpl
    def sundial_register_handlers(self, registry: HandlerRegistry) -> None:
        registry.add("inspiration.push_card", push_card)

    @hookimpl
    def sundial_tables(self) -> PluginTables:
        return PluginTables(metadata, version=1)

    @hookimpl
    def sundial_default_jobs(self, config: dict[str, Any]) -> list[dict[str, Any]]:
        return [cron_job("inspiration.push_card", "Push the writing-inspiration card", config["push_cron"],
                         timezone=config["timezone"])]  # fmt: skip

    @hookimpl
    def sundial_demo_data(self, session: Session, now: datetime) -> None:
        session.execute(insert(cards), [{"text": "Describe the view from your window."},
                                        {"text": "Write to yourself ten years from now."}])  # fmt: skip
        session.execute(insert(subscribers), [{"user_id": 1, "channel": "app"}, {"user_id": 5, "channel": "email"}])
