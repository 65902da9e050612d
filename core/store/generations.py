"""Generations and their lifecycle, stored before anything is sent so none is lost on a restart.

States: ``accepted`` (stored, not yet sent) → ``submitted`` (the horde has it) → ``done`` (images
kept) → ``delivered``; or ``failed`` / ``cancelled``. Every transition is a compare-and-set on the
current state, so two tasks racing on one generation cannot both move it. A failed generation still
owes the user its error message: it counts as in flight until ``delivered_at`` is set.

The payload is the horde body exactly as sent, minus credentials: API keys travel in a header and
are refused here if they ever turn up in a body.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Row, and_, case, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from core.store import events
from core.store.tables import generations

_CREDENTIAL_KEYS = frozenset({"apikey", "api_key", "x-api-key", "x_api_key"})


class GenerationState(StrEnum):
    """Where a generation is in its life."""

    ACCEPTED = "accepted"
    SUBMITTED = "submitted"
    DONE = "done"
    DELIVERED = "delivered"
    FAILED = "failed"
    CANCELLED = "cancelled"


# Not finished: the service still has work to do on these.
_WORKING = (GenerationState.ACCEPTED, GenerationState.SUBMITTED, GenerationState.DONE)


@dataclass(frozen=True, slots=True)
class NewGeneration:
    """A generation to accept: who asked, where to answer, what was asked and the horde body."""

    user_id: str
    platform_user_id: str
    reply_target: Mapping[str, Any]
    spec: Mapping[str, Any]
    payload: Mapping[str, Any]
    channel_id: str = ""
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Generation:
    """A stored generation, as read back."""

    id: str
    platform: str
    event_id: str
    position: int
    user_id: str
    platform_user_id: str
    channel_id: str
    reply_target: Mapping[str, Any]
    spec: Mapping[str, Any]
    payload: Mapping[str, Any]
    state: GenerationState
    horde_id: str | None
    kudos: float | None
    result: Mapping[str, Any] | None
    error: str | None
    attempts: int
    created_at: datetime
    updated_at: datetime
    submitted_at: datetime | None
    finished_at: datetime | None
    delivered_at: datetime | None
    delivered_message_id: str | None


async def accept(
    conn: AsyncConnection,
    platform: str,
    event_id: str,
    new: Sequence[NewGeneration],
    now: datetime,
) -> list[Generation] | None:
    """Claim the event and store its generations together; None if the event was claimed before."""
    for item in new:
        refuse_credentials(item.payload)
    if not await events.claim(conn, platform, event_id, now):
        return None
    ids = [item.id or str(uuid.uuid4()) for item in new]
    if new:
        await conn.execute(
            insert(generations),
            [
                {
                    "id": gen_id,
                    "platform": platform,
                    "event_id": event_id,
                    "position": position,
                    "user_id": item.user_id,
                    "platform_user_id": item.platform_user_id,
                    "channel_id": item.channel_id,
                    "reply_target": dict(item.reply_target),
                    "spec": dict(item.spec),
                    "payload": dict(item.payload),
                    "state": GenerationState.ACCEPTED.value,
                    "attempts": 0,
                    "created_at": now,
                    "updated_at": now,
                }
                for position, (gen_id, item) in enumerate(zip(ids, new, strict=True))
            ],
        )
    rows = await conn.execute(
        select(generations)
        .where(generations.c.platform == platform, generations.c.event_id == event_id)
        .order_by(generations.c.position)
    )
    return [_generation(row) for row in rows]


async def get(conn: AsyncConnection, gen_id: str) -> Generation | None:
    """The generation with this id, or None."""
    row = (await conn.execute(select(generations).where(generations.c.id == gen_id))).first()
    return None if row is None else _generation(row)


async def in_flight(conn: AsyncConnection) -> list[Generation]:
    """Every generation that still needs work or owes a reply, oldest first."""
    rows = await conn.execute(
        select(generations)
        .where(
            or_(
                generations.c.state.in_(_values(_WORKING)),
                and_(
                    generations.c.state == GenerationState.FAILED.value,
                    generations.c.delivered_at.is_(None),
                ),
            )
        )
        .order_by(generations.c.created_at, generations.c.event_id, generations.c.position)
    )
    return [_generation(row) for row in rows]


async def latest(conn: AsyncConnection, user_id: str, platform: str | None) -> Generation | None:
    """The user's most recent generation, on ``platform`` if given."""
    query = select(generations).where(generations.c.user_id == user_id)
    if platform is not None:
        query = query.where(generations.c.platform == platform)
    query = query.order_by(generations.c.created_at.desc(), generations.c.position.desc()).limit(1)
    row = (await conn.execute(query)).first()
    return None if row is None else _generation(row)


async def transition(
    conn: AsyncConnection,
    gen_id: str,
    allowed_from: Sequence[GenerationState],
    now: datetime,
    **values: Any,
) -> bool:
    """Apply ``values`` if the generation is in one of ``allowed_from``; True when it was."""
    result = await conn.execute(
        update(generations)
        .where(generations.c.id == gen_id, generations.c.state.in_(_values(allowed_from)))
        .values(updated_at=now, **values)
    )
    return result.rowcount == 1


async def mark_submitted(conn: AsyncConnection, gen_id: str, horde_id: str, now: datetime) -> bool:
    """accepted → submitted, with the horde's request id; counts an attempt."""
    return await transition(
        conn,
        gen_id,
        [GenerationState.ACCEPTED],
        now,
        state=GenerationState.SUBMITTED.value,
        horde_id=horde_id,
        submitted_at=now,
        attempts=generations.c.attempts + 1,
    )


async def requeue(conn: AsyncConnection, gen_id: str, now: datetime) -> bool:
    """submitted → accepted, to send again (the horde lost or expired the request)."""
    return await transition(
        conn,
        gen_id,
        [GenerationState.SUBMITTED],
        now,
        state=GenerationState.ACCEPTED.value,
        horde_id=None,
    )


async def mark_done(
    conn: AsyncConnection,
    gen_id: str,
    result: Mapping[str, Any],
    kudos: float | None,
    now: datetime,
) -> bool:
    """submitted → done, with what came back (image refs, seeds, worker, model, censored)."""
    return await transition(
        conn,
        gen_id,
        [GenerationState.SUBMITTED],
        now,
        state=GenerationState.DONE.value,
        result=dict(result),
        kudos=kudos,
        finished_at=now,
    )


async def mark_failed(conn: AsyncConnection, gen_id: str, error: str, now: datetime) -> bool:
    """accepted, submitted or done → failed; the error is what the user will be told."""
    return await transition(
        conn,
        gen_id,
        _WORKING,
        now,
        state=GenerationState.FAILED.value,
        error=error,
        finished_at=now,
    )


async def mark_cancelled(conn: AsyncConnection, gen_id: str, now: datetime) -> bool:
    """accepted or submitted → cancelled (the user withdrew it)."""
    return await transition(
        conn,
        gen_id,
        [GenerationState.ACCEPTED, GenerationState.SUBMITTED],
        now,
        state=GenerationState.CANCELLED.value,
        finished_at=now,
    )


async def mark_delivered(
    conn: AsyncConnection, gen_id: str, message_id: str, now: datetime
) -> bool:
    """Record the reply (done → delivered; a failed one stays failed): True for the first only."""
    result = await conn.execute(
        update(generations)
        .where(
            generations.c.id == gen_id,
            generations.c.delivered_at.is_(None),
            generations.c.state.in_(_values([GenerationState.DONE, GenerationState.FAILED])),
        )
        .values(
            state=case(
                (
                    generations.c.state == GenerationState.DONE.value,
                    GenerationState.DELIVERED.value,
                ),
                else_=generations.c.state,
            ),
            delivered_at=now,
            delivered_message_id=message_id,
            updated_at=now,
        )
    )
    return result.rowcount == 1


def refuse_credentials(payload: Any, path: str = "payload") -> None:
    """Raise ``ValueError`` if a body carries an API key; bodies are stored as they are."""
    if isinstance(payload, Mapping):
        for key, value in payload.items():
            if str(key).lower() in _CREDENTIAL_KEYS:
                raise ValueError(f"{path}.{key}: horde bodies are stored without API keys")
            refuse_credentials(value, f"{path}.{key}")
    elif isinstance(payload, list | tuple):
        for index, value in enumerate(payload):
            refuse_credentials(value, f"{path}[{index}]")


def _values(states: Sequence[GenerationState]) -> list[str]:
    # Plain strings: drivers bind str subclasses unevenly.
    return [state.value for state in states]


def _generation(row: Row[Any]) -> Generation:
    return Generation(
        id=row.id,
        platform=row.platform,
        event_id=row.event_id,
        position=row.position,
        user_id=row.user_id,
        platform_user_id=row.platform_user_id,
        channel_id=row.channel_id,
        reply_target=row.reply_target,
        spec=row.spec,
        payload=row.payload,
        state=GenerationState(row.state),
        horde_id=row.horde_id,
        kudos=row.kudos,
        result=row.result,
        error=row.error,
        attempts=row.attempts,
        created_at=row.created_at,
        updated_at=row.updated_at,
        submitted_at=row.submitted_at,
        finished_at=row.finished_at,
        delivered_at=row.delivered_at,
        delivered_message_id=row.delivered_message_id,
    )
