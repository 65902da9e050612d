"""``Store``: the one object the rest of the bot holds for persistence.

It owns the engine and the transaction boundaries; the SQL lives in one module per table
(``users``, ``api_keys``, ``generations``, ``events``, ``cursors``). Every method is one
transaction, and everything it returns is a frozen value, never a live database object. Opening a
store migrates its schema to the newest revision and checks the secret key.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from core.errors import UserError
from core.store import api_keys, cursors, events, generations, migrate, users
from core.store.engine import WRITE, make_engine
from core.store.generations import Generation, NewGeneration
from core.store.secret_box import SecretBox
from core.store.urls import async_url, shown
from core.store.users import User

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Store:
    """Users, identities, encrypted API keys, generations, event claims and cursors."""

    def __init__(self, engine: AsyncEngine, box: SecretBox, clock: Clock, revision: str) -> None:
        """Use ``Store.open``; this only keeps what it is given."""
        self._engine = engine
        self._box = box
        self._now = clock
        self.revision = revision
        self.dialect = engine.dialect.name
        self._serial_writes = self.dialect == "sqlite"
        self._write_lock = asyncio.Lock()

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        secret_box: SecretBox,
        schema: str | None = None,
        clock: Clock | None = None,
    ) -> Store:
        """Connect, migrate the schema to the newest revision and check the secret key.

        ``url`` is ``sqlite:///file.db`` or ``postgresql://…`` (any driver name is swapped for the
        async one); ``schema`` puts the tables in a PostgreSQL schema, created if missing.
        """
        parsed = async_url(url)
        engine = make_engine(parsed, schema=schema)
        try:
            await _reach(engine, shown(parsed))
            revision = await migrate.upgrade(engine, schema=schema)
            store = cls(engine, secret_box, clock or _utc_now, revision)
            async with store._transaction(write=True) as conn:
                await api_keys.check_box(conn, secret_box)
        except BaseException:
            await engine.dispose()
            raise
        log.info(
            "store open: %s at revision %s, secret key %s",
            shown(parsed),
            revision,
            secret_box.fingerprint,
        )
        return store

    async def close(self) -> None:
        """Close every connection; idempotent."""
        await self._engine.dispose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @asynccontextmanager
    async def _transaction(self, *, write: bool) -> AsyncIterator[AsyncConnection]:
        # SQLite takes one writer at a time: queue writers here rather than in the connection
        # pool, where a burst of them timed out (measured with 1,000 requests in flight).
        lock = self._write_lock if write and self._serial_writes else None
        if lock is not None:
            await lock.acquire()
        try:
            async with self._engine.connect() as conn:
                if write:
                    await conn.execution_options(**{WRITE: True})
                async with conn.begin():
                    yield conn
        finally:
            if lock is not None:
                lock.release()

    # ---- users and identities -------------------------------------------------------------

    async def identify(self, platform: str, platform_user_id: str, display_name: str = "") -> User:
        """The user behind a platform identity, created on first sight; the name is refreshed."""
        async with self._transaction(write=True) as conn:
            user_id = await users.identify(
                conn, platform, platform_user_id, display_name, self._now()
            )
            return await _user(conn, user_id)

    async def link_identity(
        self, user_id: str, platform: str, platform_user_id: str, display_name: str = ""
    ) -> User:
        """Attach an identity to a user, taking it from (and merging) any user that had it."""
        async with self._transaction(write=True) as conn:
            now = self._now()
            emptied = await users.link(conn, user_id, platform, platform_user_id, display_name, now)
            if emptied is not None:
                await api_keys.move(conn, self._box, emptied, user_id, now)
                await users.merge(conn, emptied, user_id)
                log.info("merged user %s into %s", emptied, user_id)
            return await _user(conn, user_id)

    async def unlink_identity(self, platform: str, platform_user_id: str) -> bool:
        """Detach an identity from its user; False when it was not linked."""
        async with self._transaction(write=True) as conn:
            return await users.unlink(conn, platform, platform_user_id)

    async def user(self, user_id: str) -> User | None:
        """The user with this id, or None."""
        async with self._transaction(write=False) as conn:
            return await users.get(conn, user_id)

    async def find_user(self, platform: str, platform_user_id: str) -> User | None:
        """The user an identity belongs to, or None if it was never seen."""
        async with self._transaction(write=False) as conn:
            user_id = await users.owner(conn, platform, platform_user_id)
            return None if user_id is None else await users.get(conn, user_id)

    # ---- horde API keys -------------------------------------------------------------------

    async def set_api_key(self, user_id: str, key: str) -> None:
        """Store the user's horde API key, encrypted; ``UserError`` if it cannot be a key."""
        async with self._transaction(write=True) as conn:
            await api_keys.put(conn, self._box, user_id, key, self._now())

    async def api_key(self, user_id: str) -> str | None:
        """The user's horde API key in clear, or None; ``SecretKeyMismatch`` on a wrong key."""
        async with self._transaction(write=False) as conn:
            return await api_keys.get(conn, self._box, user_id)

    async def clear_api_key(self, user_id: str) -> bool:
        """Forget the user's horde API key; False when none was stored."""
        async with self._transaction(write=True) as conn:
            return await api_keys.clear(conn, user_id)

    # ---- processed events -----------------------------------------------------------------

    async def claim_event(self, platform: str, event_id: str) -> bool:
        """Record a platform event as handled; True only for the first claim of it, ever."""
        async with self._transaction(write=True) as conn:
            return await events.claim(conn, platform, event_id, self._now())

    async def forget_events(self, before: datetime) -> int:
        """Drop event claims older than ``before`` (no longer redelivered); returns the count."""
        async with self._transaction(write=True) as conn:
            return await events.forget_before(conn, before)

    # ---- generations ----------------------------------------------------------------------

    async def accept(
        self, platform: str, event_id: str, new: Sequence[NewGeneration]
    ) -> list[Generation] | None:
        """Claim the event and store its generations in one transaction; None for a duplicate."""
        async with self._transaction(write=True) as conn:
            return await generations.accept(conn, platform, event_id, new, self._now())

    async def generation(self, gen_id: str) -> Generation | None:
        """One generation by id, or None."""
        async with self._transaction(write=False) as conn:
            return await generations.get(conn, gen_id)

    async def in_flight(self) -> list[Generation]:
        """Generations accepted, submitted, or finished but not yet delivered; oldest first."""
        async with self._transaction(write=False) as conn:
            return await generations.in_flight(conn)

    async def last_generation(
        self, user_id: str, *, platform: str | None = None
    ) -> Generation | None:
        """The user's newest generation (on ``platform`` if given), for reroll and variations."""
        async with self._transaction(write=False) as conn:
            return await generations.latest(conn, user_id, platform)

    async def mark_submitted(self, gen_id: str, horde_id: str) -> bool:
        """accepted → submitted; False if it was not accepted."""
        async with self._transaction(write=True) as conn:
            return await generations.mark_submitted(conn, gen_id, horde_id, self._now())

    async def requeue(self, gen_id: str) -> bool:
        """submitted → accepted, to send it again; False if it was not submitted."""
        async with self._transaction(write=True) as conn:
            return await generations.requeue(conn, gen_id, self._now())

    async def mark_done(
        self, gen_id: str, result: Mapping[str, Any], *, kudos: float | None = None
    ) -> bool:
        """submitted → done with its result; False if it was not submitted."""
        async with self._transaction(write=True) as conn:
            return await generations.mark_done(conn, gen_id, result, kudos, self._now())

    async def mark_failed(self, gen_id: str, error: str) -> bool:
        """accepted, submitted or done → failed; False if it had already ended."""
        async with self._transaction(write=True) as conn:
            return await generations.mark_failed(conn, gen_id, error, self._now())

    async def mark_cancelled(self, gen_id: str) -> bool:
        """accepted or submitted → cancelled; False if it was further along."""
        async with self._transaction(write=True) as conn:
            return await generations.mark_cancelled(conn, gen_id, self._now())

    async def mark_delivered(self, gen_id: str, message_id: str) -> bool:
        """Record the reply's platform message id; False if it was delivered before (or not due)."""
        async with self._transaction(write=True) as conn:
            return await generations.mark_delivered(conn, gen_id, message_id, self._now())

    # ---- adapter cursors ------------------------------------------------------------------

    async def cursor(self, scope: str, name: str) -> str | None:
        """A value an adapter kept, such as ``("mastodon", "last_notification")``; or None."""
        async with self._transaction(write=False) as conn:
            return await cursors.get(conn, scope, name)

    async def set_cursor(self, scope: str, name: str, value: str) -> None:
        """Keep ``value`` under ``(scope, name)``, replacing the old one."""
        async with self._transaction(write=True) as conn:
            await cursors.put(conn, scope, name, value, self._now())


async def _reach(engine: AsyncEngine, where: str) -> None:
    """Connect once, turning "cannot connect" into a one-line error."""
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except (DBAPIError, OSError) as exc:
        reason = " ".join(str(getattr(exc, "orig", None) or exc).split())[:200]
        raise UserError(
            f"cannot open the database at {where}: {reason}",
            hint="check the database url and that its server is running",
        ) from None


async def _user(conn: AsyncConnection, user_id: str) -> User:
    user = await users.get(conn, user_id)
    if user is None:
        raise RuntimeError(f"user {user_id} vanished inside its own transaction")
    return user
