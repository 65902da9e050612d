"""Acceptance: a whole prompt challenge on Discord (SimCord) and Mastodon (mastodon-mock) at once.

One bot stack (embedded horde, store, inbox, service) with the real Discord adapter on a SimCord
client and the real Mastodon adapter against mastodon-mock. Everything users do is done on the
platforms: the admin creates the challenge with ``/challenge create`` on Discord, the
announcement goes to a Discord channel and a Mastodon status, alice enters with ``/dream
--challenge`` on Discord and bob with a ``draw me … --challenge`` mention on Mastodon, dave's
entry lacks the required word and is refused, votes are Discord reactions and Mastodon
favourites (each author also votes for themself, which must not count), winners log in with
``/login`` (the Discord modal, a Mastodon direct mention), prizes move between horde accounts,
and the results with the winning images are posted on both platforms.

The runner's clock is the test's: the test moves it and calls ``runner.advance``, which is what
the scheduler's jobs call. Two variants:

- ``straight``: the entries are drawn by the tiny-model worker process (real images);
- ``killed-during-payout``: the bot dies after closing, right after the horde moved the first
  prize but before the bot recorded it; a fresh SimCord client and a fresh stack on the same
  folder finish the payout, and each winner is paid exactly once. Entries are drawn by the fake
  worker (a one-colour WebP in milliseconds): this variant is about the restart, and the tiny
  model's start-up would double the suite's time.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import simcord
from mastodon_mock.testing import MockServer
from PIL import Image

from bots.challenges import running_challenges
from bots.console.adapter import ConsoleAdapter
from bots.console.config import ConsoleConfig
from bots.discord.client import DiscordBot
from core.challenges.runner import ChallengeRunner
from core.challenges.scheduler import JOBS_TABLE, run_job, sync_url
from core.store.challenges import Entry, Payout
from tests.bots.discord.harness import CONFIG as DISCORD_CONFIG
from tests.bots.discord.harness import is_image, wait_for, with_images
from tests.e2e.challenge_platforms import (
    BOT_TOKEN,
    Bot,
    Clock,
    bot_answers,
    bot_statuses,
    discord_bot_texts,
    discord_login,
    favourite,
    mastodon_section,
    mastodon_server,
    toot,
    two_platform_bot,
)
from tests.support.bot_stack import bot_stack, fake_worker, write_bot_config

pytestmark = pytest.mark.slow

PRIZES = (300, 100)
START_KUDOS = 1000
IMAGE_WAIT_S = 240.0


class Killed(Exception):
    """The bot process dying at a chosen point."""


@pytest.fixture
def mastodon(monkeypatch: pytest.MonkeyPatch) -> Iterator[MockServer]:
    """mastodon-mock with the bot, bob and carol; the bot's token where the factory reads it."""
    monkeypatch.setenv("HORDEBOT_MASTODON_TOKEN", BOT_TOKEN)
    with mastodon_server() as server:
        yield server


@pytest.mark.parametrize("killed", [False, True], ids=["straight", "killed-during-payout"])
async def test_challenge_on_discord_and_mastodon(
    tmp_path: Path, stack_tiny_model: str, mastodon: MockServer, killed: bool
) -> None:
    first = DiscordBot(DISCORD_CONFIG)
    async with simcord.run(first) as env:
        guild = env.create_guild()
        channel = guild.create_text_channel("challenges")
        admin, alice, erin, dave = (
            guild.add_member(env.create_user(name)) for name in ("admin", "alice", "erin", "dave")
        )
        config = write_bot_config(
            tmp_path,
            tiny_model=stack_tiny_model,
            worker=not killed,
            sections=f'[challenges]\nadmins = ["discord:{admin.id}"]\n'
            + mastodon_section(mastodon),
        )
        clock = Clock()
        async with two_platform_bot(config, first, clock, with_worker=not killed) as bot:
            embedded = bot.stack.embedded
            assert embedded is not None
            keys = {n: await embedded.issue_key(n, kudos=START_KUDOS) for n in ("alice", "bob")}

            # Winners link their horde accounts privately on their own platform.
            assert "logged in as alice" in await discord_login(alice, channel, keys["alice"])
            login = await toot(mastodon, "bob", f"@imagebot /login {keys['bob']}", "direct")
            (answer,) = await bot_answers(mastodon, "bob", login)
            assert "logged in as bob" in answer["content"]
            assert keys["bob"] not in answer["content"]

            refused = await dave.slash(channel, "challenge", action="create", theme="boats")
            assert refused.response is not None
            assert "only challenge admins" in refused.response.content

            created = await admin.slash(
                channel,
                "challenge",
                action="create",
                theme="lighthouses",
                words="lighthouse",
                prizes=" ".join(map(str, PRIZES)),
                entry_hours=2,
                voting_hours=1,
                venues=f"discord:{channel.id} mastodon:public",
            )
            assert created.response is not None
            assert "created" in created.response.content, created.response.content
            (challenge,) = await bot.runner.repo.listed(("open",))
            assert len(discord_bot_texts(channel, first, "Prompt challenge: lighthouses")) == 1
            assert len(await bot_statuses(mastodon, "Prompt challenge: lighthouses")) == 1

            no_word = await dave.slash(
                channel, "dream", prompt="a boat at sea", steps=4, challenge=True
            )
            assert no_word.response is not None
            assert "lighthouse" in no_word.response.content
            assert "\n" not in no_word.response.content.strip()

            entered = await alice.slash(
                channel,
                "dream",
                prompt="a lighthouse at dusk",
                steps=4,
                size="64x64",
                challenge=True,
            )
            bob_asks = await toot(
                mastodon,
                "bob",
                "@imagebot draw me a lighthouse in fog --steps 4 --size 64x64 --challenge",
            )
            async with _worker(bot, fake=killed):
                alice_entry = await wait_for(lambda: with_images(entered), timeout=IMAGE_WAIT_S)
                (bob_entry,) = await bot_answers(mastodon, "bob", bob_asks, timeout=IMAGE_WAIT_S)
            assert is_image(await alice_entry.attachments[0].read())
            (media,) = bob_entry["media_attachments"]
            assert await _decodes(media["url"])
            entries = await _posted_entries(bot.runner, challenge.id, 2)
            assert {e.message_id for e in entries} == {str(alice_entry.id), str(bob_entry["id"])}

            clock.now += timedelta(hours=2)
            assert await bot.runner.advance(challenge.id) == "voting"
            # alice: erin and admin react, alice's own reaction does not count: 2 votes.
            await erin.react(alice_entry, "⭐")
            await admin.react(alice_entry, "👍")
            await alice.react(alice_entry, "⭐")
            # bob: carol favourites, bob's own favourite does not count: 1 vote. Were it
            # counted, bob would tie with alice and the prizes would be split.
            await favourite(mastodon, "carol", bob_entry["id"])
            await favourite(mastodon, "bob", bob_entry["id"])

            before = await _balances(bot, keys)
            clock.now += timedelta(hours=1)
            if not killed:
                assert await bot.runner.advance(challenge.id) == "announced"
                after, payouts, entries = await _outcome(bot, challenge.id, keys)
            else:
                _die_after_first_transfer(bot.runner)
                with pytest.raises(Killed):
                    await bot.runner.advance(challenge.id)
                closed = await bot.runner.repo.get(challenge.id)
                assert closed is not None
                assert closed.state == "closed"
                # The horde moved one prize before the bot died: a second payment would show.
                mid = await _balances(bot, keys)
                moved = sorted(mid[n] - before[n] for n in keys)
                assert moved in ([0, PRIZES[0]], [0, PRIZES[1]]), moved

        client = first
        if killed:
            # A new process: a fresh client on the same virtual Discord, a fresh stack on the
            # same folder (store and horde database), mastodon-mock as it was.
            client = DiscordBot(DISCORD_CONFIG)
            await env.restart_bot(client)
            async with two_platform_bot(config, client, clock, with_worker=False) as bot:
                assert await bot.runner.advance(challenge.id) == "announced"
                after, payouts, entries = await _outcome(bot, challenge.id, keys)
        env.raise_errors()

        assert after["alice"] - before["alice"] == PRIZES[0]
        assert after["bob"] - before["bob"] == PRIZES[1]
        assert after["sponsor"] - before["sponsor"] == -sum(PRIZES)
        by_entry = {e.id: e for e in entries}
        assert [
            (by_entry[p.entry_id].platform, p.place, p.amount, p.state, by_entry[p.entry_id].votes)
            for p in sorted(payouts, key=_place)
        ] == [("discord", 1, PRIZES[0], "paid", 2), ("mastodon", 2, PRIZES[1], "paid", 1)]

        (on_discord,) = discord_bot_texts(channel, client, "Results of the prompt challenge")
        assert len(on_discord.attachments) == 2
        assert all([is_image(await a.read()) for a in on_discord.attachments])
        assert "#1 alice on discord (2 votes)" in on_discord.content
        (on_mastodon,) = await bot_statuses(mastodon, "Results of the prompt challenge")
        assert on_mastodon["visibility"] == "public"
        assert len(on_mastodon["media_attachments"]) == 2
        for attached in on_mastodon["media_attachments"]:
            assert await _decodes(attached["url"])


def _worker(bot: Bot, *, fake: bool) -> Any:
    """The fake worker for the killed variant; the tiny-model process already runs otherwise."""
    return fake_worker(bot.stack) if fake else contextlib.nullcontext()


def _place(payout: Payout) -> int:
    return payout.place


def _die_after_first_transfer(runner: ChallengeRunner) -> None:
    """The process dies the first time a prize would be recorded as paid: the horde has moved
    the kudos, the bot's store still says the prize is due."""
    repo = runner.repo
    real = repo.move_payout

    async def dying(payout: Payout, *args: Any, **changes: Any) -> bool:
        if "paid" in args:
            raise Killed
        return await real(payout, *args, **changes)

    repo.move_payout = dying  # type: ignore[method-assign]


async def _posted_entries(runner: ChallengeRunner, challenge_id: str, count: int) -> list[Any]:
    """The challenge's entries once ``count`` of them have their platform message recorded."""

    async def posted() -> list[Any]:
        entries = await runner.repo.entries(challenge_id)
        return entries if sum(1 for e in entries if e.message_id) >= count else []

    for _ in range(200):
        found = await posted()
        if found:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError("the entries' messages were not recorded")


async def _outcome(
    bot: Bot, challenge_id: str, keys: dict[str, str]
) -> tuple[dict[str, float], list[Payout], list[Entry]]:
    """Balances, payout rows and entries once the challenge is over."""
    repo = bot.runner.repo
    return (
        await _balances(bot, keys),
        await repo.payouts(challenge_id),
        await repo.entries(challenge_id),
    )


async def _balances(bot: Bot, keys: dict[str, str]) -> dict[str, float]:
    """Kudos on the embedded horde: each winner's and the sponsor's (the bot's account)."""
    client = bot.stack.client
    found = {n: (await client.with_key(k).find_user()).kudos for n, k in keys.items()}
    found["sponsor"] = (await client.find_user()).kudos
    return found


async def _decodes(url: str) -> bool:
    async with httpx.AsyncClient() as client:
        response = await client.get(url)
    response.raise_for_status()
    with Image.open(io.BytesIO(response.content)) as image:
        image.load()
        return image.width > 0


async def test_console_challenge_moves_by_the_scheduler_job(tmp_path: Path) -> None:
    """The path ``hordebot run`` takes: APScheduler stores a job per phase, and the job function
    (called here once the runner's clock has moved) advances the challenge; the console shows it."""
    config = write_bot_config(
        tmp_path,
        tiny_model=tmp_path / "unused-model",
        worker=False,
        sections='[challenges]\nadmins = ["console:console"]\nvenues = ["console:stdin"]\n',
    )
    # Real time as the start: the stored date jobs lie in the future and cannot fire by
    # themselves during the test.
    clock = Clock()
    clock.now = datetime.now(UTC)
    out = io.StringIO()
    # The line is typed once the runner is in place: read earlier, it would find no challenges.
    read_end, write_end = os.pipe()
    typed = open(read_end, encoding="utf-8")  # noqa: SIM115 - the console reads it until closed
    typing = open(write_end, "w", encoding="utf-8")  # noqa: SIM115 - closed once typed
    console = ConsoleAdapter(
        ConsoleConfig(out_dir=str(tmp_path / "out"), progress=False),
        stdin=typed,
        stdout=out,
        interactive=False,
    )
    async with (
        bot_stack(config, lambda _: [console], with_worker=False) as stack,
        running_challenges(stack, [console], clock=clock) as runner,
    ):
        assert runner is not None
        with typing:
            typing.write("/challenge create --theme owls --entry-hours 1 --voting-hours 1\n")
        await asyncio.wait_for(console.wait_closed(), 30)
        typed.close()
        (challenge,) = await runner.repo.listed(("open",))
        key = sync_url(stack.config.store.url)
        # The opening job was due at once and has run; the two phase times wait in the store
        # (written from the scheduler's thread, so give it a moment).
        waiting = {f"challenge:{challenge.id}:{p}" for p in ("entries", "voting")}
        for _ in range(100):
            if waiting <= _stored_jobs(tmp_path / "var" / "hordebot.db"):
                break
            await asyncio.sleep(0.05)
        assert waiting <= _stored_jobs(tmp_path / "var" / "hordebot.db")
        for hours, state in ((1, "voting"), (1, "announced")):
            clock.now += timedelta(hours=hours)
            await run_job(key, challenge.id)
            found = await runner.repo.get(challenge.id)
            assert found is not None
            assert found.state == state
    shown = out.getvalue()
    assert "Prompt challenge: owls" in shown
    assert "Entries for “owls” are closed (0 entries)" in shown
    assert "no entry got enough votes" in shown


def _stored_jobs(database: Path) -> set[str]:
    with contextlib.closing(sqlite3.connect(database)) as db:
        return {row[0] for row in db.execute(f"SELECT id FROM {JOBS_TABLE}")}  # noqa: S608
