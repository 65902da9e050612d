"""Users and their linked platform identities.

A person may reach the bot from several platforms; each ``(platform, platform_user_id)`` belongs to
exactly one user. The first command from an unknown identity creates a user for it. Linking an
identity that already belongs to another user moves it over; when that leaves the other user with
no identity, the two users are merged (generations follow; the API key follows if the target has
none). Proving that both identities are the same person is the caller's job (for example a code
sent on one platform and typed on the other).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from core.store.dialects import insert_or_nothing
from core.store.tables import generations, identities, users

MAX_DISPLAY_NAME = 255


@dataclass(frozen=True, slots=True)
class Identity:
    """One platform account of a user."""

    platform: str
    platform_user_id: str
    user_id: str
    display_name: str
    linked_at: datetime


@dataclass(frozen=True, slots=True)
class User:
    """A person as the bot knows them: their identities and whether a horde API key is stored."""

    id: str
    created_at: datetime
    identities: tuple[Identity, ...]
    has_api_key: bool

    def identity(self, platform: str) -> Identity | None:
        """The user's identity on ``platform`` if linked (the first, should there be several)."""
        return next((i for i in self.identities if i.platform == platform), None)


async def get(conn: AsyncConnection, user_id: str) -> User | None:
    """The user with this id, or None."""
    row = (await conn.execute(select(users).where(users.c.id == user_id))).first()
    if row is None:
        return None
    rows = await conn.execute(
        select(identities)
        .where(identities.c.user_id == user_id)
        .order_by(identities.c.linked_at, identities.c.platform, identities.c.platform_user_id)
    )
    return User(
        id=row.id,
        created_at=row.created_at,
        identities=tuple(_identity(r) for r in rows),
        has_api_key=row.api_key_sealed is not None,
    )


async def owner(conn: AsyncConnection, platform: str, platform_user_id: str) -> str | None:
    """The id of the user that ``(platform, platform_user_id)`` belongs to, or None."""
    row = (
        await conn.execute(
            select(identities.c.user_id).where(
                identities.c.platform == platform,
                identities.c.platform_user_id == platform_user_id,
            )
        )
    ).first()
    return None if row is None else str(row.user_id)


async def identify(
    conn: AsyncConnection,
    platform: str,
    platform_user_id: str,
    display_name: str,
    now: datetime,
) -> str:
    """The user id behind an identity, creating both on first sight; refreshes the display name."""
    _check(platform, platform_user_id)
    name = display_name[:MAX_DISPLAY_NAME]
    user_id = await owner(conn, platform, platform_user_id)
    if user_id is None:
        candidate = str(uuid.uuid4())
        await conn.execute(insert(users).values(id=candidate, created_at=now))
        values = {
            "platform": platform,
            "platform_user_id": platform_user_id,
            "user_id": candidate,
            "display_name": name,
            "linked_at": now,
        }
        if await insert_or_nothing(conn, identities, values):
            return candidate
        # Another transaction created the identity first: use its user, drop ours.
        await conn.execute(delete(users).where(users.c.id == candidate))
        user_id = await owner(conn, platform, platform_user_id)
        if user_id is None:
            raise RuntimeError(f"identity {platform}:{platform_user_id} vanished while claimed")
    if name:
        await _rename(conn, platform, platform_user_id, name)
    return user_id


async def link(
    conn: AsyncConnection,
    user_id: str,
    platform: str,
    platform_user_id: str,
    display_name: str,
    now: datetime,
) -> str | None:
    """Attach an identity to ``user_id``; returns the id of a user left empty by the move, if any.

    The caller merges that emptied user into ``user_id`` (``merge``) in the same transaction.
    """
    _check(platform, platform_user_id)
    if (await conn.execute(select(users.c.id).where(users.c.id == user_id))).first() is None:
        raise KeyError(f"no user {user_id}")
    name = display_name[:MAX_DISPLAY_NAME]
    previous = await owner(conn, platform, platform_user_id)
    if previous is None:
        values = {
            "platform": platform,
            "platform_user_id": platform_user_id,
            "user_id": user_id,
            "display_name": name,
            "linked_at": now,
        }
        if await insert_or_nothing(conn, identities, values):
            return None
        previous = await owner(conn, platform, platform_user_id)
    if previous == user_id or previous is None:
        if name:
            await _rename(conn, platform, platform_user_id, name)
        return None
    changes: dict[str, object] = {"user_id": user_id, "linked_at": now}
    if name:
        changes["display_name"] = name
    await conn.execute(
        update(identities)
        .where(
            identities.c.platform == platform,
            identities.c.platform_user_id == platform_user_id,
        )
        .values(**changes)
    )
    left = await conn.scalar(
        select(func.count()).select_from(identities).where(identities.c.user_id == previous)
    )
    return previous if left == 0 else None


async def merge(conn: AsyncConnection, source: str, target: str) -> None:
    """Fold user ``source`` into ``target``: generations move, then ``source`` is deleted.

    The caller moves the API key first if it should survive (it is sealed to the user id).
    """
    await conn.execute(
        update(generations).where(generations.c.user_id == source).values(user_id=target)
    )
    await conn.execute(
        update(identities).where(identities.c.user_id == source).values(user_id=target)
    )
    await conn.execute(delete(users).where(users.c.id == source))


async def unlink(conn: AsyncConnection, platform: str, platform_user_id: str) -> bool:
    """Detach an identity from its user; False when it was not linked. The user itself stays."""
    result = await conn.execute(
        delete(identities).where(
            identities.c.platform == platform,
            identities.c.platform_user_id == platform_user_id,
        )
    )
    return result.rowcount == 1


async def _rename(conn: AsyncConnection, platform: str, platform_user_id: str, name: str) -> None:
    await conn.execute(
        update(identities)
        .where(
            identities.c.platform == platform,
            identities.c.platform_user_id == platform_user_id,
            identities.c.display_name != name,
        )
        .values(display_name=name)
    )


def _check(platform: str, platform_user_id: str) -> None:
    if not platform or not platform_user_id:
        raise ValueError("an identity needs a platform and a platform user id")


def _identity(row: Row[Any]) -> Identity:
    return Identity(
        platform=row.platform,
        platform_user_id=row.platform_user_id,
        user_id=row.user_id,
        display_name=row.display_name,
        linked_at=row.linked_at,
    )
