"""Fixtures for the Lemmy adapter tests: a started fake instance with a bot, users and places."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.peers.lemmy import FakeLemmy

BOT = "hordebot"
BOT_PASSWORD = "bot-password"


@pytest.fixture
def lemmy(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLemmy]:
    """A fake instance with the bot, alice and bob, and the art, nsfwart and gallery communities."""
    monkeypatch.setenv("HORDEBOT_LEMMY_PASSWORD", BOT_PASSWORD)
    with FakeLemmy() as fake:
        fake.add_person(BOT, BOT_PASSWORD)
        fake.add_person("alice", "alice-pw")
        fake.add_person("bob", "bob-pw")
        fake.add_community("art")
        fake.add_community("nsfwart", nsfw=True)
        fake.add_community("gallery")
        yield fake
