"""Reading the mock instance as a user would, for assertions: the bot's replies to a status."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from mastodon_mock.testing import MockServer

BOT = "imagebot"


def bot_replies(server: MockServer, status_id: str) -> list[Any]:
    """The bot's statuses in the thread under ``status_id``, oldest first."""
    context = server.client("alice").status_context(status_id)
    return [s for s in context["descendants"] if s["account"]["acct"] == BOT]


async def wait_for_replies(
    server: MockServer, status_id: str, count: int = 1, timeout: float = 300.0
) -> list[Any]:
    """Wait until the bot has posted ``count`` statuses under ``status_id``; return them."""
    deadline = time.monotonic() + timeout
    while True:
        replies = await asyncio.to_thread(bot_replies, server, status_id)
        if len(replies) >= count:
            return replies
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(replies)} of {count} replies after {timeout:.0f} s")
        await asyncio.sleep(0.3)


def mastodon_section(
    server: MockServer, *, streaming: bool = True, nsfw: bool = False, poll_s: float = 0.5
) -> str:
    """The ``[mastodon]`` section for a bot on ``server``, with test-sized waits."""
    return f"""
[mastodon]
api_base_url = "{server.base_url}"
streaming = {str(streaming).lower()}
poll_interval_s = {poll_s}
nsfw_allowed = {str(nsfw).lower()}
retry_max_wait_s = 3
stream_stale_s = 5
"""
