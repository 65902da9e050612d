"""The statements SQLite and PostgreSQL spell differently: insert-or-nothing and upsert.

Both backends support ``INSERT … ON CONFLICT``, which makes a claim atomic without a read first: of
two racing inserts of the same key, exactly one reports a row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection


def _insert(conn: AsyncConnection, table: Table) -> sqlite.Insert | postgresql.Insert:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table)
    raise RuntimeError(f"the store does not support {conn.dialect.name}")


async def insert_or_nothing(conn: AsyncConnection, table: Table, values: Mapping[str, Any]) -> bool:
    """Insert one row unless its key exists; True when this call inserted it."""
    statement = _insert(conn, table).values(**values).on_conflict_do_nothing()
    result = await conn.execute(statement)
    return result.rowcount == 1


async def upsert(
    conn: AsyncConnection,
    table: Table,
    values: Mapping[str, Any],
    *,
    keys: Sequence[str],
) -> None:
    """Insert one row, or update the non-key columns of the row with the same ``keys``."""
    statement = _insert(conn, table).values(**values)
    changes = {name: statement.excluded[name] for name in values if name not in keys}
    await conn.execute(statement.on_conflict_do_update(index_elements=list(keys), set_=changes))
