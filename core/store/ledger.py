"""``StoreLedger``: the store seen through the generation service's ``GenerationLedger`` port.

The service speaks in its own ``StoredGeneration`` values (a ``user_key`` of ``platform:user id``,
style and category beside the body); the store keeps users, a request spec and the horde payload.
This class translates between the two so the service needs no SQL and the store no service logic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from core.messages import ReplyTarget
from core.service import StoredGeneration
from core.store.generations import Generation, NewGeneration
from core.store.store import Store


class StoreLedger:
    """Implements ``core.service.GenerationLedger`` on a ``Store``."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def accept(
        self, platform: str, event_id: str, generations: Sequence[StoredGeneration]
    ) -> bool:
        """Store an event's generations atomically; False when the event was seen before."""
        owners: dict[str, str] = {}
        new = []
        for item in generations:
            platform_user_id = _platform_user_id(item.user_key, item.platform)
            if item.user_key not in owners:
                user = await self._store.identify(item.platform, platform_user_id)
                owners[item.user_key] = user.id
            new.append(
                NewGeneration(
                    id=item.id,
                    user_id=owners[item.user_key],
                    platform_user_id=platform_user_id,
                    channel_id=str(item.target.data.get("channel_id", "")),
                    reply_target=item.target.to_json(),
                    spec={"style": item.style, "category": item.category},
                    payload=item.body,
                )
            )
        return await self._store.accept(platform, event_id, new) is not None

    async def claim_event(self, platform: str, event_id: str) -> bool:
        """Record an event that started no generation; False when seen before."""
        return await self._store.claim_event(platform, event_id)

    async def mark_submitted(self, generation_id: str, horde_id: str) -> bool:
        """accepted → submitted."""
        return await self._store.mark_submitted(generation_id, horde_id)

    async def requeue(self, generation_id: str) -> bool:
        """submitted → accepted."""
        return await self._store.requeue(generation_id)

    async def mark_done(self, generation_id: str, result: Mapping[str, Any]) -> bool:
        """submitted → done; the result's ``kudos`` is kept in its own column too."""
        kudos = result.get("kudos")
        return await self._store.mark_done(
            generation_id, result, kudos=float(kudos) if isinstance(kudos, int | float) else None
        )

    async def mark_failed(self, generation_id: str, error: str) -> bool:
        """accepted, submitted or done → failed."""
        return await self._store.mark_failed(generation_id, error)

    async def mark_delivered(self, generation_id: str, message_id: str) -> bool:
        """Record the delivery once; False for the second deliverer."""
        return await self._store.mark_delivered(generation_id, message_id)

    async def in_flight(self) -> list[StoredGeneration]:
        """Everything to resume after a restart."""
        return [_stored(item) for item in await self._store.in_flight()]

    async def user_api_key(self, platform: str, user_id: str) -> str | None:
        """The horde API key of the user behind a platform identity, if they stored one."""
        user = await self._store.find_user(platform, user_id)
        if user is None or not user.has_api_key:
            return None
        return await self._store.api_key(user.id)

    async def last_generation(self, platform: str, user_key: str) -> StoredGeneration | None:
        """The newest generation the identity behind ``user_key`` asked for on ``platform``."""
        user = await self._store.find_user(platform, _platform_user_id(user_key, platform))
        if user is None:
            return None
        found = await self._store.last_generation(user.id, platform=platform)
        return None if found is None else _stored(found)


def _platform_user_id(user_key: str, platform: str) -> str:
    prefix = f"{platform}:"
    if not user_key.startswith(prefix):
        raise ValueError(f"user key {user_key!r} is not of the form {prefix}<user id>")
    return user_key[len(prefix) :]


def _stored(item: Generation) -> StoredGeneration:
    style = item.spec.get("style")
    category = item.spec.get("category")
    return StoredGeneration(
        id=item.id,
        platform=item.platform,
        event_id=item.event_id,
        user_key=f"{item.platform}:{item.platform_user_id}",
        target=ReplyTarget.from_json(item.reply_target),
        body=item.payload,
        state=item.state.value,
        horde_id=item.horde_id,
        style=None if style is None else str(style),
        category=None if category is None else str(category),
        result=item.result,
        error=item.error,
    )
