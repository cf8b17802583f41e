"""The letters plugin's tables, and the notifications outbox every plugin of the platform writes to."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Column, Index, Integer, MetaData, String, Table, Text
from sqlalchemy.orm import Session

from sundial.plugins.domain import insert_ignoring
from sundial.store.tables import UTCDateTime

metadata = MetaData()

# status: draft -> (bound) -> locked (a future letter) -> unlocked | sent -> delivered;
# cleanup (an unbound draft set aside), reschedule (not delivered in time)
letters = Table(
    "letters",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("author_id", Integer, nullable=False),
    Column("recipient_id", Integer),
    Column("status", String(16), nullable=False, default="draft"),
    Column("body", Text, nullable=False, default=""),
    Column("barcode", String(64), unique=True),
    Column("drifting", Boolean, nullable=False, default=False),
    Column("unlock_at", UTCDateTime),
    Column("unlocked_at", UTCDateTime),
    Column("sent_at", UTCDateTime),
    Column("delivered_at", UTCDateTime),
    Column("expires_at", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime),
    Index("ix_letters_status_unlock_at", "status", "unlock_at"),
    Index("ix_letters_status_created_at", "status", "created_at"),
)

# the outbox the platform's sender reads: a row per message to send, never sent from here
notifications = Table(
    "notifications",
    metadata,
    Column("id", Integer, primary_key=True),
    # what the notification is about, unique: a retried run never notifies twice
    Column("key", String(200), nullable=False, unique=True),
    Column("user_id", Integer, nullable=False),
    Column("channel", String(16), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("data", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime),
    Index("ix_notifications_unsent", "sent_at", "id"),
)


def notify(
    session: Session, key: str, user_id: int, kind: str, data: dict[str, Any], now: datetime, channel: str = "app"
) -> None:
    """Queue a notification for the platform's sender, once per ``key``."""
    statement = insert_ignoring(session.get_bind().dialect.name, notifications, ["key"])
    session.execute(statement.values(key=key, user_id=user_id, channel=channel, kind=kind, data=data, created_at=now))
