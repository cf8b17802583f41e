"""The letters plugin's jobs, run through Sundial on SQLite and PostgreSQL under a controlled clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select

from sundial.errors import ValidationError
from sundial.run import RunStatus
from sundial.testing import PluginHarness
from sundial_letters import letters, notifications
from sundial_letters.plugin import BARCODE_ACTIVATED, LettersPlugin

START = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)


@pytest.fixture
def harness(sundial_database_url: str) -> Iterator[PluginHarness]:
    h = PluginHarness(sundial_database_url, [("letters", LettersPlugin())], start=START)
    yield h
    h.close()


def seed(h: PluginHarness, *rows: dict[str, Any]) -> None:
    with h.domain.begin() as conn:
        for row in rows:  # one at a time: an executemany takes its columns from the first row
            conn.execute(insert(letters).values(**{"author_id": 1, "created_at": START, "body": "", **row}))


def statuses(h: PluginHarness) -> dict[int, str]:
    with h.domain.connect() as conn:
        return {i: s for i, s in conn.execute(select(letters.c.id, letters.c.status))}


def notified(h: PluginHarness) -> list[tuple[int, str]]:
    with h.domain.connect() as conn:
        return [tuple(r) for r in conn.execute(select(notifications.c.user_id, notifications.c.kind))]


def advance_to(h: PluginHarness, when: datetime) -> list[Any]:
    """Tick the clock minute by minute up to ``when``, running what falls due; return every run."""
    done = []
    while h.clock.now() < when:
        h.clock.advance(minutes=1)
        done += h.tick()
    return done


def test_future_letters_are_released_every_ten_minutes(harness: PluginHarness) -> None:
    seed(
        harness,
        {"id": 1, "status": "locked", "recipient_id": 7, "unlock_at": START + timedelta(minutes=3)},
        {"id": 2, "status": "locked", "recipient_id": 8, "unlock_at": START + timedelta(minutes=25)},
    )
    runs = advance_to(harness, START + timedelta(minutes=10))
    assert [(r.job_id, r.scheduled_at) for r in runs] == [
        ("letters.release_future_letters", START),
        ("letters.release_future_letters", START + timedelta(minutes=10)),
    ]
    assert all(r.status is RunStatus.SUCCEEDED for r in runs)
    assert statuses(harness) == {1: "unlocked", 2: "locked"}
    assert notified(harness) == [(7, "letter_unlocked")]
    advance_to(harness, START + timedelta(minutes=30))
    assert statuses(harness) == {1: "unlocked", 2: "unlocked"}
    assert notified(harness) == [(7, "letter_unlocked"), (8, "letter_unlocked")]


def test_unbound_drafts_move_to_clean_up_after_seven_days_at_three(harness: PluginHarness) -> None:
    seed(
        harness,
        {"id": 1, "status": "draft", "created_at": START - timedelta(days=6, hours=21)},  # 7 days at 03:00
        {"id": 2, "status": "draft", "created_at": START - timedelta(days=6, hours=20)},  # 1 hour short
        {"id": 3, "status": "draft", "created_at": START - timedelta(days=30), "barcode": "B3"},
    )
    harness.clock.set(START + timedelta(hours=3))
    runs = {r.job_id: r for r in harness.tick()}
    assert runs["letters.clean_unbound_drafts"].status is RunStatus.SUCCEEDED
    assert statuses(harness) == {1: "cleanup", 2: "draft", 3: "draft"}


def test_letters_undelivered_for_seven_days_are_marked_for_rescheduling(harness: PluginHarness) -> None:
    seed(
        harness,
        {"id": 1, "status": "sent", "sent_at": START - timedelta(days=7)},
        {"id": 2, "status": "sent", "sent_at": START - timedelta(days=6, hours=23)},
        {"id": 3, "status": "delivered", "sent_at": START - timedelta(days=9)},
    )
    harness.run_now("letters.mark_undelivered")
    assert statuses(harness) == {1: "reschedule", 2: "sent", 3: "delivered"}
    assert notified(harness) == [(1, "letter_reschedule")]


def test_expired_letters_are_cleaned_at_two(harness: PluginHarness) -> None:
    expired = START + timedelta(hours=1)
    seed(
        harness,
        {"id": 1, "status": "cleanup", "expires_at": expired},
        {"id": 2, "status": "delivered", "expires_at": expired},
        {"id": 3, "status": "draft", "expires_at": START + timedelta(days=1)},
    )
    harness.clock.set(START + timedelta(hours=2))
    assert "letters.clean_expired_letters" in [r.job_id for r in harness.tick()]
    assert statuses(harness) == {2: "delivered", 3: "draft"}


def test_barcode_activation_binds_the_letter_once(harness: PluginHarness) -> None:
    seed(harness, {"id": 5, "status": "draft", "author_id": 3})
    harness.engine.control.emit(BARCODE_ACTIVATED, {"barcode": "X1", "letter_id": 5}, "scan-1")
    harness.engine.control.emit(BARCODE_ACTIVATED, {"barcode": "X1", "letter_id": 5}, "scan-1")  # a repeat
    [run] = harness.execute()
    assert run.status is RunStatus.SUCCEEDED
    with harness.domain.connect() as conn:
        assert conn.execute(select(letters.c.barcode, letters.c.status)).one() == ("X1", "sent")
    assert notified(harness) == [(3, "letter_bound")]
    with pytest.raises(ValidationError):
        harness.engine.control.emit(BARCODE_ACTIVATED, {"letter_id": 5}, "scan-2")
