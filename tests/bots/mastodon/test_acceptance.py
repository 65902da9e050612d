"""The whole bot (embedded horde, tiny-model worker, core) against mastodon-mock over HTTP."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from mastodon_mock.testing import MockServer
from PIL import Image

from bots.deps import AdapterDeps
from bots.mastodon.adapter import MastodonAdapter
from bots.mastodon.factory import build
from bots.stack import Stack
from tests.bots.mastodon.peer import bot_replies, mastodon_section, wait_for_replies
from tests.support.bot_stack import bot_stack, fake_worker, write_bot_config

pytestmark = pytest.mark.slow

PROMPT = "a red fox in the snow"


@asynccontextmanager
async def running_bot(
    folder: Path,
    tiny_model: str,
    server: MockServer,
    *,
    worker: bool = True,
    fake: bool = False,
    **section: Any,
) -> AsyncIterator[tuple[Stack, MastodonAdapter]]:
    """The stack with the Mastodon adapter built by its factory, as ``hordebot run`` would.

    ``fake``: the fake worker answers instead of the tiny model, for tests about Mastodon's side.
    """
    worker = worker and not fake
    path = write_bot_config(
        folder, tiny_model=tiny_model, sections=mastodon_section(server, **section), worker=worker
    )
    built: list[MastodonAdapter] = []

    def adapters(stack: Stack) -> list[MastodonAdapter]:
        adapter = build(stack.config, AdapterDeps(stack.store, stack.catalog))
        assert adapter is not None
        built.append(adapter)
        return built

    async with bot_stack(path, adapters, with_worker=worker) as stack:
        if not fake:
            yield stack, built[0]
            return
        async with fake_worker(stack):
            yield stack, built[0]


async def until(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


async def mention(server: MockServer, text: str, visibility: str = "public") -> str:
    status = await asyncio.to_thread(
        server.client("alice").status_post, text, visibility=visibility
    )
    return str(status["id"])


async def decoded(url: str) -> Image.Image:
    async with httpx.AsyncClient() as client:
        response = await client.get(url)
    response.raise_for_status()
    image = Image.open(io.BytesIO(response.content))
    image.load()
    return image


async def settled(stack: Stack) -> None:
    """Every generation delivered; a second reply, if any, would be posted by now."""
    await asyncio.wait_for(stack.service.wait_idle(), 30)
    await asyncio.sleep(1.0)


def fault(server: MockServer, path_regex: str, **effect: Any) -> None:
    """Break the next matching POST once (``effect`` as mastodon-mock's fault API takes it)."""
    server.fault(path_regex=path_regex, methods=["POST"], count=1, **effect)


DRAW = f"@imagebot draw me {PROMPT} --steps 4 --size 64x64"


async def test_streamed_mentions_get_images_keep_visibility_and_public_is_downgraded(
    tmp_path: Path, stack_tiny_model: str, mastodon_peer: MockServer
) -> None:
    # Polling is slowed to minutes, so only the stream can bring these mentions in time.
    async with running_bot(tmp_path, stack_tiny_model, mastodon_peer, poll_s=600) as (
        stack,
        adapter,
    ):
        await until(lambda: adapter.stream_healthy)
        first = await mention(mastodon_peer, DRAW)
        [reply] = await wait_for_replies(mastodon_peer, first)
        direct = await mention(mastodon_peer, DRAW, visibility="direct")
        second = await mention(mastodon_peer, DRAW)
        [direct_reply] = await wait_for_replies(mastodon_peer, direct)
        [second_reply] = await wait_for_replies(mastodon_peer, second)
        await settled(stack)
        counts = [len(bot_replies(mastodon_peer, s)) for s in (first, direct, second)]
    assert counts == [1, 1, 1]
    assert str(reply["in_reply_to_id"]) == first
    assert reply["visibility"] == "public"
    assert "@alice" in reply["content"]
    [media] = reply["media_attachments"]
    assert media["type"] == "image"
    assert PROMPT in media["description"]
    image = await decoded(media["url"])
    assert image.width > 0
    assert image.height > 0
    assert direct_reply["visibility"] == "direct"
    # A public post went out minutes ago: the next public answer stays off the timelines.
    assert second_reply["visibility"] == "unlisted"


async def test_polled_mention_survives_503_and_429_on_media_and_status_posts(
    tmp_path: Path, stack_tiny_model: str, mastodon_peer: MockServer
) -> None:
    async with running_bot(
        tmp_path, stack_tiny_model, mastodon_peer, fake=True, streaming=False
    ) as (
        stack,
        adapter,
    ):
        # Posted first: the faults below would break alice's own post otherwise.
        status_id = await mention(mastodon_peer, DRAW, visibility="unlisted")
        fault(mastodon_peer, r"^/api/v[12]/media$", type="status", status=503)
        fault(mastodon_peer, r"^/api/v1/statuses$", type="status", status=503)
        reset = str(int(time.time()) + 2)
        fault(
            mastodon_peer,
            r"^/api/v1/statuses$",
            type="ratelimit",
            headers={"X-RateLimit-Reset": reset, "Retry-After": "2"},
        )
        [reply] = await wait_for_replies(mastodon_peer, status_id)
        await settled(stack)
        assert len(bot_replies(mastodon_peer, status_id)) == 1
        assert not adapter.stream_healthy
    assert reply["visibility"] == "unlisted"
    assert len(reply["media_attachments"]) == 1
    assert mastodon_peer_faults_spent(mastodon_peer)


def mastodon_peer_faults_spent(server: MockServer) -> bool:
    response = httpx.get(f"{server.base_url}/api/v1/_mock/faults")
    response.raise_for_status()
    return response.json() == [] or all(r.get("remaining") == 0 for r in response.json())


async def test_restart_and_downtime_each_mention_is_answered_exactly_once(
    tmp_path: Path, stack_tiny_model: str, mastodon_peer: MockServer
) -> None:
    # No worker: the request is stored and waits; then the bot stops.
    async with running_bot(tmp_path, stack_tiny_model, mastodon_peer, worker=False) as (
        stack,
        _,
    ):
        before = await mention(mastodon_peer, DRAW)
        await until(
            lambda: bool(stack.service.in_flight_for(f"mastodon:{alice_id(mastodon_peer)}"))
        )
    while_down = await mention(mastodon_peer, "@imagebot draw me a blue fox --steps 4")
    async with running_bot(tmp_path, stack_tiny_model, mastodon_peer, fake=True) as (stack, _):
        await wait_for_replies(mastodon_peer, before)
        await wait_for_replies(mastodon_peer, while_down)
        await settled(stack)
        counts = [len(bot_replies(mastodon_peer, s)) for s in (before, while_down)]
    assert counts == [1, 1]


def alice_id(server: MockServer) -> str:
    return str(server.client("alice").me()["id"])


async def test_five_images_take_two_threaded_statuses(
    tmp_path: Path, stack_tiny_model: str, mastodon_peer: MockServer
) -> None:
    async with running_bot(tmp_path, stack_tiny_model, mastodon_peer, fake=True) as (stack, _):
        status_id = await mention(mastodon_peer, f"{DRAW} --n 5")
        replies = await wait_for_replies(mastodon_peer, status_id, count=2)
        await settled(stack)
        assert len(bot_replies(mastodon_peer, status_id)) == 2
    first, follow_up = replies
    assert [len(r["media_attachments"]) for r in replies] == [4, 1]
    assert str(follow_up["in_reply_to_id"]) == str(first["id"])
    assert not first["sensitive"]
    assert not first["spoiler_text"]


async def test_bad_command_and_public_login_get_one_line_answers(
    tmp_path: Path, stack_tiny_model: str, mastodon_peer: MockServer
) -> None:
    async with running_bot(tmp_path, stack_tiny_model, mastodon_peer, worker=False):
        bad = await mention(mastodon_peer, "@imagebot /paint a fox")
        login = await mention(mastodon_peer, "@imagebot /login SECRETKEY98765")
        [bad_reply] = await wait_for_replies(mastodon_peer, bad, timeout=60)
        [login_reply] = await wait_for_replies(mastodon_peer, login, timeout=60)
        await asyncio.sleep(1.5)
        counts = [len(bot_replies(mastodon_peer, s)) for s in (bad, login)]
    assert counts == [1, 1]
    assert "unknown command /paint" in bad_reply["content"]
    assert "<br" not in bad_reply["content"]
    assert not bad_reply["media_attachments"]
    assert "direct message" in login_reply["content"]
    assert "SECRETKEY98765" not in login_reply["content"]


async def test_nsfw_where_allowed_is_sensitive_behind_a_content_warning(
    tmp_path: Path, stack_tiny_model: str, mastodon_peer: MockServer
) -> None:
    async with running_bot(tmp_path, stack_tiny_model, mastodon_peer, fake=True, nsfw=True) as (
        stack,
        _,
    ):
        status_id = await mention(mastodon_peer, f"{DRAW} --nsfw")
        [reply] = await wait_for_replies(mastodon_peer, status_id)
        await settled(stack)
    assert reply["sensitive"]
    assert reply["spoiler_text"]
    assert len(reply["media_attachments"]) == 1
