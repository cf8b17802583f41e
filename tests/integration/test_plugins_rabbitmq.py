"""A domain plugin's jobs dispatched through the live RabbitMQ, on PostgreSQL, by a real worker."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, insert, select

from sundial.config import Settings
from sundial.engine import Engine
from sundial.plugins.manager import load_plugins
from sundial.run import RunStatus
from sundial.store.sqlalchemy import SQLStore
from sundial_letters import letters, metadata, notifications
from sundial_letters.plugin import BARCODE_ACTIVATED, LettersPlugin
from support import wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]


@pytest.fixture
def engine(postgres_url: str, postgres_store: SQLStore, rabbitmq_url: str) -> Iterator[Engine]:
    domain = create_engine(postgres_url)
    with domain.begin() as conn:  # the letters tables are the plugin's: start them empty
        metadata.drop_all(conn)
    domain.dispose()
    settings = Settings(database_url=postgres_url, broker_url=rabbitmq_url, concurrency=2, max_idle_seconds=0.2)
    engine = Engine(settings, plugins=load_plugins(extra=[("letters", LettersPlugin())], entry_points=False))
    engine.start()
    yield engine
    engine.stop(grace_seconds=1)


def succeeded(engine: Engine, job_id: str) -> list:
    return engine.store.list_runs(job_id=job_id, statuses=[RunStatus.SUCCEEDED])


def test_letters_jobs_run_through_rabbitmq(engine: Engine) -> None:
    now = datetime.now(UTC)
    with engine.domain.begin() as conn:
        conn.execute(insert(letters), [
            {"id": 1, "author_id": 1, "recipient_id": 2, "status": "locked", "body": "", "created_at": now,
             "unlock_at": now - timedelta(minutes=1), "barcode": None},
            {"id": 2, "author_id": 3, "recipient_id": None, "status": "draft", "body": "", "created_at": now,
             "unlock_at": None, "barcode": None},
        ])  # fmt: skip
    engine.control.run_now("letters.release_future_letters")
    engine.control.emit(BARCODE_ACTIVATED, {"barcode": "RMQ-1", "letter_id": 2}, "scan-rmq-1")
    wait_for(lambda: succeeded(engine, "letters.release_future_letters") and succeeded(engine, "letters.bind_letter"))
    with engine.domain.connect() as conn:
        state = {r.id: (r.status, r.barcode) for r in conn.execute(select(letters))}
        sent = sorted((n.user_id, n.kind) for n in conn.execute(select(notifications)))
    assert state == {1: ("unlocked", None), 2: ("sent", "RMQ-1")}
    assert sent == [(2, "letter_unlocked"), (3, "letter_bound")]
    [run] = succeeded(engine, "letters.release_future_letters")
    assert [line.message for line in engine.store.run_logs(run.id)] == ["released 1 future letters"]
