"""AI pen pals: the 2-3 day cooldown per pen pal, deterministic replies, and drifting-letter matching."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select

from sundial.run import RunStatus
from sundial.testing import PluginHarness
from sundial_ai_penpal import IncomingLetter, Persona, TemplateComposer
from sundial_ai_penpal.plugin import AiPenpalPlugin
from sundial_ai_penpal.tables import matches, personas, replies
from sundial_letters import letters, notifications
from sundial_letters.plugin import LettersPlugin

START = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)


@pytest.fixture
def harness(sundial_database_url: str) -> Iterator[PluginHarness]:
    plugins = [("letters", LettersPlugin()), ("ai_penpal", AiPenpalPlugin())]
    h = PluginHarness(sundial_database_url, plugins, start=START)
    with h.domain.begin() as conn:
        conn.execute(insert(personas), [{"user_id": 100, "name": "Ada", "tone": "warm"},
                                        {"user_id": 101, "name": "Bo", "tone": "curious"}])  # fmt: skip
    yield h
    h.close()


def add_letter(h: PluginHarness, **values: Any) -> int:
    row = {"author_id": 1, "status": "delivered", "body": "Hello there. How are you?", "created_at": START, **values}
    with h.domain.begin() as conn:
        return int(conn.execute(insert(letters).values(**row).returning(letters.c.id)).scalar_one())


def replied(h: PluginHarness) -> list[tuple[int, int]]:
    with h.domain.connect() as conn:
        return [tuple(r) for r in conn.execute(select(replies.c.letter_id, replies.c.persona_id))]


def test_each_pen_pal_replies_at_most_once_every_two_to_three_days(harness: PluginHarness) -> None:
    first = [add_letter(harness, recipient_id=100) for _ in range(3)]
    other = add_letter(harness, recipient_id=101)
    harness.clock.advance(hours=1)
    harness.tick()
    assert sorted(replied(harness)) == sorted([(first[0], 100), (other, 101)])
    # hourly for 47 more hours: still inside every cooldown
    for _ in range(47):
        harness.clock.advance(hours=1)
        assert all(r.status is RunStatus.SUCCEEDED for r in harness.tick())
    assert len(replied(harness)) == 2
    # by 73 hours both cooldowns (48 to 72 hours) have ended: one more reply each, no more
    for _ in range(25):
        harness.clock.advance(hours=1)
        harness.tick()
    assert sorted(replied(harness)) == sorted([(first[0], 100), (first[1], 100), (other, 101)])
    with harness.domain.connect() as conn:
        reply = conn.execute(select(letters).where(letters.c.author_id == 100).order_by(letters.c.id)).first()
        kinds = conn.execute(select(notifications.c.user_id, notifications.c.kind)).all()
    assert reply is not None and reply.recipient_id == 1 and reply.body.endswith("Ada")
    assert 'You wrote: "Hello there."' in reply.body
    assert [tuple(k) for k in kinds] == [(1, "penpal_reply")] * 3


def test_unanswered_drifting_letters_go_to_the_least_busy_pen_pal(harness: PluginHarness) -> None:
    old = [add_letter(harness, status="sent", drifting=True, sent_at=START - timedelta(hours=80)) for _ in range(3)]
    fresh = add_letter(harness, status="sent", drifting=True, sent_at=START - timedelta(hours=10))
    harness.clock.advance(minutes=30)
    runs = [r for r in harness.tick() if r.job_id == "ai_penpal.match_drifting"]
    assert [r.status for r in runs] == [RunStatus.SUCCEEDED]
    with harness.domain.connect() as conn:
        matched = [tuple(r) for r in conn.execute(select(matches.c.letter_id, matches.c.persona_id))]
        state = {r.id: (r.status, r.recipient_id) for r in conn.execute(select(letters))}
    assert sorted(matched) == [(old[0], 100), (old[1], 101), (old[2], 100)]
    assert state[fresh] == ("sent", None) and state[old[1]] == ("delivered", 101)


def test_the_template_composer_is_deterministic() -> None:
    composer, letter = TemplateComposer(), IncomingLetter(7, 1, "I saw the sea today! It was grey.")
    persona = Persona(100, "Ada")
    assert composer.compose(letter, persona) == composer.compose(letter, persona)
    assert 'You wrote: "I saw the sea today!"' in composer.compose(letter, persona)
    assert composer.compose(IncomingLetter(8, 1, ""), persona).endswith("Ada")
