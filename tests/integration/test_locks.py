"""Redis job locks: owner-only release, expiry, renewal, slots, and a Redis that goes away and comes back."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import pytest

from sundial.locks.redis import RedisLocks
from support import REDIS_URL, RedisServer, wait_for


@pytest.fixture
def locks(redis_prefix: str) -> Iterator[RedisLocks]:
    locks = RedisLocks(REDIS_URL, redis_prefix)
    yield locks
    locks.close()


def test_a_lock_is_released_only_by_its_owner(locks: RedisLocks) -> None:
    assert locks.acquire("job", "worker-a", 30) is True
    assert locks.acquire("job", "worker-b", 30) is False
    assert locks.release([("job", "worker-b", 1)]) == [False]  # not b's to release
    assert locks.busy([("job", 1)]) == {"job"}
    assert locks.release([("job", "worker-a", 1)]) == [True]
    assert locks.busy([("job", 1)]) == set()
    assert locks.acquire("job", "worker-b", 30) is True


def test_a_lock_expires_unless_renewed_and_only_its_owner_renews_it(locks: RedisLocks) -> None:
    assert locks.acquire("kept", "a", 0.4) and locks.acquire("dropped", "a", 0.4)
    for _ in range(4):  # renewed past several of its lifetimes
        time.sleep(0.2)
        assert locks.extend([("kept", "a", 1), ("kept", "intruder", 1)], 0.4) == [True, False]
    assert locks.busy([("kept", 1), ("dropped", 1)]) == {"kept"}  # the other expired
    assert locks.acquire("dropped", "b", 30) is True  # and can be taken
    assert locks.extend([("dropped", "a", 1)], 30) == [False]  # its old owner cannot take it back


def test_slots_count_instances(locks: RedisLocks) -> None:
    assert [locks.acquire("pool", f"w{n}", 30, slots=3) for n in range(4)] == [True, True, True, False]
    assert locks.busy([("pool", 3)]) == {"pool"}
    assert locks.release([("pool", "w1", 3)]) == [True]
    assert locks.busy([("pool", 3)]) == set()
    assert locks.acquire("pool", "w4", 30, slots=3) is True


def test_a_redis_that_goes_away_is_reported_and_used_again_when_back(private_redis: RedisServer) -> None:
    locks = RedisLocks(private_redis.url, "t:", retry_after_seconds=0.3)
    try:
        assert locks.acquire("job", "a", 30) is True and locks.up
        private_redis.stop()
        assert locks.acquire("job", "b", 30) is None  # no answer: the store decides alone
        assert not locks.up and locks.problem and "Connection" in locks.problem
        assert locks.busy([("job", 1)]) is None  # within the retry window Redis is not even asked
        private_redis.start()  # back, and empty: every lock it held is gone
        wait_for(locks.ping, timeout=5)
        assert locks.up and locks.problem is None
        assert locks.acquire("job", "b", 30) is True
    finally:
        locks.close()


def test_a_hung_redis_costs_a_short_timeout_not_a_stall(private_redis: RedisServer) -> None:
    locks = RedisLocks(private_redis.url, "t:", timeout_seconds=0.2, retry_after_seconds=0.3)
    assert private_redis.proc is not None
    try:
        private_redis.proc.send_signal(signal.SIGSTOP)
        started = time.monotonic()
        assert locks.acquire("job", "a", 30) is None
        assert time.monotonic() - started < 1.0 and not locks.up
    finally:
        private_redis.proc.send_signal(signal.SIGCONT)
        locks.close()
