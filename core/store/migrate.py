"""Bring a database's schema up to date by running the Alembic scripts shipped in ``migrations/``.

``Store.open`` calls this every time: on an empty database it creates everything, on a current one
it does nothing. It runs in one transaction (SQLite and PostgreSQL both have transactional DDL), and
on PostgreSQL under an advisory lock, so two processes starting together do not both migrate.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from core.store.engine import WRITE
from core.store.tables import VERSION_TABLE

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# pg_advisory_xact_lock key: any constant that other software on the database is unlikely to use.
_PG_LOCK = 0x686F7264_65626F74 & 0x7FFFFFFFFFFFFFFF


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's settings without an ini file; ``env.py`` takes the connection from attributes."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head() -> str:
    """The newest revision the shipped scripts define."""
    revision = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if revision is None:
        raise RuntimeError(f"no migration scripts in {MIGRATIONS}")
    return revision


def _upgrade(connection: Connection) -> None:
    command.upgrade(alembic_config(connection), "head")


def _current(connection: Connection) -> str | None:
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


async def upgrade(engine: AsyncEngine, *, schema: str | None = None) -> str:
    """Run every pending migration (in ``schema``, created if missing, on PostgreSQL).

    Returns the revision the database is now at. ``schema`` must already be a checked plain name.
    """
    async with engine.connect() as conn:
        await conn.execution_options(**{WRITE: True})
        async with conn.begin():
            if conn.dialect.name == "postgresql":
                await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK})
                if schema is not None:
                    # Under the lock: concurrent CREATE SCHEMA IF NOT EXISTS can still collide.
                    await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            await conn.run_sync(_upgrade)
            revision = await conn.run_sync(_current)
    if revision is None:
        raise RuntimeError("the migrations ran but left no schema version")
    return revision


async def current(conn: AsyncConnection) -> str | None:
    """The revision a database is at; None for an empty one."""
    return await conn.run_sync(_current)
