"""The letters plugin: future letters, draft clean-up, rescheduling, expiry, and barcode binding."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from marshmallow import Schema, fields, validate
from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.orm import Session

from sundial.handlers import HandlerRegistry, RunContext
from sundial.plugins import hookimpl
from sundial.plugins.domain import PluginTables
from sundial.plugins.jobs import cron_job, event_job

from .tables import letters, metadata, notify

BARCODE_ACTIVATED = "letters.barcode_activated"


class LettersConfig(Schema):
    """``[plugins.letters]``."""

    release_batch = fields.Integer(load_default=500, validate=validate.Range(min=1, max=100_000))
    unbound_days = fields.Integer(load_default=7, validate=validate.Range(min=1))
    undelivered_days = fields.Integer(load_default=7, validate=validate.Range(min=1))


class BarcodeActivated(Schema):
    """The payload of ``letters.barcode_activated``: a barcode was scanned onto a letter."""

    barcode = fields.String(required=True, validate=validate.Length(min=1, max=64))
    letter_id = fields.Integer(required=True)


def release_future_letters(ctx: RunContext) -> int:
    """Unlock future letters whose time has come and notify their recipients."""
    now = ctx.now()
    with ctx.session() as session:
        due = session.execute(
            select(letters.c.id, letters.c.recipient_id)
            .where(letters.c.status == "locked", letters.c.unlock_at <= now)
            .order_by(letters.c.unlock_at)
            .limit(ctx.config["release_batch"])
        ).all()
        for letter_id, recipient_id in due:
            session.execute(
                update(letters)
                .where(letters.c.id == letter_id)
                .values(status="unlocked", unlocked_at=now, updated_at=now)
            )
            if recipient_id is not None:
                notify(session, f"letter-unlocked:{letter_id}", recipient_id, "letter_unlocked",
                       {"letter_id": letter_id}, now)  # fmt: skip
    ctx.logger.info("released %d future letters", len(due))
    return len(due)


def clean_unbound_drafts(ctx: RunContext) -> int:
    """Move drafts with no barcode bound for ``unbound_days`` to the draft clean-up area."""
    now = ctx.now()
    cutoff = now - timedelta(days=ctx.config["unbound_days"])
    with ctx.session() as session:
        moved = session.execute(
            update(letters)
            .where(letters.c.status == "draft", letters.c.barcode.is_(None), letters.c.created_at <= cutoff)
            .values(status="cleanup", updated_at=now)
        ).rowcount
    ctx.logger.info("moved %d unbound drafts created before %s to clean-up", moved, cutoff.isoformat())
    return moved


def mark_undelivered(ctx: RunContext) -> int:
    """Mark letters sent ``undelivered_days`` ago and still not delivered for rescheduling."""
    now = ctx.now()
    cutoff = now - timedelta(days=ctx.config["undelivered_days"])
    with ctx.session() as session:
        stale = session.execute(
            select(letters.c.id, letters.c.author_id).where(letters.c.status == "sent", letters.c.sent_at <= cutoff)
        ).all()
        for letter_id, author_id in stale:
            session.execute(
                update(letters).where(letters.c.id == letter_id).values(status="reschedule", updated_at=now)
            )
            notify(session, f"letter-reschedule:{letter_id}", author_id, "letter_reschedule",
                   {"letter_id": letter_id}, now)  # fmt: skip
    ctx.logger.info("marked %d undelivered letters for rescheduling", len(stale))
    return len(stale)


def clean_expired_letters(ctx: RunContext) -> int:
    """Delete drafts and clean-up letters whose expiry has passed (delivered letters are kept)."""
    now = ctx.now()
    with ctx.session() as session:
        deleted = session.execute(
            delete(letters).where(and_(letters.c.status.in_(["draft", "cleanup"]), letters.c.expires_at <= now))
        ).rowcount
    ctx.logger.info("deleted %d expired letters", deleted)
    return deleted


def bind_letter(ctx: RunContext) -> None:
    """Bind an activated barcode to its letter, seal the letter, and tell its author."""
    now = ctx.now()
    barcode, letter_id = ctx.payload["barcode"], int(ctx.payload["letter_id"])
    with ctx.session() as session:
        row = session.execute(select(letters.c.author_id, letters.c.barcode).where(letters.c.id == letter_id)).first()
        if row is None:
            raise LookupError(f"barcode {barcode}: no letter {letter_id}")
        if row.barcode not in (None, barcode):
            raise ValueError(f"letter {letter_id} is bound to barcode {row.barcode} already")
        session.execute(
            update(letters)
            .where(letters.c.id == letter_id)
            .values(barcode=barcode, status="sent", sent_at=now, updated_at=now)
        )
        notify(session, f"letter-bound:{letter_id}", row.author_id, "letter_bound",
               {"letter_id": letter_id, "barcode": barcode}, now)  # fmt: skip
    ctx.logger.info("barcode %s bound to letter %d", barcode, letter_id)


class LettersPlugin:
    """Registers the letters handlers, tables, event and default jobs."""

    @hookimpl
    def sundial_config_schema(self) -> Schema:
        return LettersConfig()

    @hookimpl
    def sundial_register_handlers(self, registry: HandlerRegistry) -> None:
        registry.add("letters.release_future_letters", release_future_letters)
        registry.add("letters.clean_unbound_drafts", clean_unbound_drafts)
        registry.add("letters.mark_undelivered", mark_undelivered)
        registry.add("letters.clean_expired_letters", clean_expired_letters)
        registry.add("letters.bind_letter", bind_letter)

    @hookimpl
    def sundial_tables(self) -> PluginTables:
        return PluginTables(metadata, version=1)

    @hookimpl
    def sundial_event_types(self) -> Mapping[str, Schema]:
        return {BARCODE_ACTIVATED: BarcodeActivated()}

    @hookimpl
    def sundial_default_jobs(self) -> list[dict[str, Any]]:
        return [
            cron_job("letters.release_future_letters", "Release future letters", "*/10 * * * *"),
            cron_job("letters.clean_unbound_drafts", "Move unbound drafts to clean-up", "0 3 * * *"),
            cron_job("letters.mark_undelivered", "Mark undelivered letters for rescheduling", "15 * * * *"),
            cron_job("letters.clean_expired_letters", "Clean expired letters", "0 2 * * *"),
            event_job("letters.bind_letter", "Bind a letter to its activated barcode", BARCODE_ACTIVATED),
        ]

    @hookimpl
    def sundial_demo_data(self, session: Session, now: datetime) -> None:
        day = timedelta(days=1)
        samples = [
            {"author_id": 1, "recipient_id": 2, "status": "locked", "body": "Hello from last year.",
             "unlock_at": now - timedelta(minutes=1), "created_at": now - 365 * day},
            {"author_id": 1, "status": "draft", "body": "Never posted.", "created_at": now - 8 * day},
            {"author_id": 3, "recipient_id": 4, "status": "sent", "body": "Lost on the way?",
             "sent_at": now - 8 * day, "created_at": now - 9 * day},
            {"author_id": 3, "status": "cleanup", "body": "Old draft.", "expires_at": now - day,
             "created_at": now - 40 * day},
        ]  # fmt: skip
        for sample in samples:  # one by one: their columns differ
            session.execute(insert(letters).values(**sample))
