"""Acceptance: the bot stops while a request waits for a worker and a fresh one answers it once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import simcord

from bots.discord.client import DiscordBot
from bots.stack import Stack
from core.store.generations import Generation
from tests.bots.discord.harness import (
    CONFIG,
    bot_posts,
    discord_stack,
    fake_worker,
    generation_id,
    wait_for,
    with_images,
)
from tests.support.bot_stack import write_bot_config

pytestmark = pytest.mark.slow


async def _submitted(stack: Stack) -> Generation:
    """The one generation in flight, once the horde has it (so it waits there, not here)."""
    for _ in range(200):
        flying = await stack.store.in_flight()
        assert len(flying) == 1, flying
        if flying[0].horde_id is not None:
            return flying[0]
        await asyncio.sleep(0.05)
    raise AssertionError("the request never reached the horde")


async def test_restart_while_waiting_replies_exactly_once(tmp_path: Path) -> None:
    config = write_bot_config(tmp_path, tiny_model=tmp_path / "unused-model", worker=False)
    first = DiscordBot(CONFIG)
    async with simcord.run(first) as env:
        guild = env.create_guild()
        channel = guild.create_text_channel("art")
        alice = guild.add_member(env.create_user("alice"))
        async with discord_stack(config, first, with_worker=False) as (stack, _):
            res = await alice.slash(channel, "dream", prompt="a quiet harbour", steps=4)
            assert res.response is not None
            assert "queued" in (res.response.embeds[0].description or "")
            waiting = await _submitted(stack)

        # A new process: a fresh client and a fresh stack on the same folder and store.
        second = DiscordBot(CONFIG)
        await env.restart_bot(second)
        async with (
            discord_stack(config, second, with_worker=False) as (stack, _),
            fake_worker(stack, check_in=False) as worker,
        ):
            job = await worker.finish()
            assert job.payload is not None
            assert job.payload.prompt.startswith("a quiet harbour")
            done = await wait_for(lambda: with_images(res), timeout=20)
            await asyncio.sleep(1.0)
            assert generation_id(done) == waiting.id
            assert [m.id for m in bot_posts(channel, second)] == [done.id]
            assert res.followups == []
            assert await stack.store.in_flight() == []
