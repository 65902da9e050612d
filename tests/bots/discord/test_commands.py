"""Slash commands beyond /dream: the style browser, the account commands, /cancel and progress.

One SimCord and one stack serve the module, as in test_interactions; the adapter here paces its
progress edits by SimCord's virtual clock, so the throttle is checked without waiting for it.
The service reports every poll (``progress_interval_seconds = 0``): the adapter alone throttles.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import simcord

from bots.deps import AdapterDeps
from bots.discord.adapter import DiscordAdapter
from bots.discord.client import DiscordBot
from bots.discord.render import MARKER
from bots.stack import Stack
from core.catalog import Catalog
from core.horde.client import HordeClient
from core.messages import Progress, ReplyTarget
from tests.bots.discord.harness import (
    CONFIG,
    FakeWorker,
    bot_posts,
    fake_worker,
    wait_for,
    with_images,
)
from tests.support.bot_stack import bot_stack, write_bot_config

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]
ORIGINAL = "/messages/@original"


@dataclass
class World:
    """One virtual Discord with the bot in it, and the stack behind the bot."""

    env: simcord.Env
    bot: DiscordBot
    guild: simcord.GuildHandle
    alice: simcord.MemberActor
    carol: simcord.MemberActor
    stack: Stack
    adapter: DiscordAdapter
    worker: FakeWorker
    db_file: Path

    def channel(self, name: str) -> simcord.ChannelHandle:
        return self.guild.create_text_channel(name)

    async def issue_key(self, name: str, kudos: float) -> str:
        assert self.stack.embedded is not None
        return await self.stack.embedded.issue_key(name, kudos=kudos)

    async def horde_user(self, key: str) -> tuple[str, float]:
        """The account's name and kudos, read from the embedded horde."""
        async with HordeClient(key, base_url=self.stack.horde_url) as client:
            found = await client.find_user()
        return found.username, found.kudos

    async def running(self, member: simcord.MemberActor) -> str:
        """The member's one generation in flight."""
        ids = self.stack.service.in_flight_for(f"discord:{member.id}")
        assert len(ids) == 1, ids
        return ids[0]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    folder = tmp_path_factory.mktemp("discord-commands")
    path = write_bot_config(folder, tiny_model=folder / "unused-model", worker=False)
    text = path.read_text(encoding="utf-8")
    assert "progress_interval_seconds = 3600" in text
    path.write_text(
        text.replace("progress_interval_seconds = 3600", "progress_interval_seconds = 0")
    )
    db_file = folder / "var" / "hordebot.db"
    bot = DiscordBot(CONFIG)
    # ``simcord.Env`` rather than ``simcord.run``: see test_interactions.world.
    env = simcord.Env(bot)
    await env.start()
    built: list[DiscordAdapter] = []

    def adapters(stack: Stack) -> list[DiscordAdapter]:
        deps = AdapterDeps(store=stack.store, catalog=Catalog.from_config(stack.config))
        clock = lambda: env.now().timestamp()  # noqa: E731
        built.append(DiscordAdapter(CONFIG, deps, client=bot, connect=False, clock=clock))
        return built

    try:
        guild = env.create_guild()
        alice = guild.add_member(env.create_user("alice"))
        carol = guild.add_member(env.create_user("carol"))
        async with (
            bot_stack(path, adapters, with_worker=False) as stack,
            fake_worker(stack) as worker,
        ):
            yield World(env, bot, guild, alice, carol, stack, built[0], worker, db_file)
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


def _lines(message: simcord.ResponseMessage) -> list[str]:
    return (message.embeds[0].description or "").splitlines()


def _footer(message: simcord.ResponseMessage) -> str:
    return message.embeds[0].footer.text or ""


def _text(res: simcord.InteractionResult) -> str:
    assert res.response is not None, res
    return res.response.content


# ---- /styles ------------------------------------------------------------------------------


async def test_styles_pages_forward_and_back_and_a_query_narrows(world: World) -> None:
    channel = world.channel("styles")
    res = await world.alice.slash(channel, "styles")
    assert not res.ephemeral
    first = res.response
    assert first is not None
    assert _footer(first).startswith("page 1/")
    pages = int(_footer(first).split("/")[1].split(" ")[0])
    assert pages >= 2, _footer(first)
    assert _labels(first) == ["Next ▶"]
    page_one = [line for line in _lines(first) if line.startswith(("📁", "🎨"))]
    assert len(page_one) == 25
    assert page_one[0].startswith("📁"), "categories come first"

    forward = await world.alice.click(first, label="Next ▶")
    assert forward.acknowledged
    second = res.response
    assert second is not None
    assert _footer(second).startswith("page 2/")
    page_two = [line for line in _lines(second) if line.startswith(("📁", "🎨"))]
    assert page_two
    assert not set(page_two) & set(page_one)
    assert "◀ Previous" in _labels(second)

    back = await world.alice.click(second, label="◀ Previous")
    assert back.acknowledged
    again = res.response
    assert again is not None
    assert _footer(again).startswith("page 1/")
    assert [line for line in _lines(again) if line.startswith(("📁", "🎨"))] == page_one

    narrowed = await world.alice.slash(channel, "styles", query="paint")
    found = narrowed.response
    assert found is not None
    assert "paint" in (found.embeds[0].title or "")
    named = [line for line in _lines(found) if line.startswith(("📁", "🎨"))]
    assert named, _lines(found)
    assert all("paint" in line.casefold() for line in named), named
    assert len(named) < len(page_one) * pages


# ---- accounts: /login, /kudos, /transfer, /logout ------------------------------------------


def _text_input_id(shown: simcord.InteractionResult) -> str:
    modal = shown.modal
    assert modal is not None, shown
    for row in modal["components"]:
        for part in row.get("components") or [row.get("component") or {}]:
            if part.get("type") == 4:
                return str(part["custom_id"])
    raise AssertionError(f"no text input in {modal}")


async def _login(
    world: World, member: simcord.MemberActor, key: str, channel: simcord.ChannelHandle
) -> simcord.InteractionResult:
    shown = await member.slash(channel, "login")
    assert shown.modal is not None, "/login must ask for the key in a modal"
    assert shown.response is None
    return await member.submit_modal(shown, {_text_input_id(shown): key})


async def test_login_takes_the_key_in_a_modal_answers_privately_and_seals_it(
    world: World,
) -> None:
    channel = world.channel("login")
    key = await world.issue_key("alice-horde", kudos=50)
    answered = await _login(world, world.alice, key, channel)
    assert answered.ephemeral
    text = _text(answered)
    assert text.startswith("logged in as alice-horde#"), text
    assert key not in text
    user = await world.stack.store.find_user("discord", str(world.alice.id))
    assert user is not None
    assert await world.stack.store.api_key(user.id) == key
    files = sorted(world.db_file.parent.glob(world.db_file.name + "*"))
    on_disk = b"".join(path.read_bytes() for path in files)
    assert on_disk.startswith(b"SQLite format 3")
    assert key.encode() not in on_disk
    assert bot_posts(channel, world.bot) == [], "nothing about the login shows in the channel"

    wrong = await _login(world, world.alice, "not-a-key-anyone-has", channel)
    assert wrong.ephemeral
    assert _text(wrong).startswith("that key is not valid"), _text(wrong)
    assert "\n" not in _text(wrong)
    assert "not-a-key-anyone-has" not in _text(wrong)
    assert await world.stack.store.api_key(user.id) == key, "a wrong key keeps the good one"
    await world.alice.slash(channel, "logout")


async def test_kudos_transfer_and_logout(world: World) -> None:
    channel = world.channel("accounts")
    asked = await world.carol.slash(channel, "kudos")
    assert asked.ephemeral
    assert "log in" in _text(asked)

    carol_key = await world.issue_key("carol-horde", kudos=300)
    await _login(world, world.carol, carol_key, channel)
    balance = await world.carol.slash(channel, "kudos")
    assert balance.ephemeral
    assert _text(balance).endswith(" has 300 kudos"), _text(balance)

    dave_key = await world.issue_key("dave-horde", kudos=7)
    dave_name, dave_before = await world.horde_user(dave_key)
    carol_name, carol_before = await world.horde_user(carol_key)
    sent = await world.carol.slash(channel, "transfer", user=dave_name, amount=42)
    assert sent.ephemeral
    assert _text(sent) == f"sent 42 kudos to {dave_name}"
    assert (await world.horde_user(carol_key))[1] == carol_before - 42
    assert (await world.horde_user(dave_key))[1] == dave_before + 42
    assert carol_name.startswith("carol-horde#")

    out = await world.carol.slash(channel, "logout")
    assert out.ephemeral
    assert _text(out).startswith("logged out")
    after = await world.carol.slash(channel, "kudos")
    assert "log in" in _text(after), _text(after)
    assert bot_posts(channel, world.bot) == [], "account answers are never public"


# ---- /cancel and progress ------------------------------------------------------------------


async def test_cancel_while_waiting_stops_the_request_for_good(world: World) -> None:
    channel = world.channel("cancel")
    res = await world.alice.slash(channel, "dream", prompt="a slow tortoise", steps=4)
    assert res.response is not None
    gen = await world.running(world.alice)

    async def submitted() -> bool:
        stored = await world.stack.store.generation(gen)
        return stored is not None and stored.horde_id is not None

    for _ in range(100):
        if await submitted():
            break
        await asyncio.sleep(0.05)
    cancelled = await world.alice.slash(channel, "cancel")
    assert cancelled.ephemeral
    assert "cancel" in _text(cancelled).casefold(), _text(cancelled)
    with pytest.raises(AssertionError, match="no job to pop"):
        await world.worker.finish(attempts=20)
    await wait_for(lambda: not world.stack.service.in_flight_for(f"discord:{world.alice.id}"), 5)
    await asyncio.sleep(0.5)
    assert with_images(res) is None
    assert not [m for m in bot_posts(channel, world.bot) if m.attachments]


def _progress_edits(world: World, gen: str) -> list[Any]:
    """The edits of an interaction response that carried this generation's progress embed."""
    found = []
    for entry in world.env.http_requests:
        if entry.method != "PATCH" or ORIGINAL not in entry.path:
            continue
        embeds = (entry.json or {}).get("embeds") or []
        footers = [(e.get("footer") or {}).get("text") for e in embeds]
        description = embeds[0].get("description", "") if embeds else ""
        is_progress = description.startswith(("waiting", "queued at", "drawing"))
        if MARKER + gen in footers and is_progress and "attachments" not in (entry.json or {}):
            found.append(entry)
    return found


async def test_progress_edits_the_response_at_most_once_per_interval(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    reports: list[Progress] = []
    show = world.adapter.show_progress

    async def counted(target: ReplyTarget, progress: Progress) -> None:
        reports.append(progress)
        await show(target, progress)

    # The service looks the method up on each report: counting what it offers the adapter
    # shows the throttle had something to drop.
    monkeypatch.setattr(world.adapter, "show_progress", counted)
    channel = world.channel("progress")
    res = await world.alice.slash(channel, "dream", prompt="a patient heron", steps=4)
    gen = await world.running(world.alice)
    await wait_for(lambda: _progress_edits(world, gen), timeout=5)
    assert res.response is not None
    shown = res.response.embeds[0].description or ""
    assert shown.startswith(("waiting for a worker", "queued at position")), shown
    assert _footer(res.response) == MARKER + gen

    # Less virtual time than the interval: what the service offers next must be dropped.
    await world.env.advance_time(CONFIG.progress_interval_seconds - 1)
    offered = len(reports)
    await wait_for(lambda: len(reports) > offered, timeout=3)
    assert len(_progress_edits(world, gen)) == 1
    await world.env.advance_time(1.5)
    await wait_for(lambda: len(_progress_edits(world, gen)) >= 2, timeout=3)
    assert len(_progress_edits(world, gen)) == 2
    await world.worker.finish()
    result = await wait_for(lambda: with_images(res), timeout=10)
    assert _footer(result) == MARKER + gen
