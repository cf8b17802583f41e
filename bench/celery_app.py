"""The Celery side of ``bench/throughput.py``: a no-op task that counts itself in Redis."""

from __future__ import annotations

import os

import redis
from celery import Celery

app = Celery("bench", broker=os.environ.get("BENCH_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//"))
app.conf.update(task_ignore_result=True, worker_prefetch_multiplier=4, broker_connection_retry_on_startup=True)
_counter = redis.Redis.from_url(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
_key = os.environ.get("BENCH_KEY", "sundial-bench")


@app.task
def noop() -> None:
    """Do nothing but be counted, so the benchmark knows when the last task is done."""
    _counter.incr(_key)
