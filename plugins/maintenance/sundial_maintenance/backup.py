"""Backing up the job store: SQLite's online backup, or pg_dump for PostgreSQL."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

from sqlalchemy import make_url


def backup(url: str, target: Path, pg_dump: str = "pg_dump") -> Path:
    """Write a consistent copy of the database at ``url`` to ``target`` (a file); return the file.

    SQLite is copied page by page with its online backup API while others
    keep writing. PostgreSQL is dumped with ``pg_dump`` in its custom format
    (restore with ``pg_restore``); without ``pg_dump`` on the PATH this raises
    ``RuntimeError`` saying so.
    """
    parsed = make_url(url)
    target.parent.mkdir(parents=True, exist_ok=True)
    if parsed.get_backend_name() == "sqlite":
        source = sqlite3.connect(parsed.database or "")
        copy = sqlite3.connect(target)
        try:
            source.backup(copy)
        finally:
            copy.close()
            source.close()
        return target
    program = shutil.which(pg_dump)
    if program is None:
        raise RuntimeError(
            f"cannot back up PostgreSQL: {pg_dump!r} is not installed (install the PostgreSQL client tools)"
        )
    # the password goes in the environment, where other users' ``ps`` cannot read it
    libpq_url = parsed.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    env = {**os.environ, **({"PGPASSWORD": str(parsed.password)} if parsed.password else {})}
    done = subprocess.run(
        [program, "--format=custom", "--no-owner", f"--file={target}", f"--dbname={libpq_url}"],
        capture_output=True,
        text=True,
        timeout=3600,
        env=env,
    )
    if done.returncode != 0:
        raise RuntimeError(f"pg_dump failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return target
