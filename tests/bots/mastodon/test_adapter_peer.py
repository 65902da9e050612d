"""The adapter against mastodon-mock with a stand-in core: listening, answering, venue calls."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import pytest
from mastodon_mock.config import DatabaseConfig, MastodonMockConfig, StreamingConfig
from mastodon_mock.testing import MockServer
from PIL import Image

from bots.deps import AdapterDeps
from bots.mastodon.adapter import MastodonAdapter
from bots.mastodon.config import MastodonConfig
from core.catalog import Catalog
from core.contract import DeliveryError
from core.messages import Ack, AckKind, Invocation, OutImage, Reply, ReplyTarget
from core.store import SecretBox, Store
from tests.bots.mastodon.conftest import BOT_TOKEN, SEED
from tests.bots.mastodon.peer import bot_replies, wait_for_replies


class StubInbox:
    """Answers ``help`` with a long text and accepts everything else; keeps what it got."""

    def __init__(self) -> None:
        self.got: list[Invocation] = []

    async def submit(self, invocation: Invocation) -> Ack:
        self.got.append(invocation)
        if invocation.command == "help":
            return Ack(AckKind.ANSWERED, "\n".join(f"/command{i} " + "x" * 70 for i in range(12)))
        return Ack(AckKind.ACCEPTED, generation_ids=("g",))


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(f"sqlite:///{tmp_path}/bot.db", secret_box=SecretBox.generate())
    yield opened
    await opened.close()


@asynccontextmanager
async def adapter_on(
    server: MockServer, store: Store, inbox: StubInbox, **settings: Any
) -> AsyncIterator[MastodonAdapter]:
    values: dict[str, Any] = {
        "api_base_url": server.base_url,
        "streaming": False,
        "poll_interval_s": 0.3,
        "retry_max_wait_s": 1,
        **settings,
    }
    adapter = MastodonAdapter(MastodonConfig(**values), AdapterDeps(store, cast(Catalog, None)))
    await adapter.start(inbox)
    try:
        yield adapter
    finally:
        await adapter.stop()


async def until(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


def post(server: MockServer, text: str, *, user: str = "alice", visibility: str = "public") -> str:
    return str(server.client(user).status_post(text, visibility=visibility)["id"])


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buffer, format="PNG")
    return buffer.getvalue()


async def test_answers_are_threaded_and_chatter_is_ignored(
    mastodon_peer: MockServer, store: Store
) -> None:
    inbox = StubInbox()
    async with adapter_on(mastodon_peer, store, inbox):
        chatter = post(mastodon_peer, "@imagebot what a nice day")
        asked = post(mastodon_peer, "@imagebot help")
        replies = await wait_for_replies(mastodon_peer, asked, count=2, timeout=15)
        await asyncio.sleep(1.0)
    assert [i.command for i in inbox.got] == ["help"]
    assert bot_replies(mastodon_peer, chatter) == []
    assert all(r["visibility"] == "unlisted" and "@alice" in r["content"] for r in replies)
    assert str(replies[1]["in_reply_to_id"]) == str(replies[0]["id"])


async def test_a_public_login_is_refused_and_the_key_never_read(
    mastodon_peer: MockServer, store: Store
) -> None:
    inbox = StubInbox()
    async with adapter_on(mastodon_peer, store, inbox, streaming=True):
        asked = post(mastodon_peer, "@imagebot /login SECRETKEY12345", visibility="unlisted")
        [reply] = await wait_for_replies(mastodon_peer, asked, timeout=15)
        await asyncio.sleep(1.0)
    assert inbox.got == []
    assert "direct message" in reply["content"]
    assert "SECRETKEY12345" not in reply["content"]
    assert len(bot_replies(mastodon_peer, asked)) == 1


async def test_catch_up_reads_only_what_came_after_the_cursor(
    mastodon_peer: MockServer, store: Store
) -> None:
    inbox = StubInbox()
    first = post(mastodon_peer, "@imagebot draw me a fox")
    async with adapter_on(mastodon_peer, store, inbox, poll_interval_s=600):
        await until(lambda: len(inbox.got) == 1)
    second = post(mastodon_peer, "@imagebot draw me a cat")
    async with adapter_on(mastodon_peer, store, inbox, poll_interval_s=600):
        await until(lambda: len(inbox.got) == 2)
        await asyncio.sleep(0.5)
    assert [i.event_id for i in inbox.got] == [first, second]


async def test_sending_the_same_reply_twice_posts_once(
    mastodon_peer: MockServer, store: Store
) -> None:
    asked = post(mastodon_peer, "@imagebot draw me a fox")
    target = ReplyTarget("mastodon", {"status_id": asked, "acct": "alice", "visibility": "public"})
    reply = Reply("gen-42", text="“a fox”", images=(OutImage(png(), "image/png", "a fox"),))
    async with adapter_on(mastodon_peer, store, StubInbox(), poll_interval_s=600) as adapter:
        first = await adapter.send(target, reply)
        again = await adapter.send(target, reply)
    assert first == again
    assert len(bot_replies(mastodon_peer, asked)) == 1


async def test_a_deleted_target_is_a_final_delivery_error(
    mastodon_peer: MockServer, store: Store
) -> None:
    target = ReplyTarget("mastodon", {"status_id": "1", "acct": "alice", "visibility": "public"})
    async with adapter_on(mastodon_peer, store, StubInbox(), poll_interval_s=600) as adapter:
        mastodon_peer.fault(path="/api/v1/statuses", methods=["POST"], status=422, count=1)
        with pytest.raises(DeliveryError) as raised:
            await adapter.send(target, Reply("gen-1", text="x"))
    assert raised.value.retryable is False


async def test_announce_posts_and_votes_count_favourites_but_not_the_bot(
    mastodon_peer: MockServer, store: Store
) -> None:
    async with adapter_on(mastodon_peer, store, StubInbox(), poll_interval_s=600) as adapter:
        images = (OutImage(png(), "image/png", "entry one"),)
        status_id = await adapter.announce("unlisted", "Prompt challenge: a lighthouse", images)
        ids = {}
        for user in ("alice", "bob", "imagebot"):
            client = mastodon_peer.client(user)
            client.status_favourite(status_id)
            ids[user] = str(client.me()["id"])
        votes = await adapter.votes(ReplyTarget("mastodon", {}), status_id)
        with pytest.raises(ValueError, match="visibility"):
            await adapter.announce("#art", "x")
    status = mastodon_peer.client("alice").status(status_id)
    assert status["visibility"] == "unlisted"
    assert status["media_attachments"][0]["description"] == "entry one"
    assert votes.voters == frozenset({ids["alice"], ids["bob"]})


async def test_the_stream_brings_mentions_without_polling(
    mastodon_peer: MockServer, store: Store
) -> None:
    inbox = StubInbox()
    async with adapter_on(
        mastodon_peer, store, inbox, streaming=True, poll_interval_s=600
    ) as adapter:
        # The catch-up at start, then the one when the stream went live.
        await until(lambda: adapter.stream_healthy and adapter.sweeps == 2)
        sweeps = adapter.sweeps
        asked = post(mastodon_peer, "@imagebot draw me a fox")
        await until(lambda: len(inbox.got) == 1)
        assert adapter.sweeps == sweeps
    assert inbox.got[0].event_id == asked


async def test_polling_takes_over_where_streaming_is_switched_off(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HORDEBOT_MASTODON_TOKEN", BOT_TOKEN)
    config = MastodonMockConfig(
        database=DatabaseConfig(path=":memory:"),
        seed=SEED,
        streaming=StreamingConfig(enabled=False),
    )
    inbox = StubInbox()
    with MockServer(config=config) as server:
        async with adapter_on(server, store, inbox, streaming=True, stream_stale_s=2) as adapter:
            asked = post(server, "@imagebot draw me a fox")
            await until(lambda: len(inbox.got) == 1)
            assert not adapter.stream_healthy
    assert inbox.got[0].event_id == asked
