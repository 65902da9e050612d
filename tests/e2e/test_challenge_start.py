"""Challenges at start: the inbox knows them before the platforms connect, and nothing due is
announced until they have."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bots.challenges import running_challenges
from core.messages import AckKind, ChannelRef, Invocation, ReplyTarget, UserRef
from tests.core.challenges.venues import VenueAdapter
from tests.support.bot_stack import bot_stack, write_bot_config

CHALLENGES = '[challenges]\nadmins = ["discord:admin"]\nvenues = ["discord:chan"]\n'


async def test_commands_work_at_once_and_announcements_wait_for_the_platforms(
    tmp_path: Path,
) -> None:
    config = write_bot_config(
        tmp_path, tiny_model=tmp_path / "unused", worker=False, sections=CHALLENGES
    )
    now = datetime.now(UTC)
    venue = VenueAdapter("discord")
    async with (
        bot_stack(config, lambda _: [venue], with_worker=False) as stack,
        running_challenges(stack, [venue], schedule=False) as runner,
    ):
        assert runner is not None
        created = await runner.create(
            theme="owls", created_by="discord:admin", opens_at=now + timedelta(seconds=1)
        )
        assert created is not None
    assert venue.posts == []
    await asyncio.sleep(1.2)  # the bot is down when the challenge opens

    later = VenueAdapter("discord")
    connected = asyncio.Event()
    async with (
        bot_stack(config, lambda _: [later], with_worker=False) as stack,
        running_challenges(stack, [later], ready=connected) as runner,
    ):
        listing = await stack.inbox.submit(
            Invocation(
                event_id="list-1",
                user=UserRef("discord", "ann"),
                channel=ChannelRef("discord", "chan"),
                target=ReplyTarget("discord", {"channel_id": "chan"}),
                command="challenge",
                text="list",
            )
        )
        assert listing.kind is AckKind.ANSWERED, listing
        assert "owls" in listing.message
        await asyncio.sleep(0.3)
        assert later.posts == [], "nothing is announced before the platforms are connected"
        connected.set()
        for _ in range(100):
            if later.posts:
                break
            await asyncio.sleep(0.05)
        assert len(later.posts) == 1
        assert "owls" in later.posts[0][1]
