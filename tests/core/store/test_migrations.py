"""The schema comes from the shipped Alembic scripts: created on an empty database, idempotent."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect

from core.store import SecretBox
from core.store.migrate import current, head
from core.store.tables import VERSION_TABLE, metadata
from tests.core.store.conftest import Backend

EXPECTED_TABLES = {
    "users",
    "challenges",
    "challenge_entries",
    "challenge_payouts",
    "identities",
    "generations",
    "processed_events",
    "cursors",
    "store_meta",
    VERSION_TABLE,
}


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


def _drift(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "version_table": VERSION_TABLE}
    )
    return list(compare_metadata(context, metadata))


async def test_open_migrates_an_empty_database_to_head(
    backend: Backend, secret_box: SecretBox
) -> None:
    async with backend.connect() as conn:
        assert await current(conn) is None
        assert await conn.run_sync(_tables) == set()
    store = await backend.open(secret_box)
    await store.close()
    assert store.revision == head()
    async with backend.connect() as conn:
        assert await current(conn) == head()
        assert await conn.run_sync(_tables) == EXPECTED_TABLES


async def test_migrated_schema_matches_tables_module(
    backend: Backend, secret_box: SecretBox
) -> None:
    await (await backend.open(secret_box)).close()
    async with backend.connect() as conn:
        assert await conn.run_sync(_drift) == []


async def test_reopening_keeps_data_and_changes_nothing(
    backend: Backend, secret_box: SecretBox
) -> None:
    first = await backend.open(secret_box)
    user = await first.identify("discord", "42", "Ann")
    await first.close()
    second = await backend.open(secret_box)
    try:
        assert second.revision == head()
        assert await second.find_user("discord", "42") == user
    finally:
        await second.close()


async def test_processes_starting_together_migrate_once(
    backend: Backend, secret_box: SecretBox
) -> None:
    stores = await asyncio.gather(*(backend.open(secret_box) for _ in range(3)))
    try:
        assert {s.revision for s in stores} == {head()}
        await stores[0].identify("discord", "1")
        assert await stores[2].find_user("discord", "1") is not None
    finally:
        for s in stores:
            await s.close()
