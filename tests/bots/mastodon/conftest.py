"""mastodon-mock as the Mastodon peer: a real HTTP server on 127.0.0.1, a bot account and users."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from mastodon_mock.config import SeedAccount, SeedConfig
from mastodon_mock.testing import MockServer

BOT_TOKEN = "imagebot_token"
SEED = SeedConfig(
    accounts=[
        SeedAccount(
            username="imagebot", display_name="Image Bot", bot=True, access_token=BOT_TOKEN
        ),
        SeedAccount(username="alice", display_name="Alice", access_token="alice_token"),
        SeedAccount(username="bob", display_name="Bob", access_token="bob_token"),
    ]
)


@pytest.fixture
def mastodon_peer(monkeypatch: pytest.MonkeyPatch) -> Iterator[MockServer]:
    """A fresh mock instance per test; the bot's token in the adapter's default env var."""
    monkeypatch.setenv("HORDEBOT_MASTODON_TOKEN", BOT_TOKEN)
    with MockServer(seed=SEED) as server:
        yield server
