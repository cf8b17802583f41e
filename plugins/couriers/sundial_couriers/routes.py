"""Ordering deliveries into a route: nearest neighbour on great-circle distance."""

from __future__ import annotations

import math
from collections.abc import Sequence

EARTH_RADIUS_KM = 6371.0088
Point = tuple[float, float]  # latitude, longitude in degrees


def distance_km(a: Point, b: Point) -> float:
    """The great-circle (haversine) distance between two points."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(h))


def nearest_neighbour(start: Point, stops: Sequence[tuple[int, Point]]) -> tuple[list[int], float]:
    """Visit ``stops`` (id, point) from ``start``, always going to the nearest unvisited one.

    Returns the ids in visiting order and the route's length in km. Ties go
    to the lower id, so the same input always gives the same route.
    """
    here, left, order, total = start, dict(stops), [], 0.0
    while left:
        stop = min(left, key=lambda i: (distance_km(here, left[i]), i))
        total += distance_km(here, left[stop])
        here = left.pop(stop)
        order.append(stop)
    return order, total
