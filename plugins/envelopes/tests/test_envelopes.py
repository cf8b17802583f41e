"""Contest rounds close at their deadline: the daily 00:30 sweep, and the one-shot at the exact minute."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select

from sundial.testing import PluginHarness
from sundial_envelopes.plugin import ROUND_OPENED, EnvelopesPlugin, rounds, submissions

START = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)


@pytest.fixture
def harness(sundial_database_url: str) -> Iterator[PluginHarness]:
    h = PluginHarness(sundial_database_url, [("envelopes", EnvelopesPlugin())], start=START)
    yield h
    h.close()


def state(h: PluginHarness) -> dict[int, tuple[str, int | None]]:
    with h.domain.connect() as conn:
        return {r.id: (r.status, r.submissions) for r in conn.execute(select(rounds))}


def test_the_daily_sweep_closes_past_rounds_and_plans_the_rest(harness: PluginHarness) -> None:
    exact = START + timedelta(days=1, hours=15, minutes=7)
    with harness.domain.begin() as conn:
        conn.execute(insert(rounds), [
            {"id": 1, "title": "spring", "deadline": START + timedelta(minutes=5)},
            {"id": 2, "title": "summer", "deadline": exact},
            {"id": 3, "title": "open-ended", "deadline": None},
        ])  # fmt: skip
        conn.execute(insert(submissions), [{"round_id": 1, "user_id": u, "design": "d", "submitted_at": START}
                                           for u in (1, 2, 3)])  # fmt: skip
    harness.clock.set(START + timedelta(minutes=30))
    assert [r.job_id for r in harness.tick()] == ["envelopes.close_rounds"]
    assert state(harness) == {1: ("closed", 3), 2: ("open", None), 3: ("open", None)}
    harness.clock.set(exact - timedelta(minutes=1))
    harness.tick()
    assert state(harness)[2] == ("open", None)
    harness.clock.set(exact)
    [run] = harness.tick()
    assert run.job_id.startswith("envelopes.close_round:once:round-2-") and run.scheduled_at == exact
    assert state(harness)[2] == ("closed", 0)


def test_a_round_opened_by_event_closes_at_its_exact_deadline(harness: PluginHarness) -> None:
    deadline = START + timedelta(hours=5, minutes=13)
    with harness.domain.begin() as conn:
        conn.execute(insert(rounds).values(id=9, title="flash", deadline=deadline))
    harness.engine.control.emit(ROUND_OPENED, {"round_id": 9}, "round-9-opened")
    harness.execute()
    harness.clock.set(deadline)
    closes = [r for r in harness.tick() if r.job_id.startswith("envelopes.close_round:")]
    assert [r.scheduled_at for r in closes] == [deadline]
    assert state(harness) == {9: ("closed", 0)}
