"""Acceptance: a whole prompt challenge on two platforms with the real bot stack.

Embedded horde, tiny-model worker, store, inbox and service are real; the two platforms are
in-test venues named ``discord`` and ``mastodon`` (the real adapters were not ready when this
was written). The clock is the test's: it moves, then the test calls ``advance``, the same code
the scheduler's jobs call. One variant restarts the whole bot between closing and payout.
"""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image

from bots.challenges import running_challenges
from core.horde.server.embedded import EmbeddedHorde
from core.horde.server.settings import HordeSettings
from core.messages import AckKind, ChannelRef, Invocation, ReplyTarget, UserRef
from tests.core.challenges.venues import VenueAdapter
from tests.support.bot_stack import bot_stack, write_bot_config

CHALLENGES = """
[challenges]
admins = ["discord:admin"]
venues = ["discord:chan", "mastodon:public"]
prizes = [300, 100]
"""


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2025, 6, 2, 18, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def _inv(
    platform: str, user: str, event: str, command: str, text: str, *, dm: bool = False
) -> Invocation:
    return Invocation(
        event_id=event,
        user=UserRef(platform, user, user.title()),
        channel=ChannelRef(platform, "chan", is_dm=dm),
        target=ReplyTarget(platform, {"channel_id": "chan"}),
        command=command,
        text=text,
    )


async def _wait_posted(runner: object, challenge_id: str, count: int) -> None:
    from core.challenges.runner import ChallengeRunner

    assert isinstance(runner, ChallengeRunner)
    for _ in range(200):
        entries = await runner.repo.entries(challenge_id)
        if sum(1 for e in entries if e.message_id) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("entries were not recorded as posted")


@pytest.mark.slow
@pytest.mark.parametrize("restart", [False, True], ids=["straight", "restart-before-payout"])
async def test_challenge_across_two_platforms(
    tmp_path: Path, stack_tiny_model: str, restart: bool
) -> None:
    config = write_bot_config(tmp_path, tiny_model=stack_tiny_model, sections=CHALLENGES)
    async with EmbeddedHorde(
        HordeSettings(db_url=f"sqlite:///{tmp_path}/var/horde.db"), host="127.0.0.1", port=0
    ) as horde:
        keys = {n: await horde.issue_key(n, kudos=1000) for n in ("alice", "bob")}
    discord, mastodon = VenueAdapter("discord"), VenueAdapter("mastodon")
    clock = Clock()

    async with (
        bot_stack(config, lambda _: [discord, mastodon]) as stack,
        running_challenges(stack, [discord, mastodon], clock=clock, schedule=False) as runner,
    ):
        assert runner is not None
        refused = await stack.inbox.submit(
            _inv("discord", "bob", "c0", "challenge", "create --theme lighthouses")
        )
        assert refused.kind is AckKind.REJECTED
        created = await stack.inbox.submit(
            _inv(
                "discord",
                "admin",
                "c1",
                "challenge",
                "create --theme lighthouses --words lighthouse --entry-hours 2 --voting-hours 1",
            )
        )
        assert created.kind is AckKind.ANSWERED, created.message
        (challenge,) = await runner.repo.listed(("open",))
        assert [p[0] for p in discord.posts] == ["chan"]
        assert [p[0] for p in mastodon.posts] == ["public"]

        for platform, user in (("discord", "alice"), ("mastodon", "bob")):
            login = await stack.inbox.submit(
                _inv(platform, user, f"l-{user}", "login", keys[user], dm=True)
            )
            assert login.kind is AckKind.ANSWERED, login.message
        missing = await stack.inbox.submit(
            _inv("discord", "dave", "d-dave", "dream", "a boat --steps 4 --challenge")
        )
        assert missing.kind is AckKind.REJECTED
        assert "lighthouse" in missing.message
        for platform, user in (("discord", "alice"), ("mastodon", "bob")):
            ack = await stack.inbox.submit(
                _inv(platform, user, f"d-{user}", "dream", "a lighthouse --steps 4 --challenge")
            )
            assert ack.kind is AckKind.ACCEPTED, ack.message
        for venue in (discord, mastodon):
            reply = await venue.next_reply(timeout=150)
            assert reply.error is None
            assert Image.open(io.BytesIO(reply.images[0].data)).size[0] > 0
        await _wait_posted(runner, challenge.id, 2)

        clock.now += timedelta(hours=2)
        assert await runner.advance(challenge.id) == "voting"
        # bob's own favourite is ignored: alice's entry has 2 votes, bob's 1.
        discord.votes_on["discord-message-1"] = {"x", "y"}
        mastodon.votes_on["mastodon-message-1"] = {"bob", "carol"}
        before = {n: (await stack.client.with_key(k).find_user()).kudos for n, k in keys.items()}
        clock.now += timedelta(hours=1)
        if restart:
            voting = await runner.repo.get(challenge.id)
            assert voting is not None
            assert await runner._close(voting)
        else:
            assert await runner.advance(challenge.id) == "announced"

    if restart:
        async with (
            bot_stack(config, lambda _: [discord, mastodon]) as stack,
            running_challenges(stack, [discord, mastodon], clock=clock, schedule=False) as runner,
        ):
            assert runner is not None
            assert await runner.advance(challenge.id) == "announced"

    async with (
        bot_stack(config, lambda _: [discord, mastodon], with_worker=False) as stack,
        running_challenges(stack, [discord, mastodon], clock=clock, schedule=False),
    ):
        after = {n: (await stack.client.with_key(k).find_user()).kudos for n, k in keys.items()}
        results = await stack.inbox.submit(
            _inv("mastodon", "bob", "r1", "challenge", f"results {challenge.id[:8]}")
        )
        board = await stack.inbox.submit(_inv("mastodon", "bob", "r2", "challenge", "leaderboard"))
    assert after["alice"] - before["alice"] == 300
    assert after["bob"] - before["bob"] == 100
    assert results.kind is AckKind.ANSWERED
    assert "#1 Alice on discord (2 votes)" in results.message
    assert board.message.splitlines()[1].startswith("1. Alice (discord): 300 kudos")
    for venue in (discord, mastodon):
        posted = [(t, imgs) for _, t, imgs in venue.posts if t.startswith("Results")]
        assert len(posted) == 1
        assert len(posted[0][1]) == 2
