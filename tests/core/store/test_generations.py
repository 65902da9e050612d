"""Generations: stored before submission, moved by compare-and-set, resumed after a restart."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.store import GenerationState, NewGeneration, SecretBox, Store
from tests.core.store.conftest import Backend

BODY: dict[str, Any] = {"prompt": "a lighthouse at dusk", "params": {"n": 1, "steps": 20}}


async def _accept(store: Store, event_id: str = "ev-1", count: int = 1) -> list[str]:
    user = await store.identify("discord", "u1", "Ann")
    accepted = await store.accept(
        "discord",
        event_id,
        [
            NewGeneration(
                user_id=user.id,
                platform_user_id="u1",
                channel_id="chan-9",
                reply_target={"platform": "discord", "data": {"channel_id": "chan-9"}},
                spec={"text": "a lighthouse at dusk", "style": "cinematic"},
                payload=BODY,
            )
            for _ in range(count)
        ],
    )
    assert accepted is not None
    return [g.id for g in accepted]


async def test_accepted_generation_is_stored_with_what_was_asked(store: Store) -> None:
    [gen_id] = await _accept(store)
    stored = await store.generation(gen_id)
    assert stored is not None
    assert stored.state is GenerationState.ACCEPTED
    assert (stored.platform, stored.event_id, stored.channel_id) == ("discord", "ev-1", "chan-9")
    assert stored.payload == BODY
    assert stored.spec["style"] == "cinematic"
    assert stored.reply_target == {"platform": "discord", "data": {"channel_id": "chan-9"}}
    assert stored.attempts == 0
    assert stored.created_at.tzinfo is not None


async def test_a_duplicate_event_stores_nothing_more(store: Store) -> None:
    await _accept(store, "ev-dup", count=2)
    user = await store.identify("discord", "u1")
    again = await store.accept("discord", "ev-dup", [NewGeneration(user.id, "u1", {}, {}, BODY)])
    assert again is None
    assert len(await store.in_flight()) == 2


async def test_one_event_keeps_its_generations_in_order(store: Store) -> None:
    ids = await _accept(store, count=3)
    positions = [(await store.generation(i)).position for i in ids]  # type: ignore[union-attr]
    assert positions == [0, 1, 2]
    assert [g.id for g in await store.in_flight()] == ids


async def test_lifecycle_moves_only_from_the_expected_state(store: Store) -> None:
    [gen_id] = await _accept(store)
    assert await store.mark_done(gen_id, {"images": []}) is False  # not submitted yet
    assert await store.mark_delivered(gen_id, "m0") is False  # nothing to deliver yet
    assert await store.mark_submitted(gen_id, "horde-1") is True
    assert await store.mark_submitted(gen_id, "horde-2") is False
    result = {"images": [{"path": "a.webp", "seed": "7", "worker": "w", "censored": False}]}
    assert await store.mark_done(gen_id, result, kudos=12.5) is True
    assert await store.mark_cancelled(gen_id) is False  # too late to cancel
    assert await store.mark_delivered(gen_id, "msg-1") is True
    assert await store.mark_delivered(gen_id, "msg-2") is False
    assert await store.mark_failed(gen_id, "late") is False
    stored = await store.generation(gen_id)
    assert stored is not None
    assert stored.state is GenerationState.DELIVERED
    assert (stored.horde_id, stored.kudos, stored.result) == ("horde-1", 12.5, result)
    assert stored.delivered_message_id == "msg-1"
    assert stored.attempts == 1
    assert stored.submitted_at is not None
    assert stored.finished_at is not None
    assert stored.delivered_at is not None


async def test_racing_deliverers_cannot_both_send(store: Store) -> None:
    [gen_id] = await _accept(store)
    await store.mark_submitted(gen_id, "h")
    await store.mark_done(gen_id, {"images": []})
    won = await asyncio.gather(*(store.mark_delivered(gen_id, f"m{i}") for i in range(10)))
    assert won.count(True) == 1
    stored = await store.generation(gen_id)
    assert stored is not None
    assert stored.delivered_message_id == f"m{won.index(True)}"


async def test_failed_generation_owes_its_error_until_delivered(store: Store) -> None:
    [gen_id] = await _accept(store)
    assert await store.mark_failed(gen_id, "no worker could finish this request") is True
    assert [g.id for g in await store.in_flight()] == [gen_id]
    assert await store.mark_delivered(gen_id, "err-1") is True
    assert await store.in_flight() == []
    stored = await store.generation(gen_id)
    assert stored is not None
    assert stored.state is GenerationState.FAILED
    assert stored.error == "no worker could finish this request"


async def test_cancelled_generation_is_not_in_flight(store: Store) -> None:
    [gen_id] = await _accept(store)
    await store.mark_submitted(gen_id, "h")
    assert await store.mark_cancelled(gen_id) is True
    assert await store.mark_done(gen_id, {}) is False
    assert await store.in_flight() == []


async def test_requeue_sends_again_and_counts_attempts(store: Store) -> None:
    [gen_id] = await _accept(store)
    await store.mark_submitted(gen_id, "h1")
    assert await store.requeue(gen_id) is True
    assert await store.requeue(gen_id) is False
    await store.mark_submitted(gen_id, "h2")
    stored = await store.generation(gen_id)
    assert stored is not None
    assert (stored.horde_id, stored.attempts) == ("h2", 2)


async def test_in_flight_survives_a_restart(backend: Backend, secret_box: SecretBox) -> None:
    first = await backend.open(secret_box)
    accepted, submitted, done, delivered, failed = await _accept(first, "ev-r", count=5)
    for gen_id in (submitted, done, delivered):
        await first.mark_submitted(gen_id, f"h-{gen_id}")
    for gen_id in (done, delivered):
        await first.mark_done(gen_id, {"images": []})
    await first.mark_delivered(delivered, "m")
    await first.mark_failed(failed, "boom")
    await first.mark_delivered(failed, "m-err")
    await first.close()

    second = await backend.open(secret_box)
    try:
        pending = await second.in_flight()
        assert [g.id for g in pending] == [accepted, submitted, done]
        assert [g.state for g in pending] == [
            GenerationState.ACCEPTED,
            GenerationState.SUBMITTED,
            GenerationState.DONE,
        ]
        assert pending[1].horde_id == f"h-{submitted}"
        assert pending[0].reply_target["data"] == {"channel_id": "chan-9"}
    finally:
        await second.close()


async def test_last_generation_is_the_newest(backend: Backend, secret_box: SecretBox) -> None:
    ticks = iter(range(1_000))

    def clock() -> datetime:
        return datetime(2030, 1, 1, tzinfo=UTC) + timedelta(seconds=next(ticks))

    store = await backend.open(secret_box, clock=clock)
    try:
        [newest] = await _accept(store, "ev-b")
        await _accept(store, "ev-a")  # an older id, not an older time: ids are no order
        newest = (await _accept(store, "ev-0"))[0]
        user = await store.identify("discord", "u1")
        last = await store.last_generation(user.id)
        assert last is not None
        assert last.id == newest
        assert await store.last_generation(user.id, platform="mastodon") is None
    finally:
        await store.close()


@pytest.mark.parametrize(
    "payload",
    [
        {"prompt": "x", "apikey": "secret"},
        {"prompt": "x", "params": {"API_KEY": "secret"}},
        {"prompt": "x", "extra": [{"apikey": "secret"}]},
    ],
)
async def test_payload_with_an_api_key_is_refused_and_event_left_unclaimed(
    store: Store, payload: dict[str, Any]
) -> None:
    user = await store.identify("discord", "u1")
    with pytest.raises(ValueError, match="without API keys"):
        await store.accept("discord", "ev-k", [NewGeneration(user.id, "u1", {}, {}, payload)])
    assert await store.claim_event("discord", "ev-k") is True
