"""Processed platform events: a redelivered event (same platform, same id) gets no second reply.

A claim is one ``INSERT … ON CONFLICT DO NOTHING``, so racing claims of one event cannot both win,
even across processes. Rows are only needed while a platform may redeliver, so old ones can go.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncConnection

from core.store.dialects import insert_or_nothing
from core.store.tables import processed_events


async def claim(conn: AsyncConnection, platform: str, event_id: str, now: datetime) -> bool:
    """Record the event as handled; True only for the first claim ever made of it."""
    if not platform or not event_id:
        raise ValueError("an event claim needs a platform and an event id")
    return await insert_or_nothing(
        conn,
        processed_events,
        {"platform": platform, "event_id": event_id, "claimed_at": now},
    )


async def forget_before(conn: AsyncConnection, cutoff: datetime) -> int:
    """Drop claims older than ``cutoff``; returns how many went."""
    result = await conn.execute(
        delete(processed_events).where(processed_events.c.claimed_at < cutoff)
    )
    return result.rowcount
