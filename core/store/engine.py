"""The async engine for a store URL, with the settings each backend needs to be safe under load.

SQLite: WAL (readers never block the writer), a busy timeout (writers queue instead of failing),
foreign keys on, and transactions begun by us rather than by the driver, so that a writing
transaction takes the write lock at ``BEGIN IMMEDIATE``: a deferred one that read first could fail
with "database is locked" when it tries to write. PostgreSQL: an optional schema via search_path.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Connection, event
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from core.errors import UserError
from core.store.urls import sqlite_path

BUSY_TIMEOUT_MS = 15_000
# An execution option a writing transaction sets on its connection before it begins.
WRITE = "hordebot_write"
_SCHEMA = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def make_engine(url: URL, *, schema: str | None = None) -> AsyncEngine:
    """An engine for an async URL (see ``urls.async_url``); SQLite folders are created."""
    if url.get_backend_name() == "sqlite":
        if schema is not None:
            raise UserError("a database schema can only be chosen for PostgreSQL")
        path = sqlite_path(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url)
        event.listen(engine.sync_engine, "connect", _sqlite_connect)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    connect_args: dict[str, Any] = {}
    if schema is not None:
        if not _SCHEMA.fullmatch(schema):
            raise UserError(
                f"database schema {schema!r} is not a plain name",
                hint="use lower-case letters, digits and _",
            )
        connect_args["server_settings"] = {"search_path": schema}
    return create_async_engine(url, pool_pre_ping=True, connect_args=connect_args)


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Autocommit at the driver level: _sqlite_begin emits BEGIN itself.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # The timeout first: switching a new file to WAL takes a lock that a racing opener may hold.
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    mode = "IMMEDIATE" if conn.get_execution_options().get(WRITE) else "DEFERRED"
    conn.exec_driver_sql(f"BEGIN {mode}")
