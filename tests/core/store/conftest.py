"""Store fixtures: SQLite always, PostgreSQL too when ``HORDEBOT_TEST_DATABASE_URL`` is set.

Each PostgreSQL test gets its own schema (``t_<uuid>``), dropped afterwards, so runs can repeat and
run beside other CI jobs on the same database. ``backend.open()`` opens another ``Store`` on the
same database, which is how a test simulates a restart.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from core.store import SecretBox, Store
from core.store.engine import make_engine
from core.store.store import Clock
from core.store.urls import async_url

PG_ENV = "HORDEBOT_TEST_DATABASE_URL"


@dataclass(frozen=True, slots=True)
class Backend:
    """One database a test may open stores on."""

    name: str
    url: str
    schema: str | None = None
    sqlite_file: Path | None = None

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        """A plain connection to the database, outside any store (to look at the schema)."""
        engine = make_engine(async_url(self.url), schema=self.schema)
        try:
            async with engine.connect() as conn:
                yield conn
        finally:
            await engine.dispose()

    async def open(self, box: SecretBox, *, clock: Clock | None = None) -> Store:
        """A new store on this database (as a restarted process would open it)."""
        return await Store.open(self.url, secret_box=box, schema=self.schema, clock=clock)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """An empty database: an SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        file = tmp_path / "store.db"
        yield Backend("sqlite", f"sqlite:///{file}", sqlite_file=file)
        return
    url = os.environ.get(PG_ENV, "")
    if not url:
        pytest.skip(f"PostgreSQL: set {PG_ENV} to run against it")
    schema = f"t_{uuid.uuid4().hex}"
    yield Backend("postgres", url, schema=schema)
    engine = create_async_engine(async_url(url))
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        await engine.dispose()


@pytest.fixture
def secret_box() -> SecretBox:
    """A throwaway secret key."""
    return SecretBox.generate()


@pytest.fixture
async def store(backend: Backend, secret_box: SecretBox) -> AsyncIterator[Store]:
    """An open store on an empty database, closed after the test."""
    opened = await backend.open(secret_box)
    try:
        yield opened
    finally:
        await opened.close()
