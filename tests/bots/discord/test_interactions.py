"""Acceptance without the worker process: the real client under SimCord, the whole bot, and a
horde worker played over HTTP. One SimCord and one stack serve the module (state allows it:
each test asks in its own way and finishes its own jobs)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
import pytest_asyncio
import simcord

from bots.discord.adapter import DiscordAdapter
from bots.discord.client import DiscordBot
from bots.stack import Stack
from core.messages import OutImage, Reply, ReplyTarget
from tests.bots.discord.harness import (
    CONFIG,
    FakeWorker,
    age_restrict,
    bot_posts,
    discord_stack,
    fake_worker,
    generation_id,
    is_image,
    wait_for,
    with_images,
)
from tests.support.bot_stack import write_bot_config
from tests.support.horde_worker import tiny_webp

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]
TOKEN_LIFE_S = 15 * 60


@dataclass
class World:
    """One virtual Discord with the bot in it, and the stack behind the bot."""

    env: simcord.Env
    bot: DiscordBot
    guild: simcord.GuildHandle
    alice: simcord.MemberActor
    bob: simcord.MemberActor
    stack: Stack
    adapter: DiscordAdapter
    worker: FakeWorker

    def channel(self, name: str) -> simcord.ChannelHandle:
        return self.guild.create_text_channel(name)

    async def dream(
        self, channel: simcord.ChannelHandle, prompt: str, **options: object
    ) -> simcord.InteractionResult:
        """``/dream`` by alice, accepted (the queued embed shows)."""
        res = await self.alice.slash(channel, "dream", prompt=prompt, steps=4, **options)
        assert res.acknowledged, res
        assert res.response is not None, res
        assert "queued" in (res.response.embeds[0].description or ""), res.response.embeds
        return res

    async def result(
        self, channel: simcord.ChannelHandle, prompt: str, **options: object
    ) -> simcord.ResponseMessage:
        """``/dream`` by alice, finished by the fake worker: the result message."""
        res = await self.dream(channel, prompt, **options)
        await self.worker.finish()
        found: simcord.ResponseMessage = await wait_for(lambda: with_images(res), timeout=20)
        return found


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    folder = tmp_path_factory.mktemp("discord-world")
    config = write_bot_config(folder, tiny_model=folder / "unused-model", worker=False)
    bot = DiscordBot(CONFIG)
    # Not ``simcord.run``: its driver clock is a context variable, and a module fixture's
    # teardown runs in another context than its setup. The tests need only the bot's clock.
    env = simcord.Env(bot)
    await env.start()
    try:
        guild = env.create_guild()
        alice = guild.add_member(env.create_user("alice"))
        bob = guild.add_member(env.create_user("bob"))
        async with (
            discord_stack(config, bot, with_worker=False) as (stack, adapter),
            fake_worker(stack) as worker,
        ):
            yield World(env, bot, guild, alice, bob, stack, adapter, worker)
    finally:
        await env.shutdown()
    env.raise_errors()


@pytest.fixture(autouse=True)
def _bot_ran_cleanly(world: World) -> Iterator[None]:
    """Whatever the bot raised in a handler fails the test that caused it."""
    yield
    world.env.raise_errors()


def _labels(message: simcord.ResponseMessage) -> list[str]:
    return [c["label"] for row in message.components for c in row.get("components", [])]


# ---- autocomplete --------------------------------------------------------------------------


async def test_style_autocomplete_offers_categories_and_styles_filtered(world: World) -> None:
    channel = world.channel("auto-style")
    choices = await world.alice.autocomplete(channel, "dream", "style", "paint", prompt="x")
    labels = [c["name"] for c in choices]
    values = [c["value"] for c in choices]
    assert any(label.startswith("Category: painting") for label in labels), labels
    assert "Style: impressionist oil painting" in labels, labels
    assert "painting" in values
    assert all("paint" in value.casefold() for value in values), values
    assert not any("anime" in value for value in values)
    everything = await world.alice.autocomplete(channel, "dream", "style", "", prompt="x")
    assert len(everything) == 25


async def test_model_autocomplete_filters_the_reference(world: World) -> None:
    channel = world.channel("auto-model")
    choices = await world.alice.autocomplete(channel, "dream", "model", "stable_diff", prompt="x")
    values = [c["value"] for c in choices]
    assert values[0] == "stable_diffusion", values
    assert all("stable_diff" in v.casefold() for v in values), values
    nothing = await world.alice.autocomplete(channel, "dream", "model", "zzz-no-such", prompt="x")
    assert nothing == []


# ---- the result's buttons ------------------------------------------------------------------


async def test_reroll_button_posts_a_second_image_reply(world: World) -> None:
    channel = world.channel("reroll")
    first = await world.result(channel, "a red barn", seed="11")
    assert _labels(first) == ["Reroll", "Variations", "Delete", "Rate"]
    clicked = await world.alice.click(first, label="Reroll")
    assert clicked.acknowledged
    job = await world.worker.finish()
    assert job.payload is not None
    assert job.payload.prompt.startswith("a red barn")
    second = await wait_for(lambda: with_images(clicked), timeout=20)
    assert second.id != first.id
    assert generation_id(second) != generation_id(first)
    assert is_image(await second.attachments[0].read())
    assert len([m for m in bot_posts(channel, world.bot) if m.attachments]) == 2


async def test_variations_button_keeps_the_seed(world: World) -> None:
    channel = world.channel("variations")
    first = await world.result(channel, "a blue boat", seed="77")
    clicked = await world.alice.click(first, label="Variations")
    assert clicked.acknowledged
    varied = await world.stack.store.last_generation(
        (await world.stack.store.generation(generation_id(first))).user_id  # type: ignore[union-attr]
    )
    assert varied is not None
    assert varied.id != generation_id(first)
    assert varied.payload["params"]["seed"] == "77"
    assert varied.payload["params"]["seed_variation"] == 1
    await world.worker.finish()
    result = await wait_for(lambda: with_images(clicked), timeout=20)
    assert len(result.attachments) == varied.payload["params"]["n"]
    assert generation_id(result) == varied.id


async def test_delete_by_the_requester_deletes_the_result(world: World) -> None:
    channel = world.channel("delete-own")
    result = await world.result(channel, "a green hill")
    clicked = await world.alice.click(result, label="Delete")
    assert clicked.acknowledged
    assert result.id not in [m.id for m in channel.history()]


async def test_delete_by_another_member_is_refused_privately(world: World) -> None:
    channel = world.channel("delete-other")
    result = await world.result(channel, "a yellow kite")
    clicked = await world.bob.click(result, label="Delete")
    assert clicked.ephemeral
    assert clicked.response is not None
    assert "only the person who asked" in clicked.response.content
    assert result.id in [m.id for m in channel.history()]
    rerolled = await world.bob.click(result, label="Reroll")
    assert rerolled.ephemeral
    assert rerolled.response is not None
    assert "only the person who asked can reroll" in rerolled.response.content


async def test_rate_answers_with_a_private_thanks(world: World) -> None:
    channel = world.channel("rate")
    result = await world.result(channel, "a purple cat")
    clicked = await world.bob.click(result, label="Rate")
    assert clicked.ephemeral
    assert clicked.response is not None
    assert "thanks" in clicked.response.content
    assert [m.id for m in bot_posts(channel, world.bot)] == [result.id]


# ---- NSFW only in age-restricted channels -------------------------------------------------


async def test_nsfw_asked_in_a_normal_channel_is_sent_safe(world: World) -> None:
    channel = world.channel("general")
    res = await world.dream(channel, "a beach", nsfw=True)
    assert res.response is not None
    assert "nsfw" in (res.response.embeds[0].description or "").casefold()
    job = await world.worker.finish(censored=True)
    assert job.payload is not None
    assert job.payload.use_nsfw_censor is True
    result = await wait_for(lambda: with_images(res), timeout=20)
    stored = await world.stack.store.generation(generation_id(result))
    assert stored is not None
    assert stored.payload["nsfw"] is False
    assert stored.payload["censor_nsfw"] is True
    assert "censored" in (result.embeds[0].description or "")


async def test_nsfw_asked_in_an_age_restricted_channel_is_sent_as_asked(world: World) -> None:
    channel = world.channel("after-dark")
    age_restrict(world.bot, channel)
    res = await world.dream(channel, "a beach", nsfw=True)
    job = await world.worker.finish()
    assert job.payload is not None
    assert job.payload.use_nsfw_censor is False
    result = await wait_for(lambda: with_images(res), timeout=20)
    stored = await world.stack.store.generation(generation_id(result))
    assert stored is not None
    assert stored.payload["nsfw"] is True
    assert stored.payload["censor_nsfw"] is False
    assert "censored" not in (result.embeds[0].description or "")


# ---- delivery: a dead token, platform errors -----------------------------------------------


async def test_result_slower_than_the_token_life_goes_to_the_channel_once(world: World) -> None:
    channel = world.channel("slow")
    res = await world.dream(channel, "a slow snail")
    await world.env.advance_time(TOKEN_LIFE_S + 60)
    await world.worker.finish()

    def delivered() -> list[object]:
        return [m for m in bot_posts(channel, world.bot) if m.attachments]

    posts = await wait_for(delivered, timeout=20)
    await _quiet(1.0)
    assert len(delivered()) == 1
    message = posts[0]
    assert world.alice.mention in message.content
    assert is_image(await message.attachments[0].read())
    assert res.response is not None
    assert res.response.id != message.id
    assert not res.response.attachments


async def test_a_second_send_after_a_crash_posts_nothing_new(world: World) -> None:
    """Posted, then the process died before recording it: the service sends again."""
    channel = world.channel("resend")
    await world.dream(channel, "a paper crane")
    await world.env.advance_time(TOKEN_LIFE_S + 60)
    await world.worker.finish()
    posts = await wait_for(lambda: [m for m in bot_posts(channel, world.bot) if m.attachments])
    stored = await world.stack.store.generation(generation_id(posts[0]))
    assert stored is not None
    again = Reply(stored.id, text="again", images=(OutImage(tiny_webp()),))
    sent = await world.adapter.send(ReplyTarget.from_json(stored.reply_target), again)
    assert sent == str(posts[0].id)
    assert len([m for m in bot_posts(channel, world.bot) if m.attachments]) == 1


async def test_500_and_429_on_the_result_edit_are_retried_into_one_reply(world: World) -> None:
    channel = world.channel("flaky")
    res = await world.dream(channel, "a stormy sea")
    route = "/webhooks/*/*/messages/@original"
    world.env.inject_error("PATCH", route, status=500)
    world.env.inject_error("PATCH", route, status=429, message="You are being rate limited.")
    before = _count(world, "PATCH", "/messages/@original")
    await world.worker.finish()
    result = await wait_for(lambda: with_images(res), timeout=20)
    await _quiet(1.0)
    assert _count(world, "PATCH", "/messages/@original") - before == 3
    assert [m.id for m in bot_posts(channel, world.bot)] == [result.id]
    assert res.followups == []


async def test_500_and_429_on_a_mention_reply_are_retried_into_one_reply(world: World) -> None:
    channel = world.channel("flaky-mention")
    me = world.bot.user
    assert me is not None
    asked = await world.alice.send(channel, f"{me.mention} draw me a windmill --steps 4")
    world.env.inject_error("POST", f"/channels/{channel.id}/messages", status=500)
    world.env.inject_error("POST", f"/channels/{channel.id}/messages", status=429)
    before = _count(world, "POST", f"/channels/{channel.id}/messages")
    await world.worker.finish()

    def replies() -> list[object]:
        return [m for m in bot_posts(channel, world.bot) if m.attachments]

    found = await wait_for(replies, timeout=20)
    await _quiet(1.0)
    assert len(replies()) == 1
    assert found[0].reference is not None
    assert found[0].reference.message_id == asked.id
    assert _count(world, "POST", f"/channels/{channel.id}/messages") - before == 3


# ---- ChallengeVenue ------------------------------------------------------------------------


async def test_challenge_announce_and_votes_count_unique_reactors_but_the_bot(
    world: World,
) -> None:
    channel = world.channel("challenge")
    image = OutImage(tiny_webp(), alt_text="the example")
    message_id = await world.adapter.announce(str(channel.id), "draw a castle!", (image,))
    posted = channel.last_message
    assert posted is not None
    assert str(posted.id) == message_id
    assert posted.content == "draw a castle!"
    assert is_image(await posted.attachments[0].read())
    await world.alice.react(posted, "⭐")
    await world.alice.react(posted, "👍")
    await world.bob.react(posted, "👍")
    await posted.add_reaction("⭐")
    stars = next(r for r in (channel.last_message or posted).reactions if str(r.emoji) == "⭐")
    assert stars.count == 2, "the bot's own star must be there for the test to mean anything"
    target = ReplyTarget(platform="discord", data={"channel_id": str(channel.id)})
    votes = await world.adapter.votes(target, message_id)
    assert votes.voters == frozenset({str(world.alice.id), str(world.bob.id)})


def _count(world: World, method: str, path_part: str) -> int:
    return sum(1 for e in world.env.http_requests if e.method == method and path_part in e.path)


async def _quiet(seconds: float) -> None:
    """Give a wrong second post the chance to appear before counting."""
    await asyncio.sleep(seconds)
