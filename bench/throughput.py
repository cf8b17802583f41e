"""End-to-end throughput and fire lag on PostgreSQL + RabbitMQ, with Celery 5 side by side.

Sundial: 20,000 one-shot jobs of a no-op handler due at the same instant; one
``server.py scheduler`` process and one ``server.py worker`` process (2
processes in all). Timed from the due instant until every run's outcome is
recorded in SQL. Then the fire lag (handler start minus fire time), p50 and
p99, with 500 jobs firing every second (a steady 500 runs/s).

Celery: the same no-op task, 20,000 sent while its worker runs with 2
processes (prefork) on the same RabbitMQ, timed from the first send to the
last task done (each task counts itself in Redis, as Celery records nothing).

    pip install -e '.[bench]'        # adds celery and redis
    python bench/throughput.py [--runs 20000] [--lag-seconds 20] [--skip-celery]

Each run uses a database, a RabbitMQ vhost and a Redis key of its own, and
removes them afterwards.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "core"))

from sqlalchemy import create_engine, text  # noqa: E402

PG_ADMIN = os.environ.get("SUNDIAL_BENCH_POSTGRES_URL", "postgresql+psycopg://127.0.0.1:5432/test")
RABBIT_HOST = os.environ.get("SUNDIAL_BENCH_RABBITMQ_HOST", "127.0.0.1")
REDIS_URL = os.environ.get("SUNDIAL_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")

JOBS = """
INSERT INTO sundial_jobs (id, name, handler, type, run_at, interval_seconds, starts_at, timezone, payload_template,
    enabled, paused, active, next_run_at, max_retries, backoff, retry_delay_seconds, retry_max_delay_seconds,
    coalesce, max_instances, overlap, timeout_seconds, jitter_seconds, queue, priority, version, created_at, updated_at)
SELECT CAST(:prefix AS text) || n, 'bench', 'bench.noop', CAST(:kind AS varchar),
    CASE WHEN CAST(:kind AS varchar) = 'date' THEN CAST(:at AS timestamptz) END,
    CASE WHEN CAST(:kind AS varchar) = 'interval' THEN 1.0 END,
    CASE WHEN CAST(:kind AS varchar) = 'interval' THEN CAST(:at AS timestamptz) END,
    'UTC', '{}'::jsonb, true, false, true, CAST(:at AS timestamptz), 0, 'fixed', 1, 1,
    true, 1, 'skip', 60, 0, 'default', 0, 1, now(), now()
FROM generate_series(1, CAST(:n AS bigint)) AS n
"""


def rabbit_api(method: str, path: str, body: object = None) -> None:
    request = urllib.request.Request(
        f"http://{RABBIT_HOST}:15672/api{path}", data=json.dumps(body).encode() if body else None, method=method
    )
    request.add_header("Authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
    request.add_header("Content-Type", "application/json")
    urllib.request.urlopen(request, timeout=10).read()


class Resources:
    """A database and a vhost for one benchmark run."""

    def __init__(self) -> None:
        self.name = f"sundial_bench_{secrets.token_hex(4)}"
        self.admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")

    def __enter__(self) -> Resources:
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{self.name}"'))
        rabbit_api("PUT", f"/vhosts/{self.name}")
        rabbit_api("PUT", f"/permissions/{self.name}/guest", {"configure": ".*", "write": ".*", "read": ".*"})
        return self

    @property
    def database_url(self) -> str:
        return PG_ADMIN.rsplit("/", 1)[0] + f"/{self.name}"

    @property
    def broker_url(self) -> str:
        return f"amqp://guest:guest@{RABBIT_HOST}:5672/{self.name}"

    def __exit__(self, *exc: object) -> None:
        rabbit_api("DELETE", f"/vhosts/{self.name}")
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        self.admin.dispose()


def start(role: str, res: Resources, **env: str) -> subprocess.Popen[bytes]:
    environ = {
        **os.environ,
        "SUNDIAL_DATABASE_URL": res.database_url,
        "SUNDIAL_BROKER_URL": res.broker_url,
        "SUNDIAL_LOG_LEVEL": "WARNING",
        **env,
    }
    return subprocess.Popen([sys.executable, str(HERE / "bench_app.py"), role], env=environ)


def stop(*processes: subprocess.Popen[bytes]) -> None:
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


def sundial(runs: int, lag_seconds: int, concurrency: int) -> dict[str, float]:
    from sundial.store.sqlalchemy import SQLStore

    with Resources() as res:
        store = SQLStore(res.database_url)
        store.migrate()
        engine = store.engine
        # short handlers: many runs taken per claim (prefetch per thread), enough held to
        # start a whole second's fires on time
        tuning = {"SUNDIAL_CONCURRENCY": str(concurrency), "SUNDIAL_PREFETCH": "128"}
        # the burst is measured with nothing done before the due time (no lookahead)
        burst = {**tuning, "SUNDIAL_LOOKAHEAD_SECONDS": "0"}
        workers = start("worker", res, **burst)
        scheduler = None
        try:
            due = datetime.now(UTC) + timedelta(seconds=4)
            with engine.begin() as conn:
                conn.execute(text(JOBS), {"prefix": "once-", "kind": "date", "at": due, "n": runs})
            scheduler = start("scheduler", res, **burst)
            count = text("SELECT count(*) FROM sundial_runs WHERE status = 'succeeded'")
            while True:
                with engine.connect() as conn:
                    done = conn.execute(count).scalar_one()
                if done >= runs:
                    break
                time.sleep(0.05)
            with engine.connect() as conn:
                created, queued, last = conn.execute(
                    text("SELECT max(created_at), max(queued_at), max(finished_at) FROM sundial_runs")
                ).one()
            elapsed = (last - due).total_seconds()
            stages = {"all created": created, "all queued": queued, "all finished": last}
            print(
                "sundial  stages after the due time: "
                + ", ".join(
                    f"{name} {(at - due).total_seconds():.1f}s" for name, at in stages.items() if at is not None
                )
            )

            # fire lag at a steady rate: 500 jobs firing every second, with the default lookahead
            stop(scheduler, workers)
            scheduler = None
            with engine.begin() as conn:
                conn.execute(text("DELETE FROM sundial_runs"))
            workers = start("worker", res, **tuning)
            scheduler = start("scheduler", res, **tuning)
            time.sleep(2)  # both connected
            start_at = datetime.now(UTC) + timedelta(seconds=2)
            with engine.begin() as conn:
                conn.execute(text(JOBS), {"prefix": "steady-", "kind": "interval", "at": start_at, "n": 500})
            time.sleep(2 + lag_seconds)
            with engine.begin() as conn:
                conn.execute(text("UPDATE sundial_jobs SET paused = true, active = false"))
                # each finished run's lag (a run claimed ahead but not started has its claim time as
                # started_at), and where a late one lost its time: created, published, claimed
                steady = conn.execute(
                    text(
                        "SELECT EXTRACT(EPOCH FROM started_at - scheduled_at),"
                        " EXTRACT(EPOCH FROM created_at - scheduled_at),"
                        " EXTRACT(EPOCH FROM queued_at - scheduled_at), EXTRACT(EPOCH FROM scheduled_at)"
                        " FROM sundial_runs WHERE finished_at IS NOT NULL AND job_id LIKE 'steady-%'"
                    )
                ).all()
        finally:
            stop(*[p for p in (scheduler, workers) if p is not None])
            store.close()
    lags = [row[0] for row in steady]
    late = [row for row in steady if row[0] > 0.05]
    if late:
        created, queued = (statistics.median(float(r[i]) * 1000 for r in late if r[i] is not None) for i in (1, 2))
        seconds = len({int(r[3]) for r in late})
        print(
            f"sundial  {len(late)} runs started over 50 ms late, in {seconds} of the fire seconds; median"
            f" created {created:+.0f} ms, queued {queued:+.0f} ms from their fire time"
        )
    lags_ms = sorted(float(x) * 1000 for x in lags)
    return {
        "runs_per_second": runs / elapsed,
        "seconds": elapsed,
        "lag_p50_ms": statistics.median(lags_ms),
        "lag_p90_ms": lags_ms[int(len(lags_ms) * 0.90) - 1],
        "lag_p99_ms": lags_ms[int(len(lags_ms) * 0.99) - 1],
        "lag_max_ms": lags_ms[-1],
        "lag_min_ms": lags_ms[0],
        "lag_samples": len(lags_ms),
    }


def celery(runs: int) -> dict[str, float]:
    import redis

    with Resources() as res:
        key = f"sundial-bench:{res.name}"
        environ = {**os.environ, "BENCH_BROKER_URL": res.broker_url, "BENCH_REDIS_URL": REDIS_URL, "BENCH_KEY": key}
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "celery_app", "worker", "--pool=prefork", "--concurrency=2",
             "--loglevel=WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=HERE, env=environ,
        )  # fmt: skip
        client = redis.Redis.from_url(REDIS_URL)
        try:
            sys.path.insert(0, str(HERE))
            os.environ.update(environ)
            from celery_app import noop

            time.sleep(5)  # let the worker connect
            started = time.perf_counter()
            for _ in range(runs):
                noop.delay()
            while int(client.get(key) or 0) < runs:
                time.sleep(0.02)
            elapsed = time.perf_counter() - started
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(60)
            client.delete(key)
    return {"runs_per_second": runs / elapsed, "seconds": elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20_000)
    parser.add_argument("--lag-seconds", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=8, help="worker threads of the Sundial worker process")
    parser.add_argument("--skip-celery", action="store_true")
    args = parser.parse_args()
    ours = sundial(args.runs, args.lag_seconds, args.concurrency)
    print(
        f"sundial  {args.runs:,} runs due at once: {ours['seconds']:.1f}s, {ours['runs_per_second']:,.0f} runs/s"
        " end to end (every outcome recorded in SQL)"
    )
    print(
        f"sundial  fire lag at 500 runs/s: p50 {ours['lag_p50_ms']:.0f} ms, p90 {ours['lag_p90_ms']:.0f} ms,"
        f" p99 {ours['lag_p99_ms']:.0f} ms, max {ours['lag_max_ms']:.0f} ms (min {ours['lag_min_ms']:.1f} ms)"
        f" ({ours['lag_samples']:,} runs)"
    )
    if not args.skip_celery:
        theirs = celery(args.runs)
        print(
            f"celery   {args.runs:,} tasks: {theirs['seconds']:.1f}s, {theirs['runs_per_second']:,.0f} tasks/s"
            " (prefork, 2 processes, nothing recorded)"
        )
        print(f"ratio    sundial / celery: {ours['runs_per_second'] / theirs['runs_per_second']:.2f}x (target >= 1.5x)")


if __name__ == "__main__":
    main()
