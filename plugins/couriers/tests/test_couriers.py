"""Couriers: the 48-hour threshold, offers to the nearest others, and nearest-neighbour routes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select

from sundial.testing import PluginHarness
from sundial_couriers.plugin import CouriersPlugin, couriers, routes, tasks
from sundial_couriers.routes import distance_km, nearest_neighbour
from sundial_letters import notifications
from sundial_letters.plugin import LettersPlugin

START = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
# couriers in Beijing, far apart enough that "nearest" is plain
COURIERS = [
    {"id": 1, "user_id": 11, "name": "north", "lat": 40.00, "lon": 116.40},
    {"id": 2, "user_id": 12, "name": "centre", "lat": 39.91, "lon": 116.40},
    {"id": 3, "user_id": 13, "name": "south", "lat": 39.80, "lon": 116.40},
    {"id": 4, "user_id": 14, "name": "far", "lat": 31.23, "lon": 121.47},
]


@pytest.fixture
def harness(sundial_database_url: str) -> Iterator[PluginHarness]:
    h = PluginHarness(sundial_database_url, [("letters", LettersPlugin()), ("couriers", CouriersPlugin())],
                      start=START, config={"couriers": {"offer_to": 2}})  # fmt: skip
    with h.domain.begin() as conn:
        conn.execute(insert(couriers), COURIERS)
    yield h
    h.close()


def add_task(h: PluginHarness, **values: Any) -> None:
    with h.domain.begin() as conn:
        conn.execute(insert(tasks).values(**{"letter_id": 1, "lat": 39.9, "lon": 116.4, **values}))


def test_tasks_taken_48_hours_ago_are_taken_back_and_offered_to_the_nearest(harness: PluginHarness) -> None:
    add_task(harness, id=1, status="taken", courier_id=1, taken_at=START - timedelta(hours=47, minutes=30))
    add_task(harness, id=2, status="taken", courier_id=2, taken_at=START - timedelta(hours=46))
    add_task(harness, id=3, status="delivered", courier_id=3, taken_at=START - timedelta(days=5))
    assert "couriers.release_overdue_tasks" in [r.job_id for r in harness.tick()]  # the 00:00 run
    harness.clock.advance(minutes=59)
    assert "couriers.release_overdue_tasks" not in [r.job_id for r in harness.tick()]
    with harness.domain.connect() as conn:
        assert [t.status for t in conn.execute(select(tasks).order_by(tasks.c.id))] == ["taken", "taken", "delivered"]
    harness.clock.advance(minutes=1)  # 01:00: task 1 is 48.5 hours old, task 2 only 47
    assert "couriers.release_overdue_tasks" in [r.job_id for r in harness.tick()]
    with harness.domain.connect() as conn:
        state = {t.id: (t.status, t.courier_id, t.released_from) for t in conn.execute(select(tasks))}
        sent = sorted((n.user_id, n.kind) for n in conn.execute(select(notifications)))
    assert state == {1: ("open", None, 1), 2: ("taken", 2, None), 3: ("delivered", 3, None)}
    # the courier is told; the two nearest others (not the one in Shanghai) are offered the task
    assert sent == [(11, "courier_task_overdue"), (12, "courier_task_offered"), (13, "courier_task_offered")]


def test_routes_are_planned_at_nine_by_nearest_neighbour(harness: PluginHarness) -> None:
    for task_id, lat in ((1, 39.70), (2, 39.95), (3, 39.85)):
        add_task(harness, id=task_id, status="taken", courier_id=2, taken_at=START, lat=lat)
    harness.clock.set(START + timedelta(hours=9))
    assert "couriers.plan_routes" in [r.job_id for r in harness.tick()]
    with harness.domain.connect() as conn:
        [route] = conn.execute(select(routes)).all()
        positions = {t.id: t.route_position for t in conn.execute(select(tasks))}
    # from 39.91: 39.95 is nearest, then 39.85, then 39.70
    assert route.courier_id == 2 and route.day == START.date() and route.task_ids == [2, 3, 1]
    assert positions == {2: 1, 3: 2, 1: 3}
    assert route.distance_km == pytest.approx(distance_km((39.91, 116.4), (39.95, 116.4)) + 0.25 * 111.2, rel=0.01)


def test_nearest_neighbour_is_deterministic_and_visits_every_stop() -> None:
    stops = [(i, (39.9 + (i % 5) * 0.01, 116.3 + (i // 5) * 0.01)) for i in range(25)]
    order, length = nearest_neighbour((39.9, 116.3), stops)
    assert sorted(order) == list(range(25)) and order == nearest_neighbour((39.9, 116.3), stops)[0]
    assert length < sum(distance_km((39.9, 116.3), p) for _, p in stops)
