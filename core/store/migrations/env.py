"""Alembic's entry point: migrate the connection ``core.store.migrate`` hands over.

There is no ini file and no offline (SQL script) mode: the store migrates itself at open. To add a
revision, copy the newest file in ``versions/``, give it a new ``revision``, set
``down_revision`` to the previous one; then the test that compares ``tables.py`` with the
migrated schema must pass.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from core.store.tables import VERSION_TABLE, metadata

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("the store's migrations run through core.store.migrate, with a connection")

context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    # SQLite alters tables by copying them; batch mode does that for later revisions.
    render_as_batch=True,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
