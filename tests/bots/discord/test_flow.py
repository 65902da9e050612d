"""Acceptance with real images: the real client under SimCord, the whole bot and the tiny-model
worker process. The worker takes most of a minute to start on a small machine, so both tests
share one stack."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
import simcord

from bots.discord.client import DiscordBot
from tests.bots.discord.harness import (
    CONFIG,
    bot_posts,
    discord_stack,
    is_image,
    wait_for,
    with_images,
)
from tests.support.bot_stack import write_bot_config

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]


@dataclass
class World:
    env: simcord.Env
    bot: DiscordBot
    guild: simcord.GuildHandle
    alice: simcord.MemberActor


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(
    tmp_path_factory: pytest.TempPathFactory, stack_tiny_model: str
) -> AsyncIterator[World]:
    config: Path = write_bot_config(
        tmp_path_factory.mktemp("discord-flow"), tiny_model=stack_tiny_model
    )
    bot = DiscordBot(CONFIG)
    # ``simcord.Env`` rather than ``simcord.run``: see test_interactions.world.
    env = simcord.Env(bot)
    await env.start()
    try:
        guild = env.create_guild()
        alice = guild.add_member(env.create_user("alice"))
        async with discord_stack(config, bot):
            yield World(env, bot, guild, alice)
    finally:
        await env.shutdown()
    env.raise_errors()


@pytest.fixture(autouse=True)
def _bot_ran_cleanly(world: World) -> Iterator[None]:
    yield
    world.env.raise_errors()


async def test_dream_replies_with_images_embed_and_buttons(world: World) -> None:
    channel = world.guild.create_text_channel("art")
    res = await world.alice.slash(channel, "dream", prompt="a lighthouse", steps=4, size="64x64")
    assert res.acknowledged
    done = await wait_for(lambda: with_images(res))
    assert is_image(await done.attachments[0].read())
    embed = done.embeds[0]
    assert embed.title == "a lighthouse"
    assert "seed" in (embed.description or "")
    labels = [c["label"] for row in done.components for c in row.get("components", [])]
    assert labels == ["Reroll", "Variations", "Delete", "Rate"]


async def test_mention_replies_to_the_message_with_the_image(world: World) -> None:
    channel = world.guild.create_text_channel("mentions")
    me = world.bot.user
    assert me is not None
    asked = await world.alice.send(channel, f"{me.mention} draw me a red fox --steps 4")

    def replies() -> list[object]:
        return [m for m in bot_posts(channel, world.bot) if m.attachments]

    found = await wait_for(replies)
    reply = found[0]
    assert reply.reference is not None
    assert reply.reference.message_id == asked.id
    assert world.alice.mention in reply.content
    assert is_image(await reply.attachments[0].read())
    assert "a red fox" in (reply.embeds[0].title or "")
    assert len(replies()) == 1
