"""The adapter against the stateful Reddit fake, with a stub core: real praw, real HTTP."""

from __future__ import annotations

import asyncio
import io

import pytest
from PIL import Image

from core.catalog import Catalog
from core.contract import DeliveryError
from core.messages import Ack, AckKind, OutImage, Reply, ReplyTarget
from core.store import Store
from tests.bots.reddit.conftest import IMAGES, StubInbox, adapter_for, webp
from tests.peers.reddit import RedditFake


def target(thing: str) -> ReplyTarget:
    return ReplyTarget("reddit", {"thing": thing, "author": "alice", "subreddit": "pics"})


def result(*colors: tuple[int, int, int], nsfw: bool = False) -> Reply:
    images = tuple(
        OutImage(webp(c), alt_text="AI-generated image: a cat", nsfw=nsfw) for c in colors
    )
    return Reply("gen-0123456789", text="“a cat”", images=images, metadata={"prompt": "a cat"})


async def test_a_refusal_is_posted_once_and_the_mention_marked_read(
    reddit: RedditFake, store: Store, catalog: Catalog
) -> None:
    adapter = adapter_for(reddit, store, catalog, subreddits=[])
    inbox = StubInbox(Ack(AckKind.REJECTED, "slow down a little: try again in 9 s"))
    await adapter.start(inbox)
    try:
        mention = reddit.add_comment("art", "alice", "u/hordebot draw me a cat")
        await adapter.poll_once(inbox)
        await adapter.poll_once(inbox)
    finally:
        await adapter.stop()
    assert [i.event_id for i in inbox.got] == [mention]
    replies = reddit.replies_to(mention)
    assert len(replies) == 1
    assert replies[0]["body"].startswith("slow down a little")
    assert mention not in reddit.unread


async def test_a_login_in_a_comment_is_refused_once_and_never_reaches_the_core(
    reddit: RedditFake, store: Store, catalog: Catalog
) -> None:
    adapter = adapter_for(reddit, store, catalog, subreddits=[])
    inbox = StubInbox(Ack(AckKind.ANSWERED, "logged in"))
    await adapter.start(inbox)
    try:
        mention = reddit.add_comment("art", "alice", "u/hordebot /login SECRETKEY99")
        reddit.unread.add(mention)  # delivered again, as after a failed mark-read
        await adapter.poll_once(inbox)
        reddit.unread.add(mention)
        await adapter.poll_once(inbox)
    finally:
        await adapter.stop()
    assert inbox.got == []
    (answer,) = reddit.replies_to(mention)
    assert "private message" in answer["body"]
    assert "SECRETKEY99" not in answer["body"]


async def test_send_twice_uploads_once_and_replies_once(
    reddit: RedditFake, store: Store, catalog: Catalog
) -> None:
    adapter = adapter_for(reddit, store, catalog, subreddits=[])
    await adapter.start(StubInbox(Ack(AckKind.DUPLICATE)))
    comment = reddit.add_comment("pics", "alice", "draw me a cat")
    try:
        first = await adapter.send(target(comment), result((200, 10, 10)))
        second = await adapter.send(target(comment), result((200, 10, 10)))
    finally:
        await adapter.stop()
    assert first == second
    (post,) = reddit.posts_in(IMAGES)
    assert len(reddit.uploaded) == 1
    (answer,) = reddit.replies_to(comment)
    assert post["permalink"] in answer["body"]
    assert post["url"] in answer["body"]
    image = Image.open(io.BytesIO(next(iter(reddit.uploaded.values()))))
    assert image.getpixel((0, 0)) == (200, 10, 10)


async def test_a_crash_after_the_post_does_not_upload_again(
    reddit: RedditFake, store: Store, catalog: Catalog
) -> None:
    adapter = adapter_for(reddit, store, catalog, subreddits=[])
    await adapter.start(StubInbox(Ack(AckKind.DUPLICATE)))
    comment = reddit.add_comment("pics", "alice", "draw me a cat")
    # Reddit refuses the comment (403): the post is made, the reply is not.
    reddit.fail("/api/comment", times=1, status=403)
    try:
        with pytest.raises(DeliveryError) as refused:
            await adapter.send(target(comment), result((1, 2, 3), (4, 5, 6)))
        assert not refused.value.retryable
        assert reddit.replies_to(comment) == []
        await adapter.send(target(comment), result((1, 2, 3), (4, 5, 6)))
    finally:
        await adapter.stop()
    (post,) = reddit.posts_in(IMAGES)
    assert post.get("is_gallery")
    assert len(reddit.uploaded) == 2
    assert len(reddit.replies_to(comment)) == 1


async def test_nsfw_images_make_an_nsfw_post_and_the_reply_says_so(
    reddit: RedditFake, store: Store, catalog: Catalog
) -> None:
    adapter = adapter_for(reddit, store, catalog, subreddits=[])
    await adapter.start(StubInbox(Ack(AckKind.DUPLICATE)))
    comment = reddit.add_comment("pics", "alice", "draw me a cat")
    try:
        await adapter.send(target(comment), result((9, 9, 9), nsfw=True))
    finally:
        await adapter.stop()
    (post,) = reddit.posts_in(IMAGES)
    assert post["over_18"]
    (answer,) = reddit.replies_to(comment)
    assert "**NSFW**" in answer["body"]


async def test_a_429_with_retry_after_is_waited_out(
    reddit: RedditFake, store: Store, catalog: Catalog
) -> None:
    adapter = adapter_for(reddit, store, catalog, subreddits=[])
    await adapter.start(StubInbox(Ack(AckKind.DUPLICATE)))
    comment = reddit.add_comment("pics", "alice", "draw me a cat")
    reddit.fail("/api/comment", times=1, status=429, **{"Retry-After": "1"})
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        await adapter.send(target(comment), Reply("gen-x", error="no worker could finish this"))
    finally:
        await adapter.stop()
    assert loop.time() - started >= 1.0
    assert len(reddit.replies_to(comment)) == 1
    assert reddit.count("POST", "/api/comment") == 2


async def test_an_announced_entry_is_a_post_and_its_score_the_votes(
    reddit: RedditFake, store: Store, catalog: Catalog
) -> None:
    adapter = adapter_for(reddit, store, catalog, subreddits=[])
    await adapter.start(StubInbox(Ack(AckKind.DUPLICATE)))
    try:
        text_id = await adapter.announce("challenges", "This week: lighthouses\nVote with upvotes")
        image_id = await adapter.announce("challenges", "Entry by alice", (OutImage(webp()),))
        reddit.set_score(image_id, 42)
        votes = await adapter.votes(ReplyTarget("reddit", {}), image_id)
    finally:
        await adapter.stop()
    posts = reddit.posts_in("challenges")
    assert [p["name"] for p in posts] == [text_id, image_id]
    assert posts[0]["title"] == "This week: lighthouses"
    assert votes.score == 42
    assert not votes.voters
