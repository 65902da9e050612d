"""Event claims: a redelivered platform event is claimed once, even by racing tasks."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from core.store import SecretBox, Store
from tests.core.store.conftest import Backend


async def test_an_event_is_claimed_once(store: Store) -> None:
    assert await store.claim_event("mastodon", "1001") is True
    assert await store.claim_event("mastodon", "1001") is False
    # The same id on another platform is another event.
    assert await store.claim_event("discord", "1001") is True


async def test_twenty_racing_claims_give_exactly_one_winner(store: Store) -> None:
    results = await asyncio.gather(*(store.claim_event("lemmy", "e-7") for _ in range(20)))
    assert results.count(True) == 1


async def test_claims_survive_a_restart(backend: Backend, secret_box: SecretBox) -> None:
    first = await backend.open(secret_box)
    assert await first.claim_event("reddit", "t1_abc")
    await first.close()
    second = await backend.open(secret_box)
    try:
        assert await second.claim_event("reddit", "t1_abc") is False
    finally:
        await second.close()


async def test_old_claims_can_be_forgotten(backend: Backend, secret_box: SecretBox) -> None:
    now = [datetime(2030, 1, 1, tzinfo=UTC)]
    store = await backend.open(secret_box, clock=lambda: now[0])
    try:
        await store.claim_event("mastodon", "old")
        now[0] += timedelta(days=10)
        await store.claim_event("mastodon", "new")
        assert await store.forget_events(now[0] - timedelta(days=1)) == 1
        assert await store.claim_event("mastodon", "old") is True
        assert await store.claim_event("mastodon", "new") is False
    finally:
        await store.close()


async def test_cursors_are_kept_and_replaced(backend: Backend, secret_box: SecretBox) -> None:
    store = await backend.open(secret_box)
    assert await store.cursor("mastodon", "last_notification") is None
    await store.set_cursor("mastodon", "last_notification", "100")
    await store.set_cursor("mastodon", "last_notification", "250")
    await store.set_cursor("lemmy", "last_notification", "7")
    await store.close()
    reopened = await backend.open(secret_box)
    try:
        assert await reopened.cursor("mastodon", "last_notification") == "250"
        assert await reopened.cursor("lemmy", "last_notification") == "7"
    finally:
        await reopened.close()
