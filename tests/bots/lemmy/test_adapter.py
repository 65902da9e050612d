"""The Lemmy adapter against the fake instance, with a scripted core: polling, answers, marking
read, idempotent sends, the challenge venue. The whole bot runs in test_acceptance.py."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PIL import Image

from bots.deps import AdapterDeps
from bots.lemmy.adapter import LemmyAdapter
from bots.lemmy.client import LemmyClient
from bots.lemmy.config import LemmyConfig
from core.catalog import Catalog
from core.config import load_config
from core.messages import Ack, AckKind, Invocation, OutImage, Reply, ReplyTarget
from core.retrying import Backoff
from core.store import SecretBox, Store
from tests.bots.lemmy.conftest import BOT, BOT_PASSWORD
from tests.peers.lemmy import FakeLemmy
from tests.support.stack_config import write_stack_config

QUICK = Backoff(first_s=0.01, max_s=0.05)


class ScriptedInbox:
    """Answers every command with one fixed ack and keeps what it got."""

    def __init__(self, ack: Ack) -> None:
        self.ack = ack
        self.got: list[Invocation] = []

    async def submit(self, invocation: Invocation) -> Ack:
        self.got.append(invocation)
        return self.ack


def png(color: tuple[int, int, int] = (10, 200, 10)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(out, "PNG")
    return out.getvalue()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(f"sqlite:///{tmp_path}/bot.db", secret_box=SecretBox.generate())
    yield opened
    await opened.close()


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    return Catalog.from_config(load_config(str(write_stack_config(tmp_path))))


@pytest.fixture
async def made() -> AsyncIterator[list[LemmyAdapter]]:
    """Adapters a test built, stopped (connections closed) whatever the test's outcome."""
    adapters: list[LemmyAdapter] = []
    yield adapters
    for adapter in adapters:
        await adapter.stop()


def adapter_for(
    fake: FakeLemmy, store: Store, catalog: Catalog, made: list[LemmyAdapter], **extra: object
) -> LemmyAdapter:
    config = LemmyConfig.model_validate(
        {"instance_url": fake.base_url, "username": BOT, "poll_interval_s": 0.05, **extra}
    )
    client = LemmyClient(fake.base_url, BOT, BOT_PASSWORD, backoff=QUICK)
    adapter = LemmyAdapter(config, AdapterDeps(store, catalog), client, backoff=QUICK)
    made.append(adapter)
    return adapter


async def test_an_answer_is_posted_once_and_the_mention_marked_read(
    lemmy: FakeLemmy, store: Store, catalog: Catalog, made: list[LemmyAdapter]
) -> None:
    post = lemmy.add_post("alice", "art")
    asked = lemmy.comment("alice", post.id, "@hordebot help")
    lemmy.comment("alice", post.id, "@hordebot you are great")
    adapter = adapter_for(lemmy, store, catalog, made)
    inbox = ScriptedInbox(Ack(AckKind.ANSWERED, "here is the help"))
    await adapter._client.login()
    assert await adapter.poll_once(inbox) == 2
    assert [i.command for i in inbox.got] == ["help"]
    answers = lemmy.comments_by(BOT, parent_id=asked)
    assert len(answers) == 1
    assert answers[0].content.startswith("here is the help")
    assert lemmy.unread_mentions(BOT) == 0
    assert await adapter.poll_once(inbox) == 0


async def test_a_failed_mark_read_leaves_the_mention_for_the_next_poll(
    lemmy: FakeLemmy, store: Store, catalog: Catalog, made: list[LemmyAdapter]
) -> None:
    post = lemmy.add_post("alice", "art")
    lemmy.comment("alice", post.id, "@hordebot draw me a cat")
    adapter = adapter_for(lemmy, store, catalog, made)
    inbox = ScriptedInbox(Ack(AckKind.ACCEPTED, "", ("g1",)))
    # One poll's worth of tries (the client makes 5): the next poll gets through.
    lemmy.fail_next("/api/v3/user/mention/mark_as_read", "500", count=5)
    assert await adapter.poll_once(inbox) == 1
    assert lemmy.unread_mentions(BOT) == 1
    inbox.ack = Ack(AckKind.DUPLICATE)
    assert await adapter.poll_once(inbox) == 1
    assert lemmy.unread_mentions(BOT) == 0
    assert [i.event_id for i in inbox.got] == [inbox.got[0].event_id] * 2


async def test_login_in_a_public_comment_is_refused_without_echoing_the_key(
    lemmy: FakeLemmy, store: Store, catalog: Catalog, made: list[LemmyAdapter]
) -> None:
    post = lemmy.add_post("alice", "art")
    asked = lemmy.comment("alice", post.id, "@hordebot /login 0123456789abcdef")
    adapter = adapter_for(lemmy, store, catalog, made)
    inbox = ScriptedInbox(Ack(AckKind.ANSWERED, "logged in"))
    await adapter.poll_once(inbox)
    assert inbox.got == []
    (answer,) = lemmy.comments_by(BOT, parent_id=asked)
    assert "public" in answer.content
    assert "0123456789abcdef" not in answer.content


async def test_sending_the_same_generation_twice_posts_one_comment(
    lemmy: FakeLemmy, store: Store, catalog: Catalog, made: list[LemmyAdapter]
) -> None:
    post = lemmy.add_post("alice", "art")
    asked = lemmy.comment("alice", post.id, "@hordebot draw me a cat")
    adapter = adapter_for(lemmy, store, catalog, made)
    target = ReplyTarget("lemmy", {"post_id": post.id, "comment_id": asked})
    reply = Reply("gen-1", text="“a cat”", images=(OutImage(png(), "image/png", "a cat"),))
    first = await adapter.send(target, reply)
    lemmy.fail_next("/api/v3/comment/list", "500")
    again = await adapter.send(target, reply)
    assert first == again
    assert len(lemmy.comments_by(BOT, parent_id=asked)) == 1
    assert lemmy.count("POST", "/pictrs/image") == 1


async def test_a_challenge_is_announced_and_its_upvoters_counted(
    lemmy: FakeLemmy, store: Store, catalog: Catalog, made: list[LemmyAdapter]
) -> None:
    adapter = adapter_for(lemmy, store, catalog, made)
    post_id = await adapter.announce(
        "art", "Weekly challenge: lighthouses\nOne entry each.", (OutImage(png(), "image/png"),)
    )
    (made,) = lemmy.posts_in("art")
    assert str(made.id) == post_id
    assert made.name == "Weekly challenge: lighthouses"
    assert made.body is not None
    assert "](http" in made.body
    entry = lemmy.comment(BOT, made.id, "entry")
    for voter, score in (("alice", 1), ("bob", -1), (BOT, 1)):
        lemmy.vote(voter, entry, score)
    votes = await adapter.votes(ReplyTarget("lemmy", {}), str(entry))
    assert votes.voters == frozenset({f"https://{lemmy.host_name}/u/alice"})
    assert votes.score == 0
