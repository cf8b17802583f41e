"""Rate limits and cooldowns: "at most N uses of a key per period", atomic across processes.

Each key has one fixed window that opens at its first use and lasts the
period; uses beyond the limit inside the window are refused. Redis holds the
windows when ``redis_url`` is set (an ``INCR`` and its expiry in one Lua
script); otherwise the job store does (one upserted row per key). A lost
window (Redis restarted empty) only lets one use through early: nothing
Sundial guarantees depends on it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from sqlalchemy import Connection

from .clock import Clock
from .errors import ConfigError, StoreError
from .store.sqlalchemy import SQLStore


class RateLimiter(ABC):
    """Counts uses of keys in fixed windows."""

    @abstractmethod
    def hit(self, key: str, limit: int, period_seconds: float, *, connection: Connection | None = None) -> bool:
        """Count one use of ``key``; True when it is within ``limit`` uses of the current window.

        ``connection``, an open transaction on the job store's database, makes
        the use part of that transaction (it is undone if the transaction is);
        a limiter that keeps its windows elsewhere ignores it.
        """


class StoreRateLimiter(RateLimiter):
    """Windows in the job store's ``sundial_rate_limits`` table, timed by ``clock``."""

    def __init__(self, store: SQLStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    def hit(self, key: str, limit: int, period_seconds: float, *, connection: Connection | None = None) -> bool:
        _check(limit, period_seconds)
        return self.store.count_use(key, period_seconds, self.clock.now(), connection=connection) <= limit


# INCR and PEXPIRE in one script: no client can see a counter without its expiry
_HIT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
"""


class RedisRateLimiter(RateLimiter):
    """Windows as Redis keys that expire with them (Redis's own clock times them)."""

    def __init__(self, url: str, prefix: str = "sundial:") -> None:
        try:
            import redis
        except ImportError as e:
            raise ConfigError(f"redis_url: Redis needs redis-py: pip install 'sundial[redis]' ({e})") from e
        self._errors: tuple[type[Exception], ...] = (redis.RedisError,)
        self.client: Any = redis.Redis.from_url(url, socket_timeout=5)
        self.prefix = prefix
        self._script = self.client.register_script(_HIT)

    def hit(self, key: str, limit: int, period_seconds: float, *, connection: Connection | None = None) -> bool:
        _check(limit, period_seconds)
        try:
            count = self._script(keys=[f"{self.prefix}ratelimit:{key}"], args=[max(1, int(period_seconds * 1000))])
        except self._errors as e:
            raise StoreError(f"rate limit in Redis failed: {e}") from e
        return int(count) <= limit

    def close(self) -> None:
        self.client.close()


def _check(limit: int, period_seconds: float) -> None:
    if limit < 1 or period_seconds <= 0:
        raise ValueError("a rate limit needs limit >= 1 and a positive period")
