"""Community workers first: requests go to the community's own workers, else to the whole horde."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.catalog import Catalog
from core.horde.client import HordeClient
from core.horde.poller import HordePoller, PollPolicy
from core.horde.ratelimit import HORDE_LIMITS, per_second
from core.messages import AckKind, ChannelRef, Invocation, ReplyTarget, UserRef
from core.model_reference import load_model_reference
from core.payload import BuildSettings
from core.planner import CatalogPlanner
from core.service import GenerationService, ServiceSettings
from core.store import SecretBox, Store
from core.store.ledger import StoreLedger
from core.throttle import ThrottleRules
from styles.library import load_library
from tests.core.horde.conftest import (  # noqa: F401 - fixtures
    RunningHorde,
    embedded_horde,
    make_embedded_horde,
)
from tests.support.horde_worker import check_in, finish_one, pop_input
from tests.support.paths import SHARED_MODEL_REFERENCE, SHARED_STYLES
from tests.support.recording_adapter import RecordingAdapter

MODEL = "stable_diffusion"
CLUB = "club-worker"
STRANGER = "stranger-worker"
FAST_LIMITS = {**HORDE_LIMITS, "check": (per_second(50),)}
FAST_POLL = PollPolicy(first_check_s=0.05, min_interval_s=0.05, max_interval_s=0.2)


@pytest.fixture(params=[3600.0])
async def rig(
    request: pytest.FixtureRequest,
    embedded_horde: RunningHorde,  # noqa: F811
    tmp_path: Path,
) -> AsyncIterator[tuple[GenerationService, RecordingAdapter, HordeClient, HordeClient]]:
    catalog = Catalog(
        library=load_library(str(SHARED_STYLES), tmp_path / "styles", 3600),
        reference=load_model_reference(str(SHARED_MODEL_REFERENCE), tmp_path / "models", 3600),
    )
    bot_key = embedded_horde.add_user("bot", 10_000)
    club_key = embedded_horde.add_user("club")
    stranger_key = embedded_horde.add_user("stranger")
    store = await Store.open(f"sqlite:///{tmp_path}/bot.db", secret_box=SecretBox.generate())
    async with (
        HordeClient(bot_key, base_url=embedded_horde.url, limits=FAST_LIMITS) as client,
        HordeClient(club_key, base_url=embedded_horde.url) as club,
        HordeClient(stranger_key, base_url=embedded_horde.url) as stranger,
        HordePoller(client, FAST_POLL) as poller,
    ):
        service = GenerationService(
            ledger=StoreLedger(store),
            horde=client,
            poller=poller,
            planner=CatalogPlanner(catalog, BuildSettings(default_model=MODEL)),
            settings=ServiceSettings(
                images_dir=tmp_path / "images",
                throttle=ThrottleRules(cooldown_seconds=0),
                community_workers=(CLUB,),
                community_fallback_s=request.param,
            ),
        )
        adapter = RecordingAdapter("console")
        service.attach(adapter)
        try:
            yield service, adapter, club, stranger
        finally:
            await service.stop()
            await store.close()


def _dream(number: int) -> Invocation:
    return Invocation(
        event_id=f"e{number}",
        user=UserRef("console", "ann"),
        channel=ChannelRef("console", "room"),
        target=ReplyTarget("console", {"line": number}),
        text=f"draw me a harbour at dusk --steps 4 --seed {number}",
    )


async def test_offline_community_falls_back_to_the_whole_horde(rig) -> None:  # type: ignore[no-untyped-def]
    service, adapter, _club, stranger = rig
    ack = await service.submit(_dream(1))
    assert ack.kind is AckKind.ACCEPTED
    job = await finish_one(stranger, STRANGER, [MODEL])
    assert job.id is not None
    reply = await adapter.next_reply(timeout=30)
    assert reply.error is None
    assert reply.images
    assert reply.metadata["worker"] == STRANGER


async def test_online_community_worker_gets_the_request_and_strangers_do_not(rig) -> None:  # type: ignore[no-untyped-def]
    service, adapter, club, stranger = rig
    await check_in(club, CLUB, [MODEL])
    ack = await service.submit(_dream(2))
    assert ack.kind is AckKind.ACCEPTED
    await asyncio.sleep(0.3)
    seen_by_stranger = await stranger.pop(pop_input(STRANGER, [MODEL]))
    assert seen_by_stranger.id is None
    await finish_one(club, CLUB, [MODEL])
    reply = await adapter.next_reply(timeout=30)
    assert reply.error is None
    assert reply.metadata["worker"] == CLUB


@pytest.mark.parametrize("rig", [0.0], indirect=True)
async def test_a_community_too_slow_past_the_threshold_hands_over_to_the_whole_horde(rig) -> None:  # type: ignore[no-untyped-def]
    service, adapter, club, stranger = rig
    await check_in(club, CLUB, [MODEL])
    ack = await service.submit(_dream(3))
    assert ack.kind is AckKind.ACCEPTED
    job = await finish_one(stranger, STRANGER, [MODEL])
    assert job.id is not None
    reply = await adapter.next_reply(timeout=30)
    assert reply.error is None
    assert reply.metadata["worker"] == STRANGER
