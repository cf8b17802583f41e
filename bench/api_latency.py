"""gRPC latency of ListJobs and GetJob with 100,000 jobs stored on PostgreSQL.

Starts ``python server.py api`` on 127.0.0.1 (a free port) as its own process,
as it is deployed, calls it over a real channel with an admin token, and
prints p50, p99 and max in milliseconds for: GetJob of a random job,
ListJobs' first page and a page from a random point (its page token), and
ListJobs filtered by queue. A page is 100 jobs. Target: p99 under 20 ms.

    python bench/api_latency.py [--jobs 100000] [--calls 1000]

Uses (and drops afterwards) its own database next to SUNDIAL_BENCH_POSTGRES_URL
(default postgresql+psycopg://127.0.0.1:5432/test).
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "core"))

from sqlalchemy import create_engine, text  # noqa: E402

ADMIN_URL = os.environ.get("SUNDIAL_BENCH_POSTGRES_URL", "postgresql+psycopg://127.0.0.1:5432/test")
TOKEN = "bench-admin-token-" + secrets.token_hex(8)

# server-side generation: 100k rows without 100k round trips; every tenth job in queue "mail"
FILL = """
INSERT INTO sundial_jobs (id, name, handler, type, cron_expression, timezone, payload_template,
    enabled, paused, active, next_run_at, max_retries, backoff, retry_delay_seconds,
    retry_max_delay_seconds, coalesce, max_instances, overlap, timeout_seconds, jitter_seconds,
    queue, priority, version, created_at, updated_at, operator_fields)
SELECT 'job-' || lpad(n::text, 8, '0'), 'bench job ' || n, 'sundial.log_message', 'cron', '*/10 * * * *', 'UTC',
    '{"message": "hi"}'::jsonb, true, false, true, now() + (n % 600) * interval '1 second',
    3, 'exponential', 10, 3600, true, 1, 'skip', 300, 0,
    CASE WHEN n % 10 = 0 THEN 'mail' ELSE 'default' END, 0, 1, now(), now(), '[]'::jsonb
FROM generate_series(1, CAST(:count AS bigint)) AS n
"""


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {statistics.median(ordered):6.2f} ms   p99 {p99:6.2f} ms   max {ordered[-1]:6.2f} ms"


def timed(call: Callable[[], Any], count: int) -> list[float]:
    for _ in range(20):  # warm the connection pool and the plan cache
        call()
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=1000)
    args = parser.parse_args()

    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from sundial.api.convert import page_token
    from sundial.store.sqlalchemy import SQLStore
    from sundial.v1 import jobs_pb2, jobs_pb2_grpc

    name = f"sundial_bench_api_{int(time.time())}_{secrets.token_hex(3)}"
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    server = None
    try:
        store = SQLStore(url)
        store.migrate()
        started = time.perf_counter()
        with store.engine.begin() as conn:
            conn.execute(text(FILL), {"count": args.jobs})
            conn.execute(text("ANALYZE sundial_jobs"))
        store.close()
        print(f"stored {args.jobs} jobs in {time.perf_counter() - started:.1f} s")
        with socket.socket() as probe:  # a free port for the server to take
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        env = {**os.environ, "SUNDIAL_DATABASE_URL": url, "SUNDIAL_API_ADDR": f"127.0.0.1:{port}",
               "SUNDIAL_API_ADMIN_TOKENS": TOKEN, "SUNDIAL_LOG_LEVEL": "WARNING"}  # fmt: skip
        server = subprocess.Popen([sys.executable, str(ROOT / "server.py"), "api"], env=env)
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        health = health_pb2_grpc.HealthStub(channel)
        for _ in range(300):
            try:
                health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                break
            except grpc.RpcError:
                time.sleep(0.1)
        stub = jobs_pb2_grpc.JobServiceStub(channel)
        metadata = [("authorization", f"Bearer {TOKEN}")]
        rng = random.Random(7)

        def job_id() -> str:
            return f"job-{rng.randint(1, args.jobs):08d}"

        def get() -> None:
            stub.GetJob(jobs_pb2.GetJobRequest(id=job_id()), metadata=metadata)

        def first_page() -> None:
            answer = stub.ListJobs(jobs_pb2.ListJobsRequest(page_size=100), metadata=metadata)
            assert len(answer.jobs) == 100

        def random_page() -> None:
            request = jobs_pb2.ListJobsRequest(page_size=100, page_token=page_token(job_id()))
            stub.ListJobs(request, metadata=metadata)

        def by_queue() -> None:
            request = jobs_pb2.ListJobsRequest(page_size=100, queue="mail", page_token=page_token(job_id()))
            stub.ListJobs(request, metadata=metadata)

        print(f"{args.calls} calls each, one client, page of 100, {args.jobs} jobs stored (PostgreSQL):")
        for label, call in (("GetJob", get), ("ListJobs first page", first_page),
                            ("ListJobs random page", random_page), ("ListJobs queue=mail", by_queue)):  # fmt: skip
            print(f"  {label:22} {percentiles(timed(call, args.calls))}")
        channel.close()
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            server.wait(30)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
