"""Fixtures of the Reddit tests: the fake, a store, a catalog, and an adapter pointed at both."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from bots.deps import AdapterDeps
from bots.reddit.adapter import RedditAdapter
from bots.reddit.config import RedditConfig, Secrets
from core.catalog import Catalog
from core.config import load_config
from core.messages import Ack, Invocation
from core.store import SecretBox, Store
from tests.peers.reddit import RedditFake, serve
from tests.support.stack_config import write_stack_config

IMAGES = "hordebot_images"


class StubInbox:
    """Answers every command with one fixed ack and keeps what it got."""

    def __init__(self, ack: Ack) -> None:
        self.ack = ack
        self.got: list[Invocation] = []

    async def submit(self, invocation: Invocation) -> Ack:
        self.got.append(invocation)
        return self.ack


def webp(color: tuple[int, int, int] = (10, 200, 10)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(out, "WEBP", lossless=True)
    return out.getvalue()


def reddit_section(fake: RedditFake, **extra: Any) -> dict[str, Any]:
    return {
        "username": fake.bot,
        "subreddits": ["pics", "blocked"],
        "deny_subreddits": ["blocked"],
        "image_subreddit": IMAGES,
        "oauth_url": fake.base_url,
        "reddit_url": fake.base_url,
        "poll_interval_s": 0.1,
        "retry_first_s": 0.05,
        "retry_max_s": 2.0,
        **extra,
    }


@pytest.fixture
def reddit(monkeypatch: pytest.MonkeyPatch) -> Iterator[RedditFake]:
    for fake in serve():
        # praw always uploads media over https: trust the fake's throwaway CA.
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", fake.ca_file)
        monkeypatch.setenv("HORDEBOT_REDDIT_CLIENT_ID", fake.client_id)
        monkeypatch.setenv("HORDEBOT_REDDIT_CLIENT_SECRET", fake.client_secret)
        monkeypatch.setenv("HORDEBOT_REDDIT_PASSWORD", fake.password)
        yield fake


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(f"sqlite:///{tmp_path}/bot.db", secret_box=SecretBox.generate())
    yield opened
    await opened.close()


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    return Catalog.from_config(load_config(str(write_stack_config(tmp_path))))


def adapter_for(fake: RedditFake, store: Store, catalog: Catalog, **extra: Any) -> RedditAdapter:
    config = RedditConfig.model_validate(reddit_section(fake, **extra))
    secrets = Secrets(fake.client_id, fake.client_secret, fake.password)
    return RedditAdapter(config, AdapterDeps(store, catalog), secrets)
