"""The AI pen-pal plugin: scheduled replies, one per pen pal every 2 to 3 days, and drifting-letter matching."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema
from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from sundial.handlers import HandlerRegistry, RunContext
from sundial.plugins import hookimpl
from sundial.plugins.domain import PluginTables
from sundial.plugins.jobs import cron_job
from sundial_letters import letters, notify

from .composer import Composer, IncomingLetter, Persona, TemplateComposer
from .tables import matches, metadata, personas, replies


class PenpalConfig(Schema):
    """``[plugins.ai_penpal]``. The spec gives replies hourly (section 3) and every 2 hours (section 7): hourly."""

    reply_cron = fields.String(load_default="0 * * * *")
    match_cron = fields.String(load_default="30 * * * *")
    cooldown_min_hours = fields.Float(load_default=48.0, validate=validate.Range(min=0.01))
    cooldown_max_hours = fields.Float(load_default=72.0, validate=validate.Range(min=0.01))
    drifting_after_hours = fields.Float(load_default=72.0, validate=validate.Range(min=0))

    @validates_schema
    def _order(self, data: dict[str, Any], **_: Any) -> None:
        if data["cooldown_max_hours"] < data["cooldown_min_hours"]:
            raise ValidationError("must be at least cooldown_min_hours", "cooldown_max_hours")


class AiPenpalPlugin:
    """Registers the pen-pal handlers; ``composer`` writes the replies (templates unless given another)."""

    def __init__(self, composer: Composer | None = None) -> None:
        self.composer: Composer = composer or TemplateComposer()

    def process_replies(self, ctx: RunContext) -> int:
        """Answer the oldest unanswered letter of each pen pal whose cooldown (2-3 days, jittered) allows."""
        now, config = ctx.now(), ctx.config
        answered = 0
        with ctx.session() as session:
            waiting = (
                select(letters.c.recipient_id, func.min(letters.c.id).label("letter_id"))
                .join(personas, personas.c.user_id == letters.c.recipient_id)
                .outerjoin(replies, replies.c.letter_id == letters.c.id)
                .where(letters.c.status.in_(["delivered", "unlocked"]), replies.c.letter_id.is_(None))
                .group_by(letters.c.recipient_id)
                .order_by(letters.c.recipient_id)
            )
            for persona_id, letter_id in session.execute(waiting).all():
                # jitter from the run and pen pal: a retried attempt asks for the same cooldown
                rng = random.Random(f"{ctx.idempotency_key}:{persona_id}")
                hours = rng.uniform(config["cooldown_min_hours"], config["cooldown_max_hours"])
                if not ctx.cooldown(f"reply:{persona_id}", hours * 3600):
                    continue
                self._reply(ctx, session, persona_id, letter_id, now)
                answered += 1
        ctx.logger.info("pen pals answered %d letters", answered)
        return answered

    def _reply(self, ctx: RunContext, session: Any, persona_id: int, letter_id: int, now: Any) -> None:
        persona_row = session.execute(select(personas).where(personas.c.user_id == persona_id)).one()
        letter_row = session.execute(select(letters).where(letters.c.id == letter_id)).one()
        persona = Persona(persona_row.user_id, persona_row.name, persona_row.tone)
        body = self.composer.compose(IncomingLetter(letter_row.id, letter_row.author_id, letter_row.body), persona)
        reply_id = session.execute(
            insert(letters)
            .values(
                author_id=persona_id,
                recipient_id=letter_row.author_id,
                status="delivered",
                body=body,
                sent_at=now,
                delivered_at=now,
                created_at=now,
            )  # fmt: skip
            .returning(letters.c.id)
        ).scalar_one()
        session.execute(insert(replies).values(letter_id=letter_id, persona_id=persona_id,
                                               reply_letter_id=reply_id, created_at=now))  # fmt: skip
        notify(session, f"penpal-reply:{letter_id}", letter_row.author_id, "penpal_reply",
               {"letter_id": reply_id, "from": persona.name}, now)  # fmt: skip
        ctx.logger.info("%s answered letter %d with letter %d", persona.name, letter_id, reply_id)

    def match_drifting(self, ctx: RunContext) -> int:
        """Give drifting letters nobody answered within ``drifting_after_hours`` to the least busy pen pal."""
        now = ctx.now()
        cutoff = now - timedelta(hours=ctx.config["drifting_after_hours"])
        with ctx.session() as session:
            load = dict(
                session.execute(
                    select(personas.c.user_id, func.count(matches.c.letter_id))
                    .outerjoin(matches, matches.c.persona_id == personas.c.user_id)
                    .group_by(personas.c.user_id)
                ).all()
            )
            if not load:
                ctx.logger.warning("no AI pen pals to match drifting letters with")
                return 0
            drifting = (
                session.execute(
                    select(letters.c.id)
                    .where(
                        letters.c.drifting.is_(True),
                        letters.c.recipient_id.is_(None),
                        letters.c.status == "sent",
                        letters.c.sent_at <= cutoff,
                    )  # fmt: skip
                    .order_by(letters.c.sent_at, letters.c.id)
                )
                .scalars()
                .all()
            )
            for letter_id in drifting:
                persona_id = min(load, key=lambda p: (load[p], p))
                load[persona_id] += 1
                session.execute(
                    update(letters)
                    .where(letters.c.id == letter_id)
                    .values(recipient_id=persona_id, status="delivered", delivered_at=now, updated_at=now)
                )
                session.execute(insert(matches).values(letter_id=letter_id, persona_id=persona_id, matched_at=now))
        ctx.logger.info("matched %d drifting letters with pen pals", len(drifting))
        return len(drifting)

    @hookimpl
    def sundial_config_schema(self) -> Schema:
        return PenpalConfig()

    @hookimpl
    def sundial_register_handlers(self, registry: HandlerRegistry) -> None:
        registry.add("ai_penpal.process_replies", self.process_replies)
        registry.add("ai_penpal.match_drifting", self.match_drifting)

    @hookimpl
    def sundial_tables(self) -> PluginTables:
        return PluginTables(metadata, version=1)

    @hookimpl
    def sundial_default_jobs(self, config: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            cron_job("ai_penpal.process_replies", "AI pen-pal replies", config["reply_cron"]),
            cron_job(
                "ai_penpal.match_drifting", "Match unanswered drifting letters with AI pen pals", config["match_cron"]
            ),  # fmt: skip
        ]

    @hookimpl
    def sundial_demo_data(self, session: Session, now: datetime) -> None:
        session.execute(insert(personas).values(user_id=900, name="Ada", tone="warm"))
        session.execute(insert(letters), [
            {"author_id": 5, "recipient_id": 900, "status": "delivered", "body": "Dear Ada. I moved to the sea.",
             "drifting": False, "sent_at": now, "delivered_at": now, "created_at": now},
            {"author_id": 6, "recipient_id": None, "status": "sent", "body": "To whoever finds this.",
             "drifting": True, "sent_at": now - timedelta(days=4), "delivered_at": None, "created_at": now},
        ])  # fmt: skip
