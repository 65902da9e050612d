"""Users and identities: one user per platform identity, linked across platforms, merged on link."""

from __future__ import annotations

import asyncio

import pytest

from core.store import NewGeneration, Store


async def test_first_sight_creates_a_user_and_later_finds_it(store: Store) -> None:
    assert await store.find_user("discord", "1") is None
    created = await store.identify("discord", "1", "Ann")
    again = await store.identify("discord", "1")
    assert again == created
    assert created.identity("discord") is not None
    assert created.identity("discord").display_name == "Ann"  # type: ignore[union-attr]
    assert not created.has_api_key


async def test_display_name_follows_the_platform(store: Store) -> None:
    await store.identify("discord", "1", "Ann")
    renamed = await store.identify("discord", "1", "Annie")
    assert renamed.identities[0].display_name == "Annie"


async def test_racing_first_commands_create_one_user(store: Store) -> None:
    users = await asyncio.gather(*(store.identify("mastodon", "@a@x.y", "A") for _ in range(10)))
    assert len({u.id for u in users}) == 1


async def test_identities_link_across_platforms(store: Store) -> None:
    ann = await store.identify("discord", "1", "Ann")
    linked = await store.link_identity(ann.id, "mastodon", "@ann@example.social", "ann")
    assert {(i.platform, i.platform_user_id) for i in linked.identities} == {
        ("discord", "1"),
        ("mastodon", "@ann@example.social"),
    }
    found = await store.find_user("mastodon", "@ann@example.social")
    assert found is not None
    assert found.id == ann.id


async def test_linking_a_used_identity_merges_its_user(store: Store) -> None:
    ann = await store.identify("discord", "1", "Ann")
    other = await store.identify("mastodon", "@ann@x.y", "ann")
    await store.set_api_key(other.id, "mastodon-side-key")
    accepted = await store.accept(
        "mastodon", "status-1", [NewGeneration(other.id, "@ann@x.y", {}, {}, {"prompt": "p"})]
    )
    assert accepted is not None
    merged = await store.link_identity(ann.id, "mastodon", "@ann@x.y")
    assert len(merged.identities) == 2
    assert await store.user(other.id) is None
    moved = await store.generation(accepted[0].id)
    assert moved is not None
    assert moved.user_id == ann.id
    assert await store.api_key(ann.id) == "mastodon-side-key"


async def test_merge_keeps_the_targets_own_key(store: Store) -> None:
    ann = await store.identify("discord", "1")
    other = await store.identify("lemmy", "ann@lemmy.x")
    await store.set_api_key(ann.id, "discord-key")
    await store.set_api_key(other.id, "lemmy-key")
    await store.link_identity(ann.id, "lemmy", "ann@lemmy.x")
    assert await store.api_key(ann.id) == "discord-key"


async def test_moving_one_of_several_identities_keeps_the_old_user(store: Store) -> None:
    bob = await store.identify("discord", "2")
    await store.link_identity(bob.id, "reddit", "bob")
    ann = await store.identify("discord", "1")
    await store.link_identity(ann.id, "reddit", "bob")
    remaining = await store.user(bob.id)
    assert remaining is not None
    assert [i.platform for i in remaining.identities] == ["discord"]


async def test_unlink_detaches_an_identity(store: Store) -> None:
    ann = await store.identify("discord", "1")
    await store.link_identity(ann.id, "mastodon", "@a@b.c")
    assert await store.unlink_identity("mastodon", "@a@b.c") is True
    assert await store.unlink_identity("mastodon", "@a@b.c") is False
    assert await store.find_user("mastodon", "@a@b.c") is None
    assert await store.find_user("discord", "1") is not None


async def test_linking_to_an_unknown_user_is_an_error(store: Store) -> None:
    with pytest.raises(KeyError):
        await store.link_identity("no-such-user", "discord", "9")
