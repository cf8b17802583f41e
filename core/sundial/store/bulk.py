"""Many rows in one statement on PostgreSQL: the batch travels as one JSON document.

An ``executemany`` sends a statement per row (pipelined, but each is still
bound, parsed and executed on its own), and a column of arrays costs
psycopg a Python escape per element. A JSON document is encoded by the json
module in C and unpacked in the server by ``json_to_recordset``, typed by the
table's own columns; the statement's text never changes with the batch's
size, so PostgreSQL prepares it once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, TextClause, bindparam, text
from sqlalchemy.dialects import postgresql

from . import tables as t

_PG = postgresql.dialect()


def rows_param(rows: Iterable[Mapping[str, Any]]) -> str:
    """The ``:rows`` parameter: the rows as one JSON array (times in ISO 8601, exact to the microsecond)."""
    return json.dumps(list(rows), default=datetime.isoformat)


def _recordset(table: Table, names: Sequence[str]) -> str:
    columns = ", ".join(f'"{name}" {table.c[name].type.compile(dialect=_PG)}' for name in names)
    return f"json_to_recordset(CAST(:rows AS json)) AS v({columns})"


def insert_rows(
    table: Table, names: Sequence[str], *, constants: Mapping[str, str] | None = None, suffix: str = ""
) -> TextClause:
    """``INSERT`` of ``:rows`` into ``names``; ``constants`` are SQL the same for every row (``:now``)."""
    constants = constants or {}
    into = ", ".join(f'"{name}"' for name in [*names, *constants])
    values = ", ".join([*(f'v."{name}"' for name in names), *constants.values()])
    source = _recordset(table, names)
    return _with_now(text(f"INSERT INTO {table.name} ({into}) SELECT {values} FROM {source} {suffix}"))


def update_rows(
    table: Table, keys: Sequence[str], names: Sequence[str], *, constants: Mapping[str, str] | None = None
) -> TextClause:
    """``UPDATE`` setting ``names`` from ``:rows`` where the row's ``keys`` match; ``constants`` as for inserts."""
    sets = [*(f'"{name}" = v."{name}"' for name in names), *(f'"{n}" = {sql}' for n, sql in (constants or {}).items())]
    where = " AND ".join(f'{table.name}."{key}" = v."{key}"' for key in keys)
    recordset = _recordset(table, [*keys, *names])
    return _with_now(text(f"UPDATE {table.name} SET {', '.join(sets)} FROM {recordset} WHERE {where}"))


def _with_now(statement: TextClause) -> TextClause:
    # :now, where used, is bound as the store binds every time
    if ":now" in statement.text:
        return statement.bindparams(bindparam("now", type_=t.UTCDateTime()))
    return statement
