"""Prometheus metrics scraped over HTTP from a running engine: runs, lag, dead letters, the dead man's switch."""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sundial.config import Settings
from sundial.engine import Engine
from sundial.errors import ConfigError
from sundial.locks.redis import RedisLocks
from sundial.plugins.manager import load_plugins
from sundial.run import RunStatus
from sundial.store import tables
from support import Handlers, samples, wait_for

EngineFactory = Callable[..., Engine]


@pytest.fixture
def make_engine(tmp_path: Path) -> Iterator[EngineFactory]:
    engines: list[Engine] = []

    def make(roles: tuple[str, ...] = ("scheduler", "worker"), **settings: Any) -> Engine:
        config = Settings(database_url=f"sqlite:///{tmp_path / 'metrics.db'}", max_idle_seconds=0.2,
                          sweep_interval_seconds=0.2, metrics_addr="127.0.0.1:0", **settings)  # fmt: skip
        engine = Engine(config, plugins=load_plugins(extra=[("t", Handlers())], entry_points=False))
        engine.start(roles)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.stop(grace_seconds=1)


def scrape(engine: Engine) -> str:
    assert engine.metrics_address is not None
    host, port = engine.metrics_address
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as response:
        return response.read().decode()


def value(page: str, name: str, **labels: str) -> float | None:
    found = [v for got, v in samples(page, name) if labels.items() <= got.items()]
    return found[0] if found else None


def now_job(job_id: str, handler: str, **extra: Any) -> dict[str, Any]:
    return {"id": job_id, "name": job_id, "handler": handler, "type": "date",
            "run_at": datetime.now(UTC).isoformat(), **extra}  # fmt: skip


def test_runs_lag_dead_letters_and_last_success_are_exported(make_engine: EngineFactory) -> None:
    engine = make_engine()
    engine.control.add_job(now_job("ok", "t.record"))
    engine.control.add_job(now_job("doomed", "t.flaky", payload_template={"succeed_on": 99},
                                   retry_policy={"max_retries": 0}))  # fmt: skip
    engine.control.add_job(now_job("stuck", "t.hang", timeout_seconds=0.3, retry_policy={"max_retries": 0}))
    done = (RunStatus.SUCCEEDED, RunStatus.DEAD)
    wait_for(lambda: len(engine.store.list_runs(statuses=list(done))) == 3)
    # a worker counts an attempt just after committing its outcome: wait until all three are counted
    counted = lambda p: value(p, "sundial_fire_lag_seconds_count", queue="default") == 3  # noqa: E731
    page = wait_for(lambda: (p := scrape(engine)) and counted(p) and value(p, "sundial_run_timeouts_total") and p)
    assert value(page, "sundial_job_runs_total", job="ok", outcome="succeeded") == 1
    assert value(page, "sundial_job_runs_total", job="doomed", outcome="dead") == 1
    assert value(page, "sundial_run_timeouts_total", handler="t.hang") == 1
    assert value(page, "sundial_run_duration_seconds_count", handler="t.record") == 1
    assert value(page, "sundial_dead_letters", queue="default") == 2
    assert value(page, "sundial_schedulers_alive") == 1
    [run] = engine.store.list_runs(job_id="ok")
    assert run.finished_at is not None
    assert value(page, "sundial_job_last_success_timestamp_seconds", job="ok") == run.finished_at.timestamp()
    assert value(page, "sundial_job_last_success_timestamp_seconds", job="doomed") is None
    assert value(page, "sundial_store_up") == 1
    assert value(page, "sundial_process_role", role="scheduler") == 1
    assert engine.dead_letters.purge(everything=True) == 2
    assert value(scrape(engine), "sundial_dead_letters", queue="default") is None  # purged: off the list


def test_the_last_success_comes_from_the_store_and_survives_a_restart(make_engine: EngineFactory) -> None:
    first = make_engine()
    first.control.add_job(now_job("ok", "t.record"))
    [run] = wait_for(lambda: first.store.list_runs(job_id="ok", statuses=[RunStatus.SUCCEEDED]))
    first.stop(grace_seconds=1)
    again = make_engine(roles=("scheduler",))
    page = scrape(again)
    assert value(page, "sundial_job_runs_total", job="ok", outcome="succeeded") is None  # a new process
    assert value(page, "sundial_job_last_success_timestamp_seconds", job="ok") == run.finished_at.timestamp()
    # a later success is picked up by the next scrape, reading only the newest finish times
    again.control.run_now("ok")
    later = make_engine(roles=("worker",))
    wait_for(lambda: len(later.store.list_runs(job_id="ok", statuses=[RunStatus.SUCCEEDED])) == 2)
    newest = max(r.finished_at for r in later.store.list_runs(job_id="ok") if r.finished_at)
    wait_for(lambda: value(scrape(again), "sundial_job_last_success_timestamp_seconds", job="ok")
             == newest.timestamp())  # fmt: skip


def test_a_worker_alone_exports_no_store_gauges(make_engine: EngineFactory) -> None:
    page = scrape(make_engine(roles=("worker",)))
    assert value(page, "sundial_process_role", role="worker") == 1
    assert value(page, "sundial_store_up") is None


def test_an_address_in_use_stops_the_start_naming_the_setting(make_engine: EngineFactory, tmp_path: Path) -> None:
    first = make_engine()
    host, port = first.metrics_address or ("", 0)
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'other.db'}", metrics_addr=f"{host}:{port}")
    with pytest.raises(ConfigError, match="metrics_addr"):
        Engine(settings, plugins=load_plugins(entry_points=False)).start()


def test_the_shipped_alerts_and_dashboard_use_only_metrics_sundial_exports(make_engine: EngineFactory) -> None:
    engine = make_engine()
    engine.metrics.watch_redis(RedisLocks("redis://127.0.0.1:1/0"))  # what a process with redis_url adds
    families = {family.name for family in engine.metrics.registry.collect()}
    exported = {name + suffix for name in families for suffix in ("", "_total", "_bucket", "_count", "_sum")}
    docs = Path(__file__).resolve().parents[2] / "docs"
    for shipped in ("alerts.yml", "grafana-dashboard.json", "operations.md"):
        named = set(re.findall(r"\bsundial_[a-z_]+", (docs / shipped).read_text()))
        named -= set(tables.metadata.tables)  # operations.md names tables too
        assert named and named <= exported, (shipped, sorted(named - exported))
