"""Feature switches at an exact minute, planned through the API or by an event."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from marshmallow import ValidationError as SchemaError
from sqlalchemy import select

from sundial.errors import ValidationError
from sundial.testing import PluginHarness
from sundial_features import plan_switch
from sundial_features.plugin import SWITCH_PLANNED, FeaturesPlugin, flags, history

START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


@pytest.fixture
def harness(sundial_database_url: str) -> Iterator[PluginHarness]:
    h = PluginHarness(sundial_database_url, [("features", FeaturesPlugin())], start=START)
    yield h
    h.close()


def flag_states(h: PluginHarness) -> dict[str, bool]:
    with h.domain.connect() as conn:
        return {name: enabled for name, enabled in conn.execute(select(flags.c.name, flags.c.enabled))}


def test_switches_happen_at_their_exact_minute(harness: PluginHarness) -> None:
    on_at, off_at = START + timedelta(minutes=30), START + timedelta(hours=2, minutes=1)
    job = plan_switch(harness.engine.control, "ai", True, on_at)
    assert plan_switch(harness.engine.control, "ai", True, on_at).id == job.id  # planned once
    harness.engine.control.emit(SWITCH_PLANNED, {"feature": "ai", "enabled": False, "at": off_at.isoformat()}, "e1")
    harness.engine.control.emit(SWITCH_PLANNED, {"feature": "drifting_hall", "enabled": True,
                                                 "at": on_at.isoformat()}, "e2")  # fmt: skip
    harness.execute()  # the event runs plan the switches
    harness.clock.set(on_at - timedelta(minutes=1))
    assert harness.tick() == [] and flag_states(harness) == {}
    harness.clock.set(on_at)
    assert [r.scheduled_at for r in harness.tick()] == [on_at, on_at]
    assert flag_states(harness) == {"ai": True, "drifting_hall": True}
    harness.clock.set(off_at)
    harness.tick()
    assert flag_states(harness) == {"ai": False, "drifting_hall": True}
    with harness.domain.connect() as conn:
        assert [(h.name, h.enabled, h.at) for h in conn.execute(select(history).order_by(history.c.id))][-1] == (
            "ai",
            False,
            off_at,
        )


def test_a_switch_must_be_at_an_exact_minute(harness: PluginHarness) -> None:
    with pytest.raises(SchemaError, match="exact minute"):
        plan_switch(harness.engine.control, "ai", True, START + timedelta(seconds=30))
    with pytest.raises(ValidationError, match="exact minute"):
        harness.engine.control.emit(SWITCH_PLANNED, {"feature": "ai", "enabled": True,
                                                     "at": "2026-03-02T09:00:30+00:00"}, "e3")  # fmt: skip
