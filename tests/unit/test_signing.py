"""Event signatures: HMAC-SHA256 over timestamp and body, the replay window, nonces."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest

from sundial.clock import FakeClock
from sundial.errors import Refused, ValidationError
from sundial.signing import EventVerifier, NonceStore, sign

SECRET = "s" * 32


class MemoryNonces(NonceStore):
    def __init__(self) -> None:
        self.seen: dict[str, float] = {}

    def use(self, nonce: str, ttl_seconds: float) -> bool:
        if nonce in self.seen:
            return False
        self.seen[nonce] = ttl_seconds
        return True


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 12, 4, 12, tzinfo=UTC))


def body(**values: object) -> bytes:
    return json.dumps({"event": "code.activated", "id": "e1", "payload": {}, **values}).encode()


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET.encode(), b"1700000000." + b"{}", hashlib.sha256).hexdigest()
    assert sign(SECRET, 1700000000, b"{}") == expected


def test_verify_accepts_once_and_refuses_forged_expired_and_replayed(clock: FakeClock) -> None:
    nonces = MemoryNonces()
    verifier = EventVerifier(SECRET, 300, nonces, clock)
    now = int(clock.now().timestamp())
    message = body()
    assert verifier.verify(now, message, sign(SECRET, now, message))["event"] == "code.activated"
    assert list(nonces.seen.values()) == [600]  # kept for the window on either side of now
    with pytest.raises(Refused) as replayed:
        verifier.verify(now, message, sign(SECRET, now, message))
    assert replayed.value.kind == "replayed"
    with pytest.raises(Refused) as forged:
        verifier.verify(now, body(id="e2"), sign(SECRET, now, message))
    assert forged.value.kind == "forged"
    with pytest.raises(Refused) as expired:
        verifier.verify(now - 301, message, sign(SECRET, now - 301, message))
    assert expired.value.kind == "expired"
    assert len(nonces.seen) == 1  # refused messages use no nonce


def test_a_signed_body_is_still_validated(clock: FakeClock) -> None:
    verifier = EventVerifier(SECRET, 300, MemoryNonces(), clock)
    now = int(clock.now().timestamp())
    bad = json.dumps({"event": "no spaces allowed", "extra": 1}).encode()
    with pytest.raises(ValidationError) as e:
        verifier.verify(now, bad, sign(SECRET, now, bad))
    assert set(e.value.errors["body"]) == {"event", "extra"}
