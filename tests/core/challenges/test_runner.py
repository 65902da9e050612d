"""A challenge through every phase on a controllable clock, with the embedded horde paying out.

The store and the embedded horde are real (SQLite files, HTTP on 127.0.0.1); the platforms are
in-test venues. A second runner on the same store stands for a restart.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.challenges.config import ChallengesConfig
from core.challenges.rules import Rules
from core.challenges.runner import ChallengeRunner
from core.errors import UserError
from core.horde.client import HordeClient
from core.horde.server.embedded import EmbeddedHorde
from core.horde.server.settings import HordeSettings
from core.messages import ChannelRef, Invocation, ReplyTarget, UserRef
from core.request import RequestSpec
from core.store import SecretBox, Store
from core.store.challenges import Venue
from tests.core.challenges.venues import VenueAdapter

START = datetime(2025, 6, 2, 18, 0, tzinfo=UTC)


class Clock:
    """Time that moves only when the test says."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


@dataclass
class World:
    store: Store
    horde: EmbeddedHorde
    bot: HordeClient
    keys: dict[str, str]
    clock: Clock
    discord: VenueAdapter
    mastodon: VenueAdapter

    def runner(self, **config: object) -> ChallengeRunner:
        return ChallengeRunner(
            store=self.store,
            horde=self.bot,
            venues={"discord": self.discord, "mastodon": self.mastodon},
            config=ChallengesConfig.model_validate(
                {"venues": ["discord:123", "mastodon:public"], **config}
            ),
            clock=self.clock,
        )

    async def kudos(self, name: str) -> float:
        return (await self.bot.with_key(self.keys[name]).find_user()).kudos


@contextlib.asynccontextmanager
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with EmbeddedHorde(
        HordeSettings(db_url=f"sqlite:///{tmp_path}/horde.db"), host="127.0.0.1", port=0
    ) as horde:
        keys = {name: await horde.issue_key(name) for name in ("alice", "bob", "carol")}
        bot_key = await horde.issue_key("bot", kudos=10_000)
        keys["bot"] = bot_key
        store = await Store.open(f"sqlite:///{tmp_path}/bot.db", secret_box=SecretBox(b"k" * 32))
        bot = HordeClient(bot_key, base_url=horde.url)
        try:
            yield World(
                store, horde, bot, keys, Clock(), VenueAdapter("discord"), VenueAdapter("mastodon")
            )
        finally:
            await bot.aclose()
            await store.close()


def _invocation(platform: str, user: str, event: str) -> Invocation:
    return Invocation(
        event_id=event,
        user=UserRef(platform, user, user.title()),
        channel=ChannelRef(platform, "123"),
        target=ReplyTarget(platform, {"channel_id": "123"}),
        text="x",
    )


async def _enter(runner: ChallengeRunner, platform: str, user: str, prompt: str) -> str:
    invocation = _invocation(platform, user, f"ev-{user}")
    challenge = await runner.entry_for(invocation, RequestSpec(prompt=prompt), asked=True)
    assert challenge is not None
    generation_id = f"gen-{platform}-{user}"
    await runner.record_entry(challenge, invocation, generation_id, prompt)
    message_id = f"msg-{generation_id}"
    await runner.repo.set_entry_posted(generation_id, message_id, None)
    return message_id


async def _link(w: World, platform: str, user: str, name: str) -> None:
    found = await w.store.identify(platform, user)
    await w.store.set_api_key(found.id, w.keys[name])


async def test_whole_challenge_pays_winners_once_across_a_restart(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        runner = w.runner(prizes=[300, 100], claim_days=7)
        created = await runner.create(
            theme="lighthouses",
            created_by="console:admin",
            rules=Rules(words=("lighthouse",)),
            entry_hours=2,
            voting_hours=1,
        )
        assert created is not None
        assert await runner.advance(created.id) == "open"
        assert len(w.discord.posts) == 1
        assert len(w.mastodon.posts) == 1
        assert "lighthouses" in w.discord.posts[0][1]

        await _link(w, "discord", "alice", "alice")
        await _link(w, "mastodon", "bob", "bob")
        alice_msg = await _enter(runner, "discord", "alice", "a lighthouse at night")
        bob_msg = await _enter(runner, "mastodon", "bob", "lighthouse, watercolour")
        carol_msg = await _enter(runner, "discord", "carol", "tiny lighthouse")
        with pytest.raises(UserError, match="“lighthouse”"):
            await runner.entry_for(
                _invocation("discord", "dave", "ev-d"), RequestSpec(prompt="a boat"), asked=True
            )
        with pytest.raises(UserError, match="already"):
            await runner.entry_for(
                _invocation("discord", "alice", "ev-a2"),
                RequestSpec(prompt="lighthouse again"),
                asked=True,
            )

        w.clock.now += timedelta(hours=2)
        assert await runner.advance(created.id) == "voting"
        # alice's own vote is ignored; bob's entry has two other voters, alice's one, carol's none.
        w.mastodon.votes_on[bob_msg] = {"bob", "x", "y"}
        w.discord.votes_on[alice_msg] = {"alice", "z"}
        w.discord.votes_on[carol_msg] = set()

        before = {name: await w.kudos(name) for name in ("alice", "bob", "bot")}
        w.clock.now += timedelta(hours=1)
        # A restart between close and payout: the first runner only closes.
        closed = await runner.repo.get(created.id)
        assert closed is not None
        assert await runner._close(closed)
        restarted = w.runner(prizes=[300, 100], claim_days=7)
        assert await restarted.advance(created.id) == "announced"
        assert await restarted.advance(created.id) == "announced"
        assert await w.runner().catch_up() == 0

        after = {name: await w.kudos(name) for name in ("alice", "bob", "bot")}
        assert after["bob"] - before["bob"] == 300
        assert after["alice"] - before["alice"] == 100
        assert before["bot"] - after["bot"] == 400
        payouts = await restarted.repo.payouts(created.id)
        assert [(p.platform_user_id, p.place, p.state) for p in payouts] == [
            ("bob", 1, "paid"),
            ("alice", 2, "paid"),
        ]
        results = [text for _, text, _ in w.discord.posts if text.startswith("Results")]
        assert len(results) == 1
        assert "#1 Bob on mastodon (2 votes)" in results[0]
        assert len([t for _, t, _ in w.mastodon.posts if t.startswith("Results")]) == 1


async def test_unlinked_winner_claims_the_prize_at_login_once(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        runner = w.runner(prizes=[250], venues=["discord:123"])
        created = await runner.create(theme="cats", created_by="console:admin")
        assert created is not None
        await runner.advance(created.id)
        carol_msg = await _enter(runner, "discord", "carol", "a cat")
        w.discord.votes_on[carol_msg] = {"someone"}
        w.clock.now += timedelta(days=5)
        assert await runner.advance(created.id) == "announced"
        assert [p.state for p in await runner.repo.payouts(created.id)] == ["unclaimed"]
        assert "claim it with /login" in w.discord.posts[-1][1]

        before = await w.kudos("carol")
        await _link(w, "discord", "carol", "carol")
        assert await runner.claim("discord", "carol") == 250
        assert await runner.claim("discord", "carol") == 0
        assert await w.kudos("carol") - before == 250


async def test_expired_prize_is_not_paid(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        runner = w.runner(prizes=[250], venues=["discord:123"], claim_days=1)
        created = await runner.create(theme="dogs", created_by="console:admin")
        assert created is not None
        await runner.advance(created.id)
        msg = await _enter(runner, "discord", "carol", "a dog")
        w.discord.votes_on[msg] = {"someone"}
        w.clock.now += timedelta(days=5)
        await runner.advance(created.id)
        w.clock.now += timedelta(days=2)
        await _link(w, "discord", "carol", "carol")
        assert await runner.claim("discord", "carol") == 0
        assert [p.state for p in await runner.repo.payouts(created.id)] == ["expired"]


async def test_cancel_stops_a_challenge_and_recurring_is_made_once(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        recurring = [{"name": "weekly", "cron": "0 18 * * mon", "themes": ["a", "b"]}]
        runner = w.runner(recurring=recurring)
        made = await runner.ensure_recurring()
        assert len(made) == 1
        assert made[0].opens_at == START + timedelta(days=7)
        assert await w.runner(recurring=recurring).ensure_recurring() == []
        cancelled = await runner.cancel(made[0].id)
        assert cancelled.state == "cancelled"
        w.clock.now += timedelta(days=8)
        assert await runner.advance(made[0].id) == "cancelled"
        assert w.discord.posts == []
        with pytest.raises(UserError, match="cannot be cancelled"):
            await runner.cancel(made[0].id)
        assert Venue("discord", "123") in made[0].venues
