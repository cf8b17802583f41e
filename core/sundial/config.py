"""Configuration: parsed once at start into a typed ``Settings`` and passed down.

Sources, later ones winning: the defaults, an optional TOML file (``--config``
or ``SUNDIAL_CONFIG``), then ``SUNDIAL_*`` environment variables. With
nothing set, Sundial runs embedded on an SQLite file in the working directory.
An unknown key, a wrong type or an unusable URL stops the start with an error
that names it.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, post_load, validate, validates, validates_schema
from marshmallow import fields as mf

from .errors import ConfigError

ENV_PREFIX = "SUNDIAL_"
# variables that configure the process around Sundial rather than Sundial itself
# (SUNDIAL_FAILPOINTS is read by sundial.failpoints, in fault tests)
_ENV_PASSTHROUGH = ("SUNDIAL_CONFIG", "SUNDIAL_FAILPOINTS", "SUNDIAL_TEST_")
_DB_SCHEMES = ("sqlite", "postgresql", "postgresql+psycopg")


@dataclass(frozen=True)
class Settings:
    """Every setting Sundial reads, with its default."""

    database_url: str = "sqlite:///sundial.db"
    broker_url: str | None = None
    redis_url: str | None = None
    redis_key_prefix: str = "sundial:"
    domain_database_url: str | None = None
    concurrency: int = 4
    queues: tuple[str, ...] = ("default",)
    batch_size: int = 500
    max_idle_seconds: float = 1.0
    lease_seconds: float = 30.0
    sweep_interval_seconds: float = 5.0
    shutdown_grace_seconds: float = 30.0
    max_payload_bytes: int = 65536
    prefetch: int = 4
    # not a whole number: creating and publishing happen between the whole seconds schedules fire
    # on, rather than at the instant the runs created a second earlier start their handlers
    lookahead_seconds: float = 1.5
    queue_max_length: int = 100_000
    requeue_queued_after_seconds: float = 1800.0
    plugins_disabled: tuple[str, ...] = ()
    log_level: str = "INFO"
    worker_name: str | None = None
    metrics_addr: str | None = None
    handler_isolation: str = "thread"
    # the gRPC control plane (``server.py api``)
    api_addr: str = "127.0.0.1:50051"
    api_tokens: tuple[str, ...] = ()
    api_admin_tokens: tuple[str, ...] = ()
    api_tls_cert: str | None = None
    api_tls_key: str | None = None
    api_tls_client_ca: str | None = None
    api_max_message_bytes: int = 4 * 1024 * 1024
    api_max_page_size: int = 1000
    api_max_concurrent_calls: int = 64
    event_signing_secret: str | None = None
    event_replay_window_seconds: float = 300.0
    plugins: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def embedded(self) -> bool:
        """True when no broker URL is set: the store itself carries the runs."""
        return self.broker_url is None


def _url(schemes: tuple[str, ...]) -> Callable[[str], None]:
    def check(value: str) -> None:
        scheme, sep, rest = value.partition("://")
        if not sep or scheme not in schemes:
            raise ValidationError(f"must be a URL starting with one of {', '.join(s + '://' for s in schemes)}")
        if scheme == "sqlite" and not rest.startswith("/"):
            raise ValidationError("an SQLite URL is sqlite:///relative/path.db or sqlite:////absolute/path.db")

    return check


def _host_port(value: str) -> None:
    host, sep, port = value.rpartition(":")
    if not sep or not host.strip("[]") or not port.isdigit() or int(port) > 65535:
        raise ValidationError("must be host:port, for example 127.0.0.1:9464 or [::1]:9464")


def _readable(value: str) -> None:
    if not Path(value).is_file():
        raise ValidationError(f"no file at {value}")


class _List(mf.List):
    """A list that also accepts a comma-separated string (how it arrives from the environment)."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        return tuple(super()._deserialize(value, attr, data, **kwargs))


class SettingsSchema(Schema):
    """Validates raw settings (strings from the environment, TOML values)."""

    class Meta:
        unknown = RAISE

    database_url = mf.String(validate=_url(_DB_SCHEMES))
    broker_url = mf.String(allow_none=True, validate=_url(("amqp", "amqps")))
    redis_url = mf.String(allow_none=True, validate=_url(("redis", "rediss", "unix")))
    redis_key_prefix = mf.String(validate=validate.Length(min=1, max=64))
    domain_database_url = mf.String(allow_none=True, validate=_url(_DB_SCHEMES))
    concurrency = mf.Integer(strict=False, validate=validate.Range(min=1, max=1024))
    queues = _List(mf.String(validate=validate.Regexp(r"^[A-Za-z0-9_.-]{1,64}$")), validate=validate.Length(min=1))
    batch_size = mf.Integer(validate=validate.Range(min=1, max=100_000))
    max_idle_seconds = mf.Float(validate=validate.Range(min=0.01, max=60))
    lease_seconds = mf.Float(validate=validate.Range(min=1, max=3600))
    sweep_interval_seconds = mf.Float(validate=validate.Range(min=0.1, max=3600))
    shutdown_grace_seconds = mf.Float(validate=validate.Range(min=0, max=3600))
    max_payload_bytes = mf.Integer(validate=validate.Range(min=1, max=16 * 1024 * 1024))
    prefetch = mf.Integer(validate=validate.Range(min=1, max=10_000))
    lookahead_seconds = mf.Float(validate=validate.Range(min=0, max=60))
    queue_max_length = mf.Integer(validate=validate.Range(min=1))
    requeue_queued_after_seconds = mf.Float(validate=validate.Range(min=1))
    plugins_disabled = _List(mf.String())
    log_level = mf.String(validate=validate.OneOf(["DEBUG", "INFO", "WARNING", "ERROR"]))
    worker_name = mf.String(allow_none=True, validate=validate.Length(min=1, max=128))
    metrics_addr = mf.String(allow_none=True, validate=_host_port)
    handler_isolation = mf.String(validate=validate.OneOf(["thread", "process"]))
    api_addr = mf.String(validate=_host_port)
    api_tokens = _List(mf.String(validate=validate.Length(min=16, error="a token needs at least 16 characters")))
    api_admin_tokens = _List(mf.String(validate=validate.Length(min=16, error="a token needs at least 16 characters")))
    api_tls_cert = mf.String(allow_none=True, validate=_readable)
    api_tls_key = mf.String(allow_none=True, validate=_readable)
    api_tls_client_ca = mf.String(allow_none=True, validate=_readable)
    api_max_message_bytes = mf.Integer(validate=validate.Range(min=1024, max=256 * 1024 * 1024))
    api_max_page_size = mf.Integer(validate=validate.Range(min=1, max=100_000))
    api_max_concurrent_calls = mf.Integer(validate=validate.Range(min=1, max=10_000))
    event_signing_secret = mf.String(
        allow_none=True, validate=validate.Length(min=16, error="the secret needs at least 16 characters")
    )
    event_replay_window_seconds = mf.Float(validate=validate.Range(min=1, max=86400))
    plugins = mf.Dict(keys=mf.String(), values=mf.Dict())

    @validates("log_level")
    def _upper(self, value: str, **_: Any) -> None:
        if value != value.upper():
            raise ValidationError("use upper case: DEBUG, INFO, WARNING or ERROR")

    @validates_schema
    def _tls(self, data: dict[str, Any], **_: Any) -> None:
        if bool(data.get("api_tls_cert")) != bool(data.get("api_tls_key")):
            raise ValidationError("api_tls_cert and api_tls_key go together", "api_tls_key")
        if data.get("api_tls_client_ca") and not data.get("api_tls_cert"):
            raise ValidationError("mutual TLS needs api_tls_cert and api_tls_key too", "api_tls_client_ca")
        shared = set(data.get("api_tokens", ())) & set(data.get("api_admin_tokens", ()))
        if shared:
            raise ValidationError("a token cannot be both read-only and admin", "api_tokens")

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> Settings:
        return Settings(**data)


_KEYS = [f.name for f in fields(Settings)]


def load_settings(config_file: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Build ``Settings`` from the defaults, a TOML file and the environment.

    Raises ``ConfigError`` naming the key (and, for a typo, the key it resembles).
    """
    environ = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    path = config_file or environ.get("SUNDIAL_CONFIG")
    if path:
        raw.update(_read_toml(Path(path)))
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name.startswith(_ENV_PASSTHROUGH):
            continue
        key = name[len(ENV_PREFIX) :].lower()
        if key not in _KEYS or key == "plugins":
            raise ConfigError(f"unknown environment variable {name}{_did_you_mean(key, prefix=ENV_PREFIX)}")
        raw[key] = value
    try:
        return SettingsSchema().load(raw)
    except ValidationError as e:
        messages = e.messages if isinstance(e.messages, dict) else {"_": e.messages}
        raise ConfigError("; ".join(_explain(key, msgs) for key, msgs in sorted(messages.items()))) from e


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError as e:
        raise ConfigError(f"config file {path} does not exist") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path} is not valid TOML: {e}") from e
    # allow the keys either at the top level or under a [sundial] table
    return {**{k: v for k, v in data.items() if k != "sundial"}, **data.get("sundial", {})}


def _explain(key: str, messages: Any) -> str:
    text = "; ".join(str(m) for m in messages) if isinstance(messages, list) else str(messages)
    if text == "Unknown field.":
        return f"unknown setting {key!r}{_did_you_mean(key)}"
    env = f" ({ENV_PREFIX}{key.upper()})" if key in _KEYS else ""
    return f"setting {key!r}{env}: {text}"


def _did_you_mean(key: str, prefix: str = "") -> str:
    close = difflib.get_close_matches(key, _KEYS, n=1)
    hint = f" (did you mean {prefix}{close[0].upper() if prefix else close[0]}?)" if close else ""
    return f"{hint}; known settings: {', '.join(_KEYS)}"
