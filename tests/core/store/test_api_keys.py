"""Horde API keys: encrypted at rest; the clear key is never in the database file or the logs."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from core.errors import UserError
from core.store import SecretBox, SecretKeyMismatch, Store
from tests.core.store.conftest import Backend

CLEAR_KEY = "Zq8vK3yHordeApiKey0042"
# Stored in clear on purpose: proves the greps below can see stored data at all.
VISIBLE_NAME = "VisibleDisplayName-7731"


def _database_bytes(file: Path) -> bytes:
    parts = [file, file.with_name(file.name + "-wal"), file.with_name(file.name + "-shm")]
    return b"".join(p.read_bytes() for p in parts if p.exists())


async def test_key_is_stored_and_read_back(store: Store) -> None:
    user = await store.identify("discord", "1")
    assert await store.api_key(user.id) is None
    await store.set_api_key(user.id, f"  {CLEAR_KEY}\n")
    assert await store.api_key(user.id) == CLEAR_KEY
    refreshed = await store.user(user.id)
    assert refreshed is not None
    assert refreshed.has_api_key
    assert await store.clear_api_key(user.id) is True
    assert await store.clear_api_key(user.id) is False
    assert await store.api_key(user.id) is None


@pytest.mark.parametrize("bad", ["", "   ", "two words", "x" * 300])
async def test_a_key_that_cannot_be_one_is_a_user_error(store: Store, bad: str) -> None:
    user = await store.identify("discord", "1")
    with pytest.raises(UserError, match="not a horde API key"):
        await store.set_api_key(user.id, bad)


async def test_clear_key_never_reaches_the_sqlite_file(tmp_path: Path) -> None:
    file = tmp_path / "bot.db"
    store = await Store.open(f"sqlite:///{file}", secret_box=SecretBox.generate())
    user = await store.identify("discord", "1", VISIBLE_NAME)
    await store.set_api_key(user.id, CLEAR_KEY)
    assert await store.api_key(user.id) == CLEAR_KEY
    while_open = _database_bytes(file)
    await store.close()
    after_close = _database_bytes(file)
    for raw in (while_open, after_close):
        assert VISIBLE_NAME.encode() in raw
        assert CLEAR_KEY.encode() not in raw
        assert CLEAR_KEY.encode("utf-16-le") not in raw


async def test_clear_key_never_reaches_the_logs(
    backend: Backend, secret_box: SecretBox, caplog: pytest.LogCaptureFixture
) -> None:
    # DEBUG everywhere; SQLAlchemy pins its own logger to WARNING, so it is raised by name. It then
    # logs every statement with its parameters (and aiosqlite every call with its arguments).
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy")
    store = await backend.open(secret_box)
    try:
        ann = await store.identify("discord", "1", VISIBLE_NAME)
        await store.set_api_key(ann.id, CLEAR_KEY)
        bob = await store.identify("mastodon", "@bob@x.y")
        await store.link_identity(bob.id, "discord", "1")  # merging re-seals the key
        assert await store.api_key(bob.id) == CLEAR_KEY
        with pytest.raises(UserError) as caught:
            await store.set_api_key(bob.id, CLEAR_KEY + " trailing words")
        assert CLEAR_KEY not in str(caught.value)
    finally:
        await store.close()
    logged = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert VISIBLE_NAME in logged
    assert "UPDATE users SET api_key_sealed" in logged
    assert CLEAR_KEY not in logged


async def test_wrong_secret_key_stops_the_store_at_open(
    backend: Backend, secret_box: SecretBox
) -> None:
    store = await backend.open(secret_box)
    user = await store.identify("discord", "1")
    await store.set_api_key(user.id, CLEAR_KEY)
    await store.close()
    wrong = SecretBox.from_text(SecretBox.new_key_text(), source="$HORDEBOT_SECRET_KEY")
    with pytest.raises(SecretKeyMismatch) as caught:
        await backend.open(wrong)
    message = str(caught.value)
    assert "$HORDEBOT_SECRET_KEY" in message
    assert "\n" not in message
    reopened = await backend.open(secret_box)
    try:
        assert await reopened.api_key(user.id) == CLEAR_KEY
    finally:
        await reopened.close()


async def test_changing_the_secret_key_is_harmless_while_no_key_is_stored(
    backend: Backend, secret_box: SecretBox
) -> None:
    await (await backend.open(secret_box)).close()
    other = SecretBox.generate()
    store = await backend.open(other)
    try:
        user = await store.identify("discord", "1")
        await store.set_api_key(user.id, CLEAR_KEY)
    finally:
        await store.close()
    # The check now follows the new key: the old one is refused.
    with pytest.raises(SecretKeyMismatch):
        await backend.open(secret_box)
