"""Alembic, driven from code: ``python server.py migrate`` and the start-up check call this."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

MIGRATIONS = Path(__file__).with_name("migrations")
VERSION_TABLE = "sundial_alembic_version"


def alembic_config(engine: Engine) -> Config:
    """An Alembic config that runs this package's migrations on ``engine``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def current_revision(engine: Engine) -> str | None:
    """The schema revision the database is at; None for an empty database."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()


def head_revision(engine: Engine) -> str:
    """The newest revision this version of Sundial knows."""
    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    assert head is not None, "the migrations folder has no revisions"
    return head


def upgrade(engine: Engine) -> str:
    """Upgrade the schema to the head revision and return it."""
    command.upgrade(alembic_config(engine), "head")
    return head_revision(engine)
