"""Alembic environment: the engine comes from ``sundial.store.migrate``, never from a file."""

from __future__ import annotations

from alembic import context

from sundial.store.migrate import VERSION_TABLE
from sundial.store.tables import metadata

engine = context.config.attributes["engine"]
with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
