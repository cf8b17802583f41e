"""The AI pen-pal plugin's tables."""

from __future__ import annotations

from sqlalchemy import Column, Integer, MetaData, String, Table

from sundial.store.tables import UTCDateTime

metadata = MetaData()

personas = Table(
    "penpal_personas",
    metadata,
    Column("user_id", Integer, primary_key=True),
    Column("name", String(100), nullable=False),
    Column("tone", String(32), nullable=False, default="warm"),
)

# one reply per letter answered: the key that keeps a retried run from replying twice
replies = Table(
    "penpal_replies",
    metadata,
    Column("letter_id", Integer, primary_key=True),
    Column("persona_id", Integer, nullable=False),
    Column("reply_letter_id", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

matches = Table(
    "penpal_matches",
    metadata,
    Column("letter_id", Integer, primary_key=True),
    Column("persona_id", Integer, nullable=False),
    Column("matched_at", UTCDateTime, nullable=False),
)
