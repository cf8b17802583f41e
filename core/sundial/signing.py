"""Signed events: HMAC-SHA256 over a timestamp and the body, a replay window, and a nonce store.

A sender signs ``"<unix seconds>." + body`` with the shared secret (as Stripe
and Slack sign webhooks) and sends the timestamp, the body and the hex
signature. An event is accepted once: its signature is its nonce, kept for
the replay window in Redis when Sundial has one, else in the job store. A
resend of the same event with a new timestamp is a new message; the event's
own id (``Control.emit``) keeps it from firing jobs twice.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from marshmallow import RAISE, Schema, fields, validate

from .clock import Clock
from .errors import Refused, StoreError, ValidationError
from .schemas import JOB_ID, load_document
from .store.sqlalchemy import SQLStore


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The lower-case hex HMAC-SHA256 of ``"<timestamp>." + body`` under ``secret``."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


class NonceStore(ABC):
    """Remembers nonces for a while; the first use of one succeeds, every later use fails."""

    @abstractmethod
    def use(self, nonce: str, ttl_seconds: float) -> bool:
        """Record ``nonce`` for ``ttl_seconds``; False when it is recorded already."""


class StoreNonces(NonceStore):
    """Nonces in the job store (the embedded default), their expiry on the store's clock."""

    def __init__(self, store: SQLStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    def use(self, nonce: str, ttl_seconds: float) -> bool:
        now = self.clock.now()
        return self.store.use_nonce(nonce, now + timedelta(seconds=ttl_seconds), now=now)


class RedisNonces(NonceStore):
    """Nonces in Redis: ``SET NX`` with an expiry, so concurrent API processes agree on the first."""

    def __init__(self, url: str, prefix: str = "sundial:") -> None:
        import redis

        self.client = redis.Redis.from_url(url)
        self.prefix = prefix

    def use(self, nonce: str, ttl_seconds: float) -> bool:
        import redis

        try:
            return bool(self.client.set(f"{self.prefix}event-nonce:{nonce}", b"1", nx=True, px=int(ttl_seconds * 1000)))
        except redis.RedisError as e:
            raise StoreError(f"the nonce store (Redis) failed: {e}") from e

    def close(self) -> None:
        self.client.close()


class EventSchema(Schema):
    """The signed body: ``{"event": ..., "id": ..., "payload": {...}}``."""

    class Meta:
        unknown = RAISE

    event = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z0-9_.:-]{1,128}$"))
    id = fields.String(validate=validate.Regexp(JOB_ID))
    payload = fields.Dict(keys=fields.String(), load_default=dict)


class EventVerifier:
    """Checks a signed event: the window first, then the signature in constant time, then the nonce."""

    def __init__(self, secret: str, window_seconds: float, nonces: NonceStore, clock: Clock) -> None:
        self.secret = secret
        self.window_seconds = window_seconds
        self.nonces = nonces
        self.clock = clock

    def verify(self, timestamp: int, body: bytes, signature: str) -> Mapping[str, Any]:
        """The event document of an authentic, fresh, first-seen message; ``Refused`` or ``ValidationError``."""
        age = self.clock.now().timestamp() - timestamp
        if abs(age) > self.window_seconds:
            raise Refused("expired", f"timestamp is {age:.0f}s from now, outside the {self.window_seconds:.0f}s window")
        expected = sign(self.secret, timestamp, body)
        if not hmac.compare_digest(expected, signature.strip().lower()):
            raise Refused("forged", "signature does not match the body and timestamp")
        try:
            document = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValidationError({"body": [f"is not JSON: {e}"]}) from e
        event = load_document(EventSchema(), document, "body")
        # a message stays refusable for as long as its timestamp is within the window, on either side
        if not self.nonces.use(expected, 2 * self.window_seconds):
            raise Refused("replayed", "this signed event was accepted already")
        return event
