"""The whole bot (embedded horde, tiny-model worker) with the real praw against the Reddit fake."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from bots.deps import AdapterDeps
from bots.reddit import factory
from bots.stack import Stack
from core.contract import Adapter
from tests.bots.reddit.conftest import IMAGES
from tests.peers.reddit import RedditFake
from tests.support.bot_stack import bot_stack, fake_worker, write_bot_config

pytestmark = pytest.mark.slow


def section(fake: RedditFake) -> str:
    return f"""
[reddit]
username = "{fake.bot}"
subreddits = ["pics", "blocked"]
deny_subreddits = ["blocked"]
image_subreddit = "{IMAGES}"
oauth_url = "{fake.base_url}"
reddit_url = "{fake.base_url}"
poll_interval_s = 0.2
retry_first_s = 0.2
retry_max_s = 3
"""


def adapters(stack: Stack) -> list[Adapter]:
    built = factory.build(stack.config, AdapterDeps(stack.store, stack.catalog))
    assert built is not None
    return [built]


async def until(check: Callable[[], Any], timeout: float = 150.0) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (value := check()):
        if loop.time() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.1)
    return value


def pixels(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB").tobytes()


async def test_a_comment_is_answered_once_with_a_linked_image_post(
    reddit: RedditFake, tmp_path: Path, stack_tiny_model: str
) -> None:
    config = write_bot_config(tmp_path, tiny_model=stack_tiny_model, sections=section(reddit))
    async with bot_stack(config, adapters) as stack:
        # Named in a listened subreddit: seen in the stream and again as an inbox mention.
        asked = "u/hordebot draw me a lighthouse --steps 4 --size 64x64"
        comment = reddit.add_comment("pics", "alice", asked)
        denied = reddit.add_comment("blocked", "bob", "draw me a cat --steps 4 --size 64x64")
        # A mention from a subreddit the bot does not listen to arrives by the inbox only.
        boat = "hey u/hordebot draw me a boat --steps 4 --size 64x64"
        mention = reddit.add_comment("art", "carol", boat)
        await until(lambda: reddit.replies_to(comment) and reddit.replies_to(mention))
        await stack.service.wait_idle()
        await asyncio.sleep(1.0)  # a few more polls: nothing may be answered twice
    (answer,) = reddit.replies_to(comment)
    assert len(reddit.replies_to(mention)) == 1
    assert reddit.replies_to(denied) == []
    assert reddit.unread == set()
    posts = reddit.posts_in(IMAGES)
    assert len(posts) == 2
    post = next(p for p in posts if p["title"] == "a lighthouse")
    assert post["permalink"] in answer["body"]
    assert post["url"] in answer["body"]
    uploaded = reddit.uploaded[post["url"].removeprefix(reddit.media_url + "/")]
    generated = sorted((tmp_path / "var" / "images").glob("*.webp"))
    assert any(pixels(uploaded) == pixels(path.read_bytes()) for path in generated)


async def test_a_restart_in_the_middle_answers_exactly_once(
    reddit: RedditFake, tmp_path: Path, stack_tiny_model: str
) -> None:
    text = section(reddit)
    waiting = write_bot_config(tmp_path, tiny_model=stack_tiny_model, sections=text, worker=False)
    async with bot_stack(waiting, adapters, with_worker=False) as stack:
        comment = reddit.add_comment("pics", "alice", "draw me a lighthouse --steps 4 --size 64x64")
        await until(lambda: stack.service.in_flight_for("reddit:alice"))
    assert reddit.replies_to(comment) == []
    async with bot_stack(waiting, adapters, with_worker=False) as stack, fake_worker(stack):
        await until(lambda: reddit.replies_to(comment))
        await stack.service.wait_idle()
        await asyncio.sleep(1.0)
    assert len(reddit.replies_to(comment)) == 1
    assert len(reddit.posts_in(IMAGES)) == 1


async def test_a_5xx_and_a_429_on_the_reply_are_retried_into_one_reply(
    reddit: RedditFake, tmp_path: Path, stack_tiny_model: str
) -> None:
    config = write_bot_config(
        tmp_path, tiny_model=stack_tiny_model, sections=section(reddit), worker=False
    )
    reddit.fail("/api/comment", times=1, status=503)
    reddit.fail("/api/comment", times=1, status=500)
    reddit.fail("/api/comment", times=1, status=429, **{"Retry-After": "1"})
    async with bot_stack(config, adapters, with_worker=False) as stack, fake_worker(stack):
        comment = reddit.add_comment("pics", "alice", "draw me a lighthouse --steps 4 --size 64x64")
        await until(lambda: reddit.replies_to(comment))
        await stack.service.wait_idle()
    assert len(reddit.replies_to(comment)) == 1
    failed = [s for s in reddit.seen if s.path == "/api/comment" and s.status >= 429]
    assert [s.status for s in failed] == [503, 500, 429]
