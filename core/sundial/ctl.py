"""``sundialctl``: Sundial's admin client, every RPC of the gRPC API as a subcommand.

The address and token come from ``--addr``/``--token`` or ``SUNDIALCTL_ADDR``/
``SUNDIALCTL_TOKEN``. Output is a table with times in the viewer's zone
(``--tz``, default the local one), or the messages as JSON with ``--json``. An
error exits with status 1 and the server's status and message.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import wraps
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click
import grpc
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from .v1 import jobs_pb2_grpc, operations_pb2_grpc, runs_pb2_grpc, scheduler_pb2_grpc

_STUBS = {
    "jobs": jobs_pb2_grpc.JobServiceStub,
    "runs": runs_pb2_grpc.RunServiceStub,
    "scheduler": scheduler_pb2_grpc.SchedulerServiceStub,
    "dead": operations_pb2_grpc.DeadLetterServiceStub,
    "events": operations_pb2_grpc.EventServiceStub,
    "metrics": operations_pb2_grpc.MetricsServiceStub,
    "plugins": operations_pb2_grpc.PluginServiceStub,
}


class Client:
    """A channel to the API, the token, and how to print answers."""

    def __init__(self, addr: str, token: str | None, *, as_json: bool, zone: ZoneInfo | None, timeout: float,
                 ca: str | None, cert: str | None, key: str | None) -> None:  # fmt: skip
        self.token = token
        self.as_json = as_json
        self.zone = zone
        self.timeout = timeout
        if ca or cert:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=Path(ca).read_bytes() if ca else None,
                private_key=Path(key).read_bytes() if key else None,
                certificate_chain=Path(cert).read_bytes() if cert else None,
            )
            self.channel = grpc.secure_channel(addr, credentials)
        else:
            self.channel = grpc.insecure_channel(addr)

    def call(self, service: str, method: str, request: Message, *, stream: bool = False) -> Any:
        """Call ``service.method``; the answer, or an iterator of answers for a stream."""
        metadata = [("authorization", f"Bearer {self.token}")] if self.token else []
        stub = _STUBS[service](self.channel)
        return getattr(stub, method)(request, metadata=metadata, timeout=None if stream else self.timeout)

    # -- output ------------------------------------------------------------------

    def when(self, message: Message, field: str) -> str:
        """A time field in the viewer's zone, or "-" when unset."""
        if not message.HasField(field):
            return "-"
        stamp: Timestamp = getattr(message, field)
        return stamp.ToDatetime(tzinfo=UTC).astimezone(self.zone).isoformat(timespec="seconds")

    def show(
        self, items: Sequence[Message], columns: dict[str, Callable[[Any], Any]], whole: Message | None = None
    ) -> None:
        """Print ``items`` as a table of ``columns``, or ``whole`` (default: the items) as JSON."""
        if self.as_json:
            value = as_dict(whole) if whole is not None else [as_dict(m) for m in items]
            click.echo(json.dumps(value, indent=2))
            return
        rows = [[str(get(item)) for get in columns.values()] for item in items]
        _table(list(columns), rows)


def as_dict(message: Message) -> dict[str, Any]:
    """A message as JSON-ready values, field names as in the proto."""
    return MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


def _table(headers: list[str], rows: list[list[str]]) -> None:
    if not rows:
        click.echo("(none)")
        return
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # rich is optional: plain aligned columns
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
        click.echo("  ".join(h.upper().ljust(w) for h, w in zip(headers, widths)).rstrip())
        for row in rows:
            click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
        return
    table = Table(*[h.upper() for h in headers], box=None, pad_edge=False, header_style="bold")
    for row in rows:
        table.add_row(*row)
    Console(soft_wrap=True, width=max(200, 20 * len(headers))).print(table)


def _failing_cleanly(command: Callable[..., Any]) -> Callable[..., Any]:
    """A gRPC error becomes ``error: CODE: message`` on stderr and exit status 1."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except grpc.RpcError as e:
            code = e.code().name if hasattr(e, "code") else "UNKNOWN"
            details = e.details() if hasattr(e, "details") else str(e)
            click.echo(f"error: {code}: {details}", err=True)
            sys.exit(1)

    return wrapper


pass_client = click.make_pass_decorator(Client)


def command(group: click.Group, name: str, **kwargs: Any) -> Callable[[Callable[..., Any]], Any]:
    """``group.command(name)`` with the client passed in and gRPC errors reported."""

    def decorate(function: Callable[..., Any]) -> Any:
        return group.command(name, **kwargs)(pass_client(_failing_cleanly(function)))

    return decorate


@click.group()
@click.option("--addr", envvar="SUNDIALCTL_ADDR", default="127.0.0.1:50051", show_default=True)
@click.option("--token", envvar="SUNDIALCTL_TOKEN", help="A bearer token (or SUNDIALCTL_TOKEN).")
@click.option("--json", "as_json", is_flag=True, help="Print the answers as JSON.")
@click.option("--tz", "tz", envvar="SUNDIALCTL_TZ", help="Show times in this zone (default: the local one).")
@click.option("--timeout", default=30.0, show_default=True, help="Seconds to wait for an answer.")
@click.option("--ca", envvar="SUNDIALCTL_CA", type=click.Path(dir_okay=False), help="TLS: the server's CA.")
@click.option("--cert", envvar="SUNDIALCTL_CERT", type=click.Path(dir_okay=False), help="Mutual TLS: a certificate.")
@click.option("--key", envvar="SUNDIALCTL_KEY", type=click.Path(dir_okay=False), help="Mutual TLS: its private key.")
@click.pass_context
def main(ctx: click.Context, addr: str, token: str | None, as_json: bool, tz: str | None, timeout: float,
         ca: str | None, cert: str | None, key: str | None) -> None:  # fmt: skip
    """Manage a Sundial deployment through its gRPC API."""
    try:
        zone = ZoneInfo(tz) if tz else None
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise click.BadParameter(f"unknown time zone {tz!r}", param_hint="--tz") from e
    ctx.obj = Client(addr, token, as_json=as_json, zone=zone, timeout=timeout, ca=ca, cert=cert, key=key)


def payload_json(text: str | None) -> str | None:
    """The ``--payload`` text after checking it is a JSON object (the server checks again)."""
    if text is None:
        return None
    try:
        if not isinstance(json.loads(text), dict):
            raise ValueError("not an object")
    except ValueError as e:
        raise click.BadParameter("must be a JSON object", param_hint="--payload") from e
    return text


def instant(text: str | None, option: str) -> Timestamp | None:
    """An ISO 8601 time (with an offset; UTC without) as a Timestamp."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError as e:
        raise click.BadParameter(f"not an ISO 8601 time: {text!r}", param_hint=option) from e
    stamp = Timestamp()
    stamp.FromDatetime((value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC))
    return stamp


def each_page(fetch: Callable[[str], Any], field: str, limit: int | None) -> tuple[list[Any], Any]:
    """Follow page tokens until ``limit`` items (or the last page); the items and the last answer."""
    items: list[Any] = []
    token = ""
    while True:
        answer = fetch(token)
        items.extend(getattr(answer, field))
        token = answer.next_page_token
        if not token or (limit is not None and len(items) >= limit):
            return (items[:limit] if limit else items), answer


def show_runs(client: Client, found: list[Any], whole: Any = None) -> None:
    """Runs as a table (or ``whole`` as JSON)."""
    client.show(found, {
        "id": lambda r: r.id, "job": lambda r: r.job_id, "fire_time": lambda r: client.when(r, "scheduled_at"),
        "status": lambda r: r.status, "attempt": lambda r: r.attempt, "reason": lambda r: r.reason,
        "error": lambda r: r.error, "covers": lambda r: r.fire_count,
    }, whole)  # fmt: skip


def watch(client: Client, service: str, method: str, request: Message, show: Callable[[Any], None]) -> None:
    """Print each message of a stream as it comes, until interrupted."""
    try:
        for message in client.call(service, method, request, stream=True):
            show(message)
    except KeyboardInterrupt:
        return


from . import ctl_commands, ctl_jobs  # noqa: E402,F401  (they register the subcommands on ``main``)

if __name__ == "__main__":
    main()
