"""Database URLs as the operator writes them, turned into the async drivers the store runs on.

Config files say ``sqlite:///var/bot.db`` or ``postgresql://user@host/db``; the store always talks
through ``aiosqlite`` or ``asyncpg``, so any sync driver name is swapped for the async one here.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from core.errors import UserError

_EXAMPLES = "sqlite:///var/hordebot.db or postgresql://user@host/dbname"


def async_url(url: str) -> URL:
    """The URL with its async driver; raises ``UserError`` for URLs the store cannot use."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise UserError(f"database url {url!r} is not a URL", hint=f"write {_EXAMPLES}") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or database.startswith("file:"):
            raise UserError(
                "the store needs an SQLite file, not an in-memory database",
                hint="write sqlite:///path/to/hordebot.db",
            )
        return parsed.set(drivername="sqlite+aiosqlite")
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+asyncpg")
    raise UserError(
        f"database url {shown(parsed)!r} names {backend!r}, which the store does not support",
        hint=f"write {_EXAMPLES}",
    )


def sqlite_path(url: URL) -> Path | None:
    """The database file of an SQLite URL; ``None`` for other backends."""
    if url.get_backend_name() != "sqlite" or not url.database:
        return None
    return Path(url.database)


def shown(url: URL) -> str:
    """The URL as it may appear in logs and messages: any password masked."""
    return url.render_as_string(hide_password=True)
