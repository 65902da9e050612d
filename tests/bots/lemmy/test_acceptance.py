"""The whole bot (embedded horde, tiny-model worker) behind the Lemmy adapter, against the fake
instance: replies with real images, restarts, platform faults, token expiry, NSFW spoilers.

The first test is served by the tiny-model worker; the others are about Lemmy's side and use the
fake worker, which answers in milliseconds instead of many seconds on a busy CPU."""

from __future__ import annotations

import asyncio
import io
import re
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from PIL import Image

from bots.deps import AdapterDeps
from bots.lemmy import factory
from bots.lemmy.adapter import LemmyAdapter
from bots.stack import Stack
from tests.bots.lemmy.conftest import BOT
from tests.peers.lemmy import FakeComment, FakeLemmy
from tests.support.bot_stack import bot_stack, fake_worker, write_bot_config

pytestmark = pytest.mark.slow
_IMAGE = re.compile(r"!\[[^\]]*\]\((\S+?)\)")


def config_for(
    folder: Path, fake: FakeLemmy, tiny_model: str, *, worker: bool = True, extra: str = ""
) -> Path:
    section = f"""
[lemmy]
instance_url = "{fake.base_url}"
username = "{BOT}"
poll_interval_s = 0.2
{extra}
"""
    return write_bot_config(folder, tiny_model=tiny_model, sections=section, worker=worker)


def adapters(stack: Stack) -> list[LemmyAdapter]:
    built = factory.build(stack.config, AdapterDeps(stack.store, stack.catalog))
    assert built is not None
    return [built]


async def wait_for(check: Callable[[], bool], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.1)


async def one_reply(fake: FakeLemmy, parent: int) -> FakeComment:
    await wait_for(lambda: bool(fake.comments_by(BOT, parent_id=parent)))
    await asyncio.sleep(1.0)  # room for a wrong second reply to show up
    replies = fake.comments_by(BOT, parent_id=parent)
    assert len(replies) == 1, [r.content for r in replies]
    return replies[0]


async def assert_real_images(fake: FakeLemmy, content: str) -> list[str]:
    urls = _IMAGE.findall(content)
    assert urls
    async with httpx.AsyncClient() as http:
        for url in urls:
            answer = await http.get(url)
            assert answer.status_code == 200
            with Image.open(io.BytesIO(answer.content)) as image:
                assert image.size[0] >= 64
    return urls


async def test_a_mention_gets_one_reply_with_the_generated_images(
    lemmy: FakeLemmy, tmp_path: Path, stack_tiny_model: str
) -> None:
    post = lemmy.add_post("alice", "art")
    path = config_for(tmp_path, lemmy, stack_tiny_model)
    async with bot_stack(path, adapters):
        asked = lemmy.comment(
            "alice", post.id, "@hordebot draw me a lighthouse --steps 4 --size 64x64"
        )
        reply = await one_reply(lemmy, asked)
        await assert_real_images(lemmy, reply.content)
        assert "lighthouse" in reply.content
        assert "::: spoiler" not in reply.content
        await wait_for(lambda: lemmy.unread_mentions(BOT) == 0, 5)
        # A reply to the bot's comment, without a mention, is a command too.
        again = lemmy.comment(
            "alice", post.id, "draw me a castle --steps 4 --size 64x64", parent_id=reply.id
        )
        second = await one_reply(lemmy, again)
        await assert_real_images(lemmy, second.content)
        await wait_for(lambda: lemmy.unread_replies(BOT) == 0, 5)


async def test_results_are_crossposted_to_the_gallery(
    lemmy: FakeLemmy, tmp_path: Path, stack_tiny_model: str
) -> None:
    post = lemmy.add_post("alice", "art")
    path = config_for(
        tmp_path, lemmy, stack_tiny_model, extra='gallery_community = "gallery"', worker=False
    )
    async with bot_stack(path, adapters, with_worker=False) as stack, fake_worker(stack):
        asked = lemmy.comment(
            "alice", post.id, "@hordebot draw me a lighthouse --steps 4 --size 64x64"
        )
        reply = await one_reply(lemmy, asked)
    (shown,) = lemmy.posts_in("gallery")
    assert "lighthouse" in shown.name
    assert shown.body is not None
    await assert_real_images(lemmy, shown.body)
    assert f"/post/{shown.id}" in reply.content


async def test_a_restart_in_the_middle_gives_exactly_one_reply(
    lemmy: FakeLemmy, tmp_path: Path, stack_tiny_model: str
) -> None:
    post = lemmy.add_post("alice", "art")
    asked = lemmy.comment("alice", post.id, "@hordebot draw me a lighthouse --steps 4 --size 64x64")
    # First run: no worker, so the request is accepted and waits; marking read fails, so the
    # mention is read again after the restart and must be a duplicate.
    lemmy.fail_next("/api/v3/user/mention/mark_as_read", "500", count=1000)
    first = config_for(tmp_path, lemmy, stack_tiny_model, worker=False)
    async with bot_stack(first, adapters, with_worker=False):
        await wait_for(lambda: lemmy.count("POST", "/api/v3/user/mention/mark_as_read") >= 1, 20)
    assert lemmy.comments_by(BOT) == []
    lemmy.fail_next("/api/v3/user/mention/mark_as_read", "500", count=0)
    lemmy._faults.clear()
    second = config_for(tmp_path, lemmy, stack_tiny_model, worker=False)
    async with bot_stack(second, adapters, with_worker=False) as stack, fake_worker(stack):
        reply = await one_reply(lemmy, asked)
        await assert_real_images(lemmy, reply.content)
        await wait_for(lambda: lemmy.unread_mentions(BOT) == 0, 5)
        await asyncio.sleep(1.0)
    assert len(lemmy.comments_by(BOT)) == 1


async def test_faults_on_posting_and_uploading_are_retried_into_one_reply(
    lemmy: FakeLemmy, tmp_path: Path, stack_tiny_model: str
) -> None:
    post = lemmy.add_post("alice", "art")
    path = config_for(tmp_path, lemmy, stack_tiny_model, worker=False)
    for where in ("/api/v3/comment", "/pictrs/image"):
        lemmy.fail_next(where, "500")
        lemmy.fail_next(where, "429")
    async with bot_stack(path, adapters, with_worker=False) as stack, fake_worker(stack):
        asked = lemmy.comment(
            "alice", post.id, "@hordebot draw me a lighthouse --steps 4 --size 64x64"
        )
        reply = await one_reply(lemmy, asked)
        await assert_real_images(lemmy, reply.content)
    assert lemmy.count("POST", "/api/v3/comment") == 3
    assert lemmy.count("POST", "/pictrs/image") >= 3


async def test_an_expired_token_is_renewed_by_logging_in_again(
    lemmy: FakeLemmy, tmp_path: Path, stack_tiny_model: str
) -> None:
    post = lemmy.add_post("alice", "art")
    path = config_for(tmp_path, lemmy, stack_tiny_model, worker=False)
    async with bot_stack(path, adapters, with_worker=False) as stack, fake_worker(stack):
        logins = lemmy.count("POST", "/api/v3/user/login")
        lemmy.expire_tokens()
        lemmy.fail_next("/api/v3/comment", "401")
        asked = lemmy.comment(
            "alice", post.id, "@hordebot draw me a lighthouse --steps 4 --size 64x64"
        )
        reply = await one_reply(lemmy, asked)
        await assert_real_images(lemmy, reply.content)
    assert lemmy.count("POST", "/api/v3/user/login") >= logins + 2


async def test_nsfw_images_are_spoilered_only_in_nsfw_communities(
    lemmy: FakeLemmy, tmp_path: Path, stack_tiny_model: str
) -> None:
    sfw = lemmy.add_post("alice", "art")
    nsfw = lemmy.add_post("alice", "nsfwart")
    path = config_for(
        tmp_path, lemmy, stack_tiny_model, extra='nsfw_communities = ["nsfwart"]', worker=False
    )
    async with bot_stack(path, adapters, with_worker=False) as stack, fake_worker(stack):
        there = lemmy.comment(
            "alice", nsfw.id, "@hordebot draw me a lighthouse --nsfw --steps 4 --size 64x64"
        )
        here = lemmy.comment(
            "alice", sfw.id, "@hordebot draw me a lighthouse --nsfw --steps 4 --size 64x64"
        )
        spoilered = await one_reply(lemmy, there)
        plain = await one_reply(lemmy, here)
    assert "::: spoiler NSFW" in spoilered.content
    await assert_real_images(lemmy, spoilered.content)
    assert "::: spoiler" not in plain.content
