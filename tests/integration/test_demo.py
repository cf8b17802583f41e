"""``python server.py demo``: the installed plugins' sample data, and each of their jobs doing real work at once."""

from __future__ import annotations

from pathlib import Path

from sundial.cli import seed_demo
from sundial.config import Settings
from sundial.engine import Engine
from sundial.run import RunStatus
from support import wait_for

PLUGINS = {"letters", "ai_penpal", "envelopes", "couriers", "features", "inspiration", "maintenance"}


def test_the_demo_seeds_every_plugin_and_their_jobs_do_real_work(tmp_path: Path, monkeypatch: object) -> None:
    monkeypatch.chdir(tmp_path)  # type: ignore[attr-defined]  # the backup job writes under ./backups
    engine = Engine(Settings(database_url=f"sqlite:///{tmp_path / 'demo.db'}", max_idle_seconds=0.1))
    engine.prepare()
    assert PLUGINS <= set(engine.plugins.names()), engine.plugins.status()
    assert PLUGINS - {"maintenance"} <= set(seed_demo(engine))
    jobs = [j for j in engine.store.list_jobs() if j.origin in PLUGINS and j.type != "event"]
    engine.start()
    try:

        def all_finished() -> bool:
            runs = [r for j in jobs for r in engine.store.list_runs(job_id=j.id)]
            return len(runs) >= len(jobs) and all(r.status.finished for r in runs)

        wait_for(all_finished, timeout=60)
        failed = {j.id: r.error for j in jobs for r in engine.store.list_runs(job_id=j.id)
                  if r.status is not RunStatus.SUCCEEDED}  # fmt: skip
        assert failed == {}
        with engine.domain.connect() as conn:

            def count(sql: str) -> int:
                return int(conn.exec_driver_sql(sql).scalar_one())

            assert count("SELECT count(*) FROM letters WHERE status = 'unlocked'") == 1
            assert count("SELECT count(*) FROM letters WHERE status = 'cleanup'") == 1  # the unbound draft
            assert count("SELECT count(*) FROM letters WHERE status = 'reschedule'") == 1
            assert count("SELECT count(*) FROM penpal_replies") == 1
            assert count("SELECT count(*) FROM penpal_matches") == 1
            assert count("SELECT count(*) FROM envelope_rounds WHERE status = 'closed'") == 1
            assert count("SELECT count(*) FROM courier_tasks WHERE status = 'open'") == 1
            assert count("SELECT count(*) FROM courier_routes") >= 1  # two if routes were planned first
            assert count("SELECT count(*) FROM inspiration_pushes") == 2
            assert count("SELECT count(*) FROM maintenance_health") == 1
            assert count("SELECT count(*) FROM notifications") >= 6
    finally:
        engine.stop(grace_seconds=1)
