"""The couriers plugin: tasks overdue 48 hours go back to the pool, and routes are planned at 09:00."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from marshmallow import Schema, fields, validate
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    Float,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.orm import Session

from sundial.handlers import HandlerRegistry, RunContext
from sundial.plugins import hookimpl
from sundial.plugins.domain import PluginTables
from sundial.plugins.jobs import cron_job
from sundial.store.tables import UTCDateTime
from sundial_letters import notify

from .routes import distance_km, nearest_neighbour

metadata = MetaData()

couriers = Table(
    "couriers",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, nullable=False),
    Column("name", String(100), nullable=False),
    Column("lat", Float, nullable=False),  # where the courier starts the day
    Column("lon", Float, nullable=False),
    Column("active", Boolean, nullable=False, default=True),
)

tasks = Table(
    "courier_tasks",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("letter_id", Integer, nullable=False),
    Column("status", String(16), nullable=False, default="open"),  # open, taken, delivered
    Column("courier_id", Integer),
    Column("taken_at", UTCDateTime),
    Column("delivered_at", UTCDateTime),
    Column("released_from", Integer),  # the courier it was taken back from
    Column("lat", Float, nullable=False),
    Column("lon", Float, nullable=False),
    Column("route_position", Integer),
)

routes = Table(
    "courier_routes",
    metadata,
    Column("courier_id", Integer, nullable=False),
    Column("day", Date, nullable=False),
    Column("task_ids", JSON, nullable=False),
    Column("distance_km", Float, nullable=False),
    PrimaryKeyConstraint("courier_id", "day"),
)


class CouriersConfig(Schema):
    """``[plugins.couriers]``."""

    overdue_hours = fields.Float(load_default=48.0, validate=validate.Range(min=1))
    offer_to = fields.Integer(load_default=3, validate=validate.Range(min=0))


def release_overdue_tasks(ctx: RunContext) -> int:
    """Take back tasks taken ``overdue_hours`` ago and not delivered; tell the courier; offer them to others."""
    now = ctx.now()
    cutoff = now - timedelta(hours=ctx.config["overdue_hours"])
    with ctx.session() as session:
        overdue = session.execute(
            select(tasks, couriers.c.user_id)
            .join(couriers, couriers.c.id == tasks.c.courier_id)
            .where(tasks.c.status == "taken", tasks.c.taken_at <= cutoff)
        ).all()
        others = session.execute(select(couriers).where(couriers.c.active.is_(True))).all()
        for task in overdue:
            taken = task.taken_at.strftime("%Y%m%dT%H%M%S")
            notify(session, f"task-overdue:{task.id}:{taken}", task.user_id, "courier_task_overdue",
                   {"task_id": task.id, "letter_id": task.letter_id}, now)  # fmt: skip
            session.execute(
                update(tasks)
                .where(tasks.c.id == task.id)
                .values(status="open", courier_id=None, taken_at=None, released_from=task.courier_id)
            )
            nearest = sorted(
                (c for c in others if c.id != task.courier_id),
                key=lambda c: (distance_km((c.lat, c.lon), (task.lat, task.lon)), c.id),
            )[: ctx.config["offer_to"]]
            for courier in nearest:
                notify(session, f"task-offer:{task.id}:{taken}:{courier.id}", courier.user_id, "courier_task_offered",
                       {"task_id": task.id, "letter_id": task.letter_id}, now)  # fmt: skip
    ctx.logger.info("took back %d overdue tasks", len(overdue))
    return len(overdue)


def plan_routes(ctx: RunContext) -> int:
    """Order each courier's taken tasks into today's route (nearest neighbour from the courier's start)."""
    day = ctx.now().date()
    planned = 0
    with ctx.session() as session:
        for courier in session.execute(select(couriers).where(couriers.c.active.is_(True))).all():
            stops = [
                (t.id, (t.lat, t.lon))
                for t in session.execute(
                    select(tasks.c.id, tasks.c.lat, tasks.c.lon).where(
                        tasks.c.courier_id == courier.id, tasks.c.status == "taken"
                    )
                )
            ]
            if not stops:
                continue
            order, length = nearest_neighbour((courier.lat, courier.lon), stops)
            for position, task_id in enumerate(order, 1):
                session.execute(update(tasks).where(tasks.c.id == task_id).values(route_position=position))
            session.execute(delete(routes).where(routes.c.courier_id == courier.id, routes.c.day == day))
            session.execute(
                insert(routes).values(courier_id=courier.id, day=day, task_ids=order, distance_km=round(length, 3))
            )
            planned += 1
    ctx.logger.info("planned routes for %d couriers", planned)
    return planned


class CouriersPlugin:
    """Registers the courier handlers, tables and default jobs."""

    @hookimpl
    def sundial_config_schema(self) -> Schema:
        return CouriersConfig()

    @hookimpl
    def sundial_register_handlers(self, registry: HandlerRegistry) -> None:
        registry.add("couriers.release_overdue_tasks", release_overdue_tasks)
        registry.add("couriers.plan_routes", plan_routes)

    @hookimpl
    def sundial_tables(self) -> PluginTables:
        return PluginTables(metadata, version=1)

    @hookimpl
    def sundial_default_jobs(self) -> list[dict[str, Any]]:
        return [
            cron_job("couriers.release_overdue_tasks", "Take back overdue courier tasks", "0 * * * *"),
            cron_job("couriers.plan_routes", "Plan couriers' delivery routes", "0 9 * * *"),
        ]

    @hookimpl
    def sundial_demo_data(self, session: Session, now: datetime) -> None:
        ids = session.execute(insert(couriers).returning(couriers.c.id), [
            {"user_id": 21, "name": "Li", "lat": 39.91, "lon": 116.40, "active": True},
            {"user_id": 22, "name": "Wang", "lat": 39.99, "lon": 116.31, "active": True},
        ]).scalars().all()  # fmt: skip
        late = {"status": "taken", "courier_id": ids[0], "taken_at": now - timedelta(hours=49)}
        session.execute(insert(tasks), [
            {"letter_id": 1, "lat": 39.95, "lon": 116.35, **late},
            *({"letter_id": 2 + i, "lat": 39.90 + i * 0.02, "lon": 116.38 - i * 0.01, "status": "taken",
               "courier_id": ids[1], "taken_at": now} for i in range(4)),
        ])  # fmt: skip
