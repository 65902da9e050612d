"""Two real platforms around one bot for the challenge acceptance: the Discord adapter on a
SimCord client and the Mastodon adapter (from its factory) on mastodon-mock, both attached to one
whole-bot stack with the challenge runner on the test's clock.

Also the users' side of each platform: logging in privately, entering, voting, and reading what
the bot posted.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import simcord
from mastodon_mock.config import SeedAccount, SeedConfig
from mastodon_mock.testing import MockServer

from bots.challenges import running_challenges
from bots.deps import AdapterDeps
from bots.discord.adapter import DiscordAdapter
from bots.discord.client import DiscordBot
from bots.mastodon.adapter import MastodonAdapter
from bots.mastodon.factory import build as build_mastodon
from bots.stack import Stack
from core.challenges.runner import ChallengeRunner
from core.contract import Adapter
from tests.bots.discord.harness import CONFIG as DISCORD_CONFIG
from tests.support.bot_stack import bot_stack

BOT_TOKEN = "imagebot_token"
BOT_ACCT = "imagebot"
MASTODON_USERS = ("bob", "carol")
SEED = SeedConfig(
    accounts=[
        SeedAccount(username=BOT_ACCT, display_name="Image Bot", bot=True, access_token=BOT_TOKEN),
        *(
            SeedAccount(username=name, display_name=name.title(), access_token=f"{name}_token")
            for name in MASTODON_USERS
        ),
    ]
)


class Clock:
    """The challenge runner's time: moved by the test, never by the wall clock."""

    def __init__(self) -> None:
        self.now = datetime(2025, 6, 2, 18, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@contextlib.contextmanager
def mastodon_server() -> Iterator[MockServer]:
    """A fresh mastodon-mock with the bot, bob and carol."""
    with MockServer(seed=SEED) as server:
        yield server


def mastodon_section(server: MockServer) -> str:
    """``[mastodon]`` for the bot on ``server``: streaming, with quick polling as a fallback."""
    return f"""
[mastodon]
api_base_url = "{server.base_url}"
poll_interval_s = 0.5
retry_max_wait_s = 3
stream_stale_s = 5
"""


@dataclass
class Bot:
    """One running bot: the stack, both adapters and the challenge runner."""

    stack: Stack
    runner: ChallengeRunner
    discord: DiscordAdapter
    mastodon: MastodonAdapter


@contextlib.asynccontextmanager
async def two_platform_bot(
    config_path: Path, client: DiscordBot, clock: Clock, *, with_worker: bool
) -> AsyncIterator[Bot]:
    """The bot on both platforms; ``client`` is already run by SimCord.

    The Discord adapter is bound to the SimCord client as in the Discord tests (its factory would
    log in to discord.com); the Mastodon one comes from its factory, as ``hordebot run`` builds
    it. No APScheduler: the test moves ``clock`` and calls ``runner.advance``, which is what the
    scheduler's jobs call.
    """
    built: list[Adapter] = []

    def adapters(stack: Stack) -> list[Adapter]:
        deps = AdapterDeps(store=stack.store, catalog=stack.catalog)
        mastodon = build_mastodon(stack.config, deps)
        assert mastodon is not None, "the config has no [mastodon] section"
        built.extend([DiscordAdapter(DISCORD_CONFIG, deps, client=client, connect=False), mastodon])
        return built

    async with (
        bot_stack(config_path, adapters, with_worker=with_worker) as stack,
        running_challenges(stack, built, clock=clock, schedule=False) as runner,
    ):
        assert runner is not None, "the config has no [challenges] section"
        discord, mastodon = built
        assert isinstance(discord, DiscordAdapter)
        assert isinstance(mastodon, MastodonAdapter)
        yield Bot(stack, runner, discord, mastodon)


# ---- Discord, as its users see it ----------------------------------------------------------


async def discord_login(
    member: simcord.MemberActor, channel: simcord.ChannelHandle, key: str
) -> str:
    """``/login`` on Discord: the key goes into the private modal; returns the bot's answer."""
    shown = await member.slash(channel, "login")
    assert shown.modal is not None, "/login did not open its modal"
    (field,) = _text_inputs(shown.modal)
    done = await member.submit_modal(shown, {field: key})
    assert done.ephemeral, "the login answer must be seen by the user alone"
    assert done.response is not None
    return str(done.response.content)


def _text_inputs(node: Any) -> list[str]:
    """The custom ids of a modal payload's text inputs (Discord component type 4)."""
    if isinstance(node, dict):
        found = [str(node["custom_id"])] if node.get("type") == 4 else []
        return found + [cid for value in node.values() for cid in _text_inputs(value)]
    if isinstance(node, list):
        return [cid for item in node for cid in _text_inputs(item)]
    return []


def discord_bot_texts(channel: simcord.ChannelHandle, client: DiscordBot, start: str) -> list[Any]:
    """The bot's channel messages whose text starts with ``start``, oldest first."""
    me = client.user
    assert me is not None
    return [m for m in channel.history() if m.author.id == me.id and m.content.startswith(start)]


# ---- Mastodon, as its users see it ---------------------------------------------------------


async def toot(server: MockServer, user: str, text: str, visibility: str = "public") -> str:
    """``user`` posts a status; its id."""
    status = await asyncio.to_thread(server.client(user).status_post, text, visibility=visibility)
    return str(status["id"])


async def bot_answers(
    server: MockServer, user: str, status_id: str, *, timeout: float = 60.0
) -> list[Any]:
    """The bot's statuses under ``user``'s status, once there is one (as ``user`` sees them)."""
    deadline = time.monotonic() + timeout
    while True:
        context = await asyncio.to_thread(server.client(user).status_context, status_id)
        found = [s for s in context["descendants"] if s["account"]["acct"] == BOT_ACCT]
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"no answer under {user}'s status {status_id} in {timeout:.0f} s")
        await asyncio.sleep(0.2)


async def bot_statuses(server: MockServer, start: str) -> list[Any]:
    """The bot's own top-level statuses whose text starts with ``start``, newest first."""
    reader = server.client("carol")
    bot_id = (await asyncio.to_thread(server.client(BOT_ACCT).me))["id"]
    statuses = await asyncio.to_thread(reader.account_statuses, bot_id, limit=40)
    return [
        s
        for s in statuses
        if s["in_reply_to_id"] is None and _plain(s["content"]).startswith(start)
    ]


async def favourite(server: MockServer, user: str, status_id: str) -> None:
    """``user`` favourites a status (a vote)."""
    await asyncio.to_thread(server.client(user).status_favourite, status_id)


def _plain(html: str) -> str:
    from bots.mastodon.status_text import status_text

    return status_text(html)
