"""Wiring prompt challenges into a running bot: runner, scheduler, inbox and delivery hooks.

``running_challenges(stack, adapters)`` is entered after the adapters are attached and started
(``hordebot run`` and the whole-stack tests). Adapters that implement
``core.contract.ChallengeVenue`` (``announce`` and ``votes``) become the challenge venues.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import cast

from bots.stack import Stack
from core.challenges.config import parse_challenges_config
from core.challenges.runner import ChallengeRunner, Clock
from core.challenges.scheduler import ChallengeScheduler
from core.contract import Adapter, ChallengeVenue


def venues_of(adapters: Sequence[Adapter]) -> dict[str, ChallengeVenue]:
    """The adapters that can host challenges, by platform name."""
    return {
        adapter.name: cast(ChallengeVenue, adapter)
        for adapter in adapters
        if callable(getattr(adapter, "announce", None))
        and callable(getattr(adapter, "votes", None))
    }


@contextlib.asynccontextmanager
async def running_challenges(
    stack: Stack,
    adapters: Sequence[Adapter],
    *,
    clock: Clock | None = None,
    schedule: bool = True,
    ready: asyncio.Event | None = None,
) -> AsyncIterator[ChallengeRunner | None]:
    """The runner (None when ``[challenges]`` is absent or disabled), scheduled until exit.

    ``schedule=False`` leaves the APScheduler out: a test drives ``advance`` on its own clock.
    ``ready``: the inbox and delivery hooks are in place at once (so a command that arrives while
    the adapters start is an entry, not a refusal), but nothing is scheduled or caught up, and so
    nothing announced, until the event is set: the adapters are connected then.
    """
    raw = stack.config.raw_section("challenges")
    config = parse_challenges_config(raw, str(stack.config.path or "<defaults>"))
    if not raw or not config.enabled:
        yield None
        return
    extra = {} if clock is None else {"clock": clock}
    runner = ChallengeRunner(
        store=stack.store,
        horde=stack.client,
        venues=venues_of(adapters),
        config=config,
        **extra,
    )
    stack.service.on_delivered(runner.on_delivered)
    stack.inbox.use_challenges(runner)
    scheduler = ChallengeScheduler(runner, stack.config.store.url) if schedule else None

    async def begin() -> None:
        if ready is not None:
            await ready.wait()
        if scheduler is not None:
            await scheduler.start()
        else:
            await runner.catch_up()

    beginning = asyncio.create_task(begin(), name="challenges-start")
    try:
        if ready is None:
            await beginning
        yield runner
    finally:
        beginning.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beginning
        if scheduler is not None:
            await scheduler.stop()
        stack.inbox.use_challenges(None)
