"""Per-job locks in Redis: a lease on a name with an owner token, renewed, released only by its owner.

A lock of ``slots`` slots is ``slots`` keys (``<prefix>lock:<name>:<i>``):
taking it sets the first free one with ``SET NX PX``, so ``max_instances``
runs of a job can hold it at once. Renewing and releasing compare the owner
token first, in one script, so a worker whose lock expired and was taken by
another can neither extend nor delete the new owner's lock.

These locks are the fast path, never the guarantee: the job store decides
every claim (``sundial.store.runpath``), whether Redis answers or not. A lock
only lets a worker see that a job is busy without a database transaction. A
Redis that errs or hangs (every call has a short timeout) is left alone for
``retry_after_seconds`` and the store alone decides meanwhile; ``up`` says
which, for the status, the log and the metrics.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from ..errors import ConfigError

log = logging.getLogger(__name__)

# KEYS: the slots; ARGV: owner, ttl ms. Returns the slot taken, or -1 when every slot is held.
_ACQUIRE = """
for i, key in ipairs(KEYS) do
  if redis.call('SET', key, ARGV[1], 'NX', 'PX', ARGV[2]) then return i - 1 end
end
return -1
"""
# KEYS: the slots; ARGV: owner, ttl ms (0: release). Returns how many slots the owner held.
_OWNED = """
local n = 0
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    if tonumber(ARGV[2]) > 0 then redis.call('PEXPIRE', key, ARGV[2]) else redis.call('DEL', key) end
    n = n + 1
  end
end
return n
"""


class RedisLocks:
    """Named locks with slots in one Redis; each method answers None when Redis cannot be used now."""

    def __init__(
        self, url: str, prefix: str = "sundial:", *, timeout_seconds: float = 0.25, retry_after_seconds: float = 5.0
    ) -> None:
        try:
            import redis
        except ImportError as e:
            raise ConfigError(f"redis_url: Redis needs redis-py: pip install 'sundial[redis]' ({e})") from e
        self._errors: tuple[type[Exception], ...] = (redis.RedisError, OSError)
        self.client: Any = redis.Redis.from_url(
            url, socket_timeout=timeout_seconds, socket_connect_timeout=timeout_seconds
        )
        self.prefix = prefix
        self.retry_after = retry_after_seconds
        self._acquire = self.client.register_script(_ACQUIRE)
        self._owned = self.client.register_script(_OWNED)
        self._down_until = 0.0
        self._lock = threading.Lock()
        #: None while Redis answers; else why it does not (for status and metrics)
        self.problem: str | None = None

    @property
    def up(self) -> bool:
        """Whether the last call to Redis succeeded (or none failed within ``retry_after_seconds``)."""
        return self.problem is None

    def ping(self) -> bool:
        """Ask Redis now (unless it failed within ``retry_after_seconds``); ``problem`` says why not."""
        return self._call(self.client.ping) is not None

    def _keys(self, name: str, slots: int) -> list[str]:
        return [f"{self.prefix}lock:{name}:{i}" for i in range(slots)]

    def acquire(self, name: str, owner: str, ttl_seconds: float, slots: int = 1) -> bool | None:
        """Take a free slot of ``name`` for ``ttl_seconds``; False when all ``slots`` are held."""
        taken = self._call(lambda: self._acquire(keys=self._keys(name, slots), args=[owner, _ms(ttl_seconds)]))
        return None if taken is None else int(taken) >= 0

    def extend(self, held: Sequence[tuple[str, str, int]], ttl_seconds: float) -> list[bool] | None:
        """Renew ``(name, owner, slots)`` locks in one round trip; False where the owner no longer holds it."""
        return self._each(held, _ms(ttl_seconds))

    def release(self, held: Sequence[tuple[str, str, int]]) -> list[bool] | None:
        """Release ``(name, owner, slots)`` locks in one round trip; only an owner's own slot is deleted."""
        return self._each(held, 0)

    def busy(self, names: Sequence[tuple[str, int]]) -> set[str] | None:
        """Which ``(name, slots)`` have every slot held (by anyone), in one round trip."""
        if not names:
            return set()

        def read() -> Any:
            with self.client.pipeline(transaction=False) as pipe:
                for name, slots in names:
                    pipe.mget(self._keys(name, slots))
                return pipe.execute()

        values = self._call(read)
        if values is None:
            return None
        return {name for (name, _), held in zip(names, values) if all(v is not None for v in held)}

    def _each(self, held: Sequence[tuple[str, str, int]], ttl_ms: int) -> list[bool] | None:
        if not held:
            return []

        def run() -> Any:
            with self.client.pipeline(transaction=False) as pipe:
                for name, owner, slots in held:
                    self._owned(keys=self._keys(name, slots), args=[owner, ttl_ms], client=pipe)
                return pipe.execute()

        counts = self._call(run)
        return None if counts is None else [int(n) > 0 for n in counts]

    def _call(self, call: Any) -> Any:
        """``call()``, or None while Redis is known to be away; a failure opens that window."""
        if time.monotonic() < self._down_until:
            return None
        try:
            result = call()
        except self._errors as e:
            with self._lock:
                if self.problem is None:
                    log.warning("Redis unreachable (%s): the job store alone decides overlaps until it is back", e)
                self.problem = f"{e.__class__.__name__}: {e}"
                self._down_until = time.monotonic() + self.retry_after
            return None
        if self.problem is not None:
            with self._lock:
                if self.problem is not None:
                    log.warning("Redis is back: job locks use it again")
                self.problem = None
        return result

    def close(self) -> None:
        self.client.close()


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))
