"""Users' horde API keys, sealed with the ``SecretBox`` before they reach the database.

The clear key exists only in memory: it is sealed before any SQL sees it, so neither the database
file nor the SQL log (parameters included) ever holds it. A check value sealed at first open tells
at start, not at first use, when the configured secret key is not the one the keys were sealed with.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from core.errors import UserError
from core.store.secret_box import SecretBox, SecretKeyMismatch
from core.store.tables import store_meta, users

log = logging.getLogger(__name__)

MAX_KEY_LENGTH = 256
_CHECK_KEY = "secret_check"
_CHECK_TEXT = "hordebot store secret check"


def _context(user_id: str) -> str:
    return f"users.api_key:{user_id}"


async def put(conn: AsyncConnection, box: SecretBox, user_id: str, key: str, now: datetime) -> None:
    """Store ``key`` for the user, sealed; raises ``UserError`` for a key that cannot be one."""
    clean = key.strip()
    if not clean or len(clean) > MAX_KEY_LENGTH or any(c.isspace() for c in clean):
        raise UserError(
            "that is not a horde API key",
            hint="paste the key from https://aihorde.net/register, without spaces",
        )
    result = await conn.execute(
        update(users)
        .where(users.c.id == user_id)
        .values(api_key_sealed=box.seal(clean, context=_context(user_id)), api_key_set_at=now)
    )
    if result.rowcount != 1:
        raise KeyError(f"no user {user_id}")


async def get(conn: AsyncConnection, box: SecretBox, user_id: str) -> str | None:
    """The user's clear API key, or None if none is stored."""
    sealed = await conn.scalar(select(users.c.api_key_sealed).where(users.c.id == user_id))
    if sealed is None:
        return None
    return box.open(bytes(sealed), context=_context(user_id))


async def clear(conn: AsyncConnection, user_id: str) -> bool:
    """Forget the user's API key; False when none was stored."""
    result = await conn.execute(
        update(users)
        .where(users.c.id == user_id, users.c.api_key_sealed.is_not(None))
        .values(api_key_sealed=None, api_key_set_at=None)
    )
    return result.rowcount == 1


async def move(
    conn: AsyncConnection, box: SecretBox, source: str, target: str, now: datetime
) -> None:
    """Give ``target`` the key of ``source`` when it has none (keys are sealed to their user)."""
    if await get(conn, box, target) is not None:
        return
    key = await get(conn, box, source)
    if key is not None:
        await put(conn, box, target, key, now)


async def check_box(conn: AsyncConnection, box: SecretBox) -> None:
    """Fail with ``SecretKeyMismatch`` if stored keys were sealed with a different secret key.

    With no keys stored yet, a changed secret key harms nothing: the check is sealed anew.
    """
    sealed = await conn.scalar(select(store_meta.c.value).where(store_meta.c.key == _CHECK_KEY))
    if sealed is not None:
        try:
            box.open(bytes(sealed), context=_CHECK_KEY)
            return
        except SecretKeyMismatch:
            stored = await conn.scalar(
                select(func.count()).select_from(users).where(users.c.api_key_sealed.is_not(None))
            )
            if stored:
                raise
            log.warning("secret key changed (now %s); no API keys were stored", box.fingerprint)
            await conn.execute(delete(store_meta).where(store_meta.c.key == _CHECK_KEY))
    await conn.execute(
        insert(store_meta).values(key=_CHECK_KEY, value=box.seal(_CHECK_TEXT, context=_CHECK_KEY))
    )
