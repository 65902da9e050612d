"""Database URLs: every accepted form runs on an async driver; the rest is a one-line UserError."""

from __future__ import annotations

import pytest

from core.errors import UserError
from core.store.urls import async_url, shown


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sqlite:///var/bot.db", "sqlite+aiosqlite:///var/bot.db"),
        ("sqlite+aiosqlite:///var/bot.db", "sqlite+aiosqlite:///var/bot.db"),
        ("sqlite+pysqlite:////abs/bot.db", "sqlite+aiosqlite:////abs/bot.db"),
        ("postgresql://u@h:5432/db", "postgresql+asyncpg://u@h:5432/db"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql+psycopg2://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgres://u@h/db", "postgresql+asyncpg://u@h/db"),
    ],
)
def test_urls_are_normalised_to_async_drivers(given: str, expected: str) -> None:
    assert async_url(given).render_as_string(hide_password=False) == expected


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("not a url", "is not a URL"),
        ("sqlite://", "SQLite file"),
        ("sqlite:///:memory:", "SQLite file"),
        ("mysql://u@h/db", "does not support"),
    ],
)
def test_unusable_urls_say_what_to_write(given: str, says: str) -> None:
    with pytest.raises(UserError) as caught:
        async_url(given)
    message = str(caught.value)
    assert says in message
    assert "\n" not in message


def test_passwords_never_shown() -> None:
    url = async_url("postgresql://bot:hunter2@db.example/bots")
    assert "hunter2" not in shown(url)
    with pytest.raises(UserError) as caught:
        async_url("mysql://bot:hunter2@db.example/bots")
    assert "hunter2" not in str(caught.value)
