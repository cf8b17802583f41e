"""How one scheduler pass scales with the number of stored jobs (PostgreSQL).

For 10k, 100k and 1M stored jobs, of which 1,000 are due, prints the time of
one scheduler pass (median of several) and the scheduler process's peak RSS.
Stored jobs live in SQL, not in memory, and the due-job query is an index
range, so the pass should cost about the same at every size.

    python bench/scheduler_scale.py [--sizes 10000,100000,1000000] [--due 1000]

Uses (and drops afterwards) its own database next to SUNDIAL_BENCH_POSTGRES_URL
(default postgresql+psycopg://127.0.0.1:5432/test).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))

from sqlalchemy import create_engine, text  # noqa: E402

ADMIN_URL = os.environ.get("SUNDIAL_BENCH_POSTGRES_URL", "postgresql+psycopg://127.0.0.1:5432/test")
NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)

# server-side generation: a million rows without a million round trips
FILL = """
INSERT INTO sundial_jobs (id, name, handler, type, cron_expression, timezone, payload_template,
    enabled, paused, active, next_run_at, max_retries, backoff, retry_delay_seconds,
    retry_max_delay_seconds, coalesce, max_instances, overlap, timeout_seconds, jitter_seconds,
    queue, priority, version, created_at, updated_at)
SELECT 'job-' || lpad(n::text, 8, '0'), 'bench job ' || n, 'bench.noop', 'cron', '*/10 * * * *', 'UTC',
    '{}'::jsonb, true, false, true, CAST(:later AS timestamptz) + (n % 600) * interval '1 second',
    3, 'exponential', 10, 3600,
    true, 1, 'skip', 300, 0, 'default', 0, 1, CAST(:now AS timestamptz), CAST(:now AS timestamptz)
FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS n
"""
MAKE_DUE = "UPDATE sundial_jobs SET next_run_at = :due WHERE id IN (SELECT id FROM sundial_jobs ORDER BY id LIMIT :n)"
RESET = "DELETE FROM sundial_runs"


def child(url: str, due: int, repeats: int) -> None:
    """Run in a fresh process: time scheduler passes, report the peak RSS."""
    from sundial.clock import FakeClock
    from sundial.scheduler import Scheduler
    from sundial.store.sqlalchemy import SQLStore

    store = SQLStore(url)
    scheduler = Scheduler(store, {"bench.noop"}, FakeClock(NOW), batch_size=due)
    times = []
    for _ in range(repeats):
        with store.engine.begin() as conn:
            conn.execute(text(RESET))
            conn.execute(text(MAKE_DUE), {"due": NOW - timedelta(seconds=1), "n": due})
        started = time.perf_counter()
        result = scheduler.tick(NOW)
        times.append(time.perf_counter() - started)
        assert result.runs == due, result
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"tick_ms": [t * 1000 for t in times], "rss_mb": rss_mb}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--due", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.due, args.repeats)
        return

    from sundial.store.sqlalchemy import SQLStore

    name = f"sundial_bench_{secrets.token_hex(4)}"
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        store = SQLStore(url)
        store.migrate()
        stored = 0
        results = {}
        print(f"{'stored jobs':>12} {'due':>6} {'pass median':>12} {'pass min':>9} {'peak RSS':>9}")
        for size in [int(s) for s in args.sizes.split(",")]:
            with store.engine.begin() as conn:
                conn.execute(
                    text(FILL), {"first": stored + 1, "last": size, "now": NOW, "later": NOW + timedelta(days=1)}
                )
            with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM ANALYZE sundial_jobs"))
            stored = size
            out = subprocess.run(
                [sys.executable, __file__, "--child", url, "--due", str(args.due), "--repeats", str(args.repeats)],
                check=True, capture_output=True, text=True,
            ).stdout  # fmt: skip
            figures = json.loads(out.strip().splitlines()[-1])
            # the first pass warms the connection pool and caches; report the rest
            ticks = figures["tick_ms"][1:]
            results[size] = statistics.median(ticks)
            print(
                f"{size:>12,} {args.due:>6} {results[size]:>10.1f}ms {min(ticks):>7.1f}ms {figures['rss_mb']:>7.1f}MB"
            )
        smallest, largest = min(results), max(results)
        print(
            f"pass at {largest:,} / pass at {smallest:,}: {results[largest] / results[smallest]:.2f}x (target <= 1.5x)"
        )
        store.close()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
