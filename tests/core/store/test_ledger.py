"""The store behind the generation service's ledger port: what the service stores comes back."""

from __future__ import annotations

from core.messages import ReplyTarget
from core.service import GenerationLedger, StoredGeneration
from core.store import SecretBox, Store
from core.store.ledger import StoreLedger
from tests.core.store.conftest import Backend


def _stored(gen_id: str, event_id: str = "ev-1") -> StoredGeneration:
    return StoredGeneration(
        id=gen_id,
        platform="mastodon",
        event_id=event_id,
        user_key="mastodon:@ann@x.y",
        target=ReplyTarget("mastodon", {"status_id": "111", "visibility": "unlisted"}),
        body={"prompt": "a fox", "params": {"n": 1}},
        state="accepted",
        style="cinematic",
        category="photo",
    )


async def test_service_generations_survive_a_restart_through_the_ledger(
    backend: Backend, secret_box: SecretBox
) -> None:
    store = await backend.open(secret_box)
    ledger: GenerationLedger = StoreLedger(store)
    first, second = (
        _stored("00000000-0000-4000-8000-000000000001"),
        _stored("00000000-0000-4000-8000-000000000002"),
    )
    assert await ledger.accept("mastodon", "ev-1", [first, second]) is True
    assert await ledger.accept("mastodon", "ev-1", [first]) is False
    assert await ledger.mark_submitted(first.id, "horde-1")
    assert await ledger.mark_done(first.id, {"images": [], "kudos": 9})
    await store.close()

    reopened = await backend.open(secret_box)
    try:
        ledger = StoreLedger(reopened)
        pending = {g.id: g for g in await ledger.in_flight()}
        assert pending[second.id] == second
        done = pending[first.id]
        assert (done.state, done.horde_id, done.result) == (
            "done",
            "horde-1",
            {"images": [], "kudos": 9},
        )
        assert done.target == first.target
        assert (await reopened.generation(first.id)).kudos == 9.0  # type: ignore[union-attr]
        assert await ledger.mark_delivered(first.id, "status-2")
        assert not await ledger.mark_delivered(first.id, "status-3")
        last = await ledger.last_generation("mastodon", "mastodon:@ann@x.y")
        assert last is not None
        assert last.id in (first.id, second.id)
    finally:
        await reopened.close()


async def test_ledger_finds_the_key_of_a_linked_user(store: Store) -> None:
    ledger = StoreLedger(store)
    assert await ledger.user_api_key("discord", "1") is None
    ann = await store.identify("discord", "1")
    await store.set_api_key(ann.id, "the-horde-key")
    await store.link_identity(ann.id, "mastodon", "@ann@x.y")
    assert await ledger.user_api_key("mastodon", "@ann@x.y") == "the-horde-key"
