"""Small named values adapters keep between runs, such as the last notification id they read.

An adapter that catches up a backlog at start asks for its cursor, reads what came after, and moves
the cursor on; with the event claims this makes the catch-up safe to repeat.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from core.store.dialects import upsert
from core.store.tables import cursors


async def get(conn: AsyncConnection, scope: str, name: str) -> str | None:
    """The value stored under ``(scope, name)``, or None."""
    row = (
        await conn.execute(
            select(cursors.c.value).where(cursors.c.scope == scope, cursors.c.name == name)
        )
    ).first()
    return None if row is None else str(row.value)


async def put(conn: AsyncConnection, scope: str, name: str, value: str, now: datetime) -> None:
    """Store ``value`` under ``(scope, name)``, replacing what was there."""
    await upsert(
        conn,
        cursors,
        {"scope": scope, "name": name, "value": value, "updated_at": now},
        keys=("scope", "name"),
    )
