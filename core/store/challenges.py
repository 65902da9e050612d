"""Challenge rows: create, read and move a challenge through its phases; entries and payouts.

Every phase change is a compare-and-set on ``state`` so a scheduler job that runs twice (a retry,
a catch-up at start) finds nothing left to do. Closing the voting stores the tally and the prize
rows in the same transaction, so the payout that follows works from fixed, stored facts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Row, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from core.store.challenge_tables import challenge_entries, challenge_payouts, challenges
from core.store.dialects import insert_or_nothing
from core.store.store import Store


@dataclass(frozen=True, slots=True)
class Venue:
    """A place a challenge runs: a platform and that platform's name for a channel."""

    platform: str
    channel: str

    def to_json(self) -> dict[str, str]:
        """Plain data for the store."""
        return {"platform": self.platform, "channel": self.channel}


@dataclass(frozen=True, slots=True)
class Challenge:
    """One challenge as stored."""

    id: str
    theme: str
    rules: Mapping[str, Any]
    venues: tuple[Venue, ...]
    posts: Mapping[str, str]
    prizes: tuple[int, ...]
    sponsor: str
    entries_per_user: int
    opens_at: datetime
    entries_close_at: datetime
    voting_close_at: datetime
    state: str
    created_by: str
    recurring_key: str | None = None


@dataclass(frozen=True, slots=True)
class Entry:
    """One entry: a generation by a user, and the message it was posted as."""

    id: str
    challenge_id: str
    user_id: str
    platform: str
    platform_user_id: str
    display_name: str
    prompt: str
    reply_target: Mapping[str, Any]
    created_at: datetime
    message_id: str | None = None
    image_path: str | None = None
    votes: int | None = None


@dataclass(frozen=True, slots=True)
class Payout:
    """One prize for one entry, and where its transfer stands."""

    challenge_id: str
    entry_id: str
    place: int
    amount: int
    platform: str
    platform_user_id: str
    state: str
    idempotency_key: str
    horde_username: str | None = None
    claim_until: datetime | None = None
    paid_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Standing:
    """A leaderboard line: one platform identity's prizes paid, over all challenges."""

    platform: str
    platform_user_id: str
    display_name: str
    kudos: int
    wins: int


@dataclass(frozen=True, slots=True)
class NewChallenge:
    """What creating a challenge needs; the id is the caller's."""

    id: str
    theme: str
    rules: Mapping[str, Any]
    venues: Sequence[Venue]
    prizes: Sequence[int]
    sponsor: str
    entries_per_user: int
    opens_at: datetime
    entries_close_at: datetime
    voting_close_at: datetime
    created_by: str
    recurring_key: str | None = None
    state: str = "scheduled"
    posts: Mapping[str, str] = field(default_factory=dict)


class ChallengeRepo:
    """The challenge tables over a ``Store``'s engine and transactions."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def _tx(self, *, write: bool) -> Any:
        # The store's own transaction: SQLite writers queue behind one lock for the whole bot.
        return self._store._transaction(write=write)

    def now(self) -> datetime:
        """The store's clock."""
        return self._store._now()

    async def create(self, new: NewChallenge) -> Challenge | None:
        """Insert a challenge; None when its ``recurring_key`` (or id) exists already."""
        now = self.now()
        values = {
            "id": new.id,
            "theme": new.theme,
            "rules": dict(new.rules),
            "venues": [v.to_json() for v in new.venues],
            "posts": dict(new.posts),
            "prizes": list(new.prizes),
            "sponsor": new.sponsor,
            "entries_per_user": new.entries_per_user,
            "opens_at": new.opens_at,
            "entries_close_at": new.entries_close_at,
            "voting_close_at": new.voting_close_at,
            "state": new.state,
            "recurring_key": new.recurring_key,
            "created_by": new.created_by,
            "created_at": now,
            "updated_at": now,
        }
        async with self._tx(write=True) as conn:
            if not await insert_or_nothing(conn, challenges, values):
                return None
            return await _challenge(conn, new.id)

    async def get(self, challenge_id: str) -> Challenge | None:
        """One challenge by id (or a unique id prefix of 6+ characters), or None."""
        async with self._tx(write=False) as conn:
            found = await _challenge(conn, challenge_id)
            if found is None and len(challenge_id) >= 6:
                rows = (
                    await conn.execute(
                        select(challenges.c.id).where(challenges.c.id.startswith(challenge_id))
                    )
                ).all()
                if len(rows) == 1:
                    found = await _challenge(conn, str(rows[0].id))
            return found

    async def listed(self, states: Sequence[str] | None = None, limit: int = 50) -> list[Challenge]:
        """Challenges (in ``states`` if given), soonest voting close first."""
        query = select(challenges).order_by(challenges.c.voting_close_at, challenges.c.id)
        if states is not None:
            query = query.where(challenges.c.state.in_(list(states)))
        async with self._tx(write=False) as conn:
            rows = (await conn.execute(query.limit(limit))).all()
            return [_challenge_of(r) for r in rows]

    async def move(
        self, challenge_id: str, from_states: Sequence[str], to_state: str, **changes: Any
    ) -> bool:
        """Compare-and-set the state (and other columns); False unless it was in ``from_states``."""
        async with self._tx(write=True) as conn:
            result = await conn.execute(
                update(challenges)
                .where(challenges.c.id == challenge_id, challenges.c.state.in_(list(from_states)))
                .values(state=to_state, updated_at=self.now(), **changes)
            )
            return bool(result.rowcount == 1)

    async def record_post(self, challenge_id: str, key: str, message_id: str) -> None:
        """Remember one post made for the challenge (an announcement, the results)."""
        async with self._tx(write=True) as conn:
            row = (
                await conn.execute(
                    select(challenges.c.posts)
                    .where(challenges.c.id == challenge_id)
                    .with_for_update()
                )
            ).first()
            if row is None:
                raise KeyError(f"no challenge {challenge_id}")
            posts = {**dict(row.posts or {}), key: message_id}
            await conn.execute(
                update(challenges)
                .where(challenges.c.id == challenge_id)
                .values(posts=posts, updated_at=self.now())
            )

    # ---- entries -------------------------------------------------------------------------

    async def add_entry(self, entry: Entry) -> bool:
        """Record an entry at submit time; False when that generation is an entry already."""
        values = {
            "id": entry.id,
            "challenge_id": entry.challenge_id,
            "user_id": entry.user_id,
            "platform": entry.platform,
            "platform_user_id": entry.platform_user_id,
            "display_name": entry.display_name[:255],
            "prompt": entry.prompt,
            "reply_target": dict(entry.reply_target),
            "created_at": entry.created_at,
        }
        async with self._tx(write=True) as conn:
            return await insert_or_nothing(conn, challenge_entries, values)

    async def entry(self, entry_id: str) -> Entry | None:
        """One entry by its generation id, or None when that generation is no entry."""
        async with self._tx(write=False) as conn:
            row = (
                await conn.execute(
                    select(challenge_entries).where(challenge_entries.c.id == entry_id)
                )
            ).first()
            return None if row is None else _entry_of(row)

    async def entries(self, challenge_id: str) -> list[Entry]:
        """A challenge's entries, oldest first."""
        async with self._tx(write=False) as conn:
            rows = await conn.execute(
                select(challenge_entries)
                .where(challenge_entries.c.challenge_id == challenge_id)
                .order_by(challenge_entries.c.created_at, challenge_entries.c.id)
            )
            return [_entry_of(r) for r in rows]

    async def count_entries(self, challenge_id: str, user_id: str) -> int:
        """How many entries a user has in a challenge."""
        async with self._tx(write=False) as conn:
            count = await conn.scalar(
                select(func.count())
                .select_from(challenge_entries)
                .where(
                    challenge_entries.c.challenge_id == challenge_id,
                    challenge_entries.c.user_id == user_id,
                )
            )
            return int(count or 0)

    async def set_entry_posted(
        self, entry_id: str, message_id: str, image_path: str | None
    ) -> bool:
        """Record the message an entry was posted as; False if it was recorded before."""
        async with self._tx(write=True) as conn:
            result = await conn.execute(
                update(challenge_entries)
                .where(challenge_entries.c.id == entry_id, challenge_entries.c.message_id.is_(None))
                .values(message_id=message_id, image_path=image_path, posted_at=self.now())
            )
            return bool(result.rowcount == 1)

    # ---- closing and payouts -------------------------------------------------------------

    async def close_voting(
        self, challenge_id: str, votes: Mapping[str, int], payouts: Sequence[Payout]
    ) -> bool:
        """voting → closed with the tally and the prize rows, in one transaction."""
        now = self.now()
        async with self._tx(write=True) as conn:
            moved = await conn.execute(
                update(challenges)
                .where(challenges.c.id == challenge_id, challenges.c.state == "voting")
                .values(state="closed", updated_at=now)
            )
            if moved.rowcount != 1:
                return False
            for entry_id, count in votes.items():
                await conn.execute(
                    update(challenge_entries)
                    .where(challenge_entries.c.id == entry_id)
                    .values(votes=count)
                )
            for payout in payouts:
                await conn.execute(
                    insert(challenge_payouts).values(
                        challenge_id=payout.challenge_id,
                        entry_id=payout.entry_id,
                        place=payout.place,
                        amount=payout.amount,
                        platform=payout.platform,
                        platform_user_id=payout.platform_user_id,
                        state=payout.state,
                        idempotency_key=payout.idempotency_key,
                        created_at=now,
                    )
                )
            return True

    async def payouts(self, challenge_id: str) -> list[Payout]:
        """A challenge's prizes, best place first."""
        async with self._tx(write=False) as conn:
            rows = await conn.execute(
                select(challenge_payouts)
                .where(challenge_payouts.c.challenge_id == challenge_id)
                .order_by(challenge_payouts.c.place, challenge_payouts.c.entry_id)
            )
            return [_payout_of(r) for r in rows]

    async def move_payout(
        self, payout: Payout, from_states: Sequence[str], to_state: str, **changes: Any
    ) -> bool:
        """Compare-and-set one payout's state; False when it had moved already."""
        async with self._tx(write=True) as conn:
            result = await conn.execute(
                update(challenge_payouts)
                .where(
                    challenge_payouts.c.challenge_id == payout.challenge_id,
                    challenge_payouts.c.entry_id == payout.entry_id,
                    challenge_payouts.c.state.in_(list(from_states)),
                )
                .values(state=to_state, **changes)
            )
            return bool(result.rowcount == 1)

    async def unclaimed(self, platform: str, platform_user_id: str) -> list[Payout]:
        """A winner's prizes waiting for a linked key."""
        async with self._tx(write=False) as conn:
            rows = await conn.execute(
                select(challenge_payouts).where(
                    challenge_payouts.c.platform == platform,
                    challenge_payouts.c.platform_user_id == platform_user_id,
                    challenge_payouts.c.state == "unclaimed",
                )
            )
            return [_payout_of(r) for r in rows]

    async def leaderboard(self, limit: int = 10) -> list[Standing]:
        """Identities by kudos won (paid prizes only), most first."""
        paid = challenge_payouts.c
        query = (
            select(
                paid.platform,
                paid.platform_user_id,
                func.max(challenge_entries.c.display_name).label("display_name"),
                func.sum(paid.amount).label("kudos"),
                func.count().label("wins"),
            )
            .select_from(
                challenge_payouts.join(
                    challenge_entries, challenge_entries.c.id == challenge_payouts.c.entry_id
                )
            )
            .where(paid.state == "paid")
            .group_by(paid.platform, paid.platform_user_id)
            .order_by(func.sum(paid.amount).desc(), paid.platform, paid.platform_user_id)
            .limit(limit)
        )
        async with self._tx(write=False) as conn:
            return [
                Standing(
                    platform=r.platform,
                    platform_user_id=r.platform_user_id,
                    display_name=r.display_name or "",
                    kudos=int(r.kudos or 0),
                    wins=int(r.wins),
                )
                for r in await conn.execute(query)
            ]


async def _challenge(conn: AsyncConnection, challenge_id: str) -> Challenge | None:
    row = (await conn.execute(select(challenges).where(challenges.c.id == challenge_id))).first()
    return None if row is None else _challenge_of(row)


def _challenge_of(row: Row[Any]) -> Challenge:
    return Challenge(
        id=row.id,
        theme=row.theme,
        rules=dict(row.rules or {}),
        venues=tuple(Venue(str(v["platform"]), str(v["channel"])) for v in row.venues or []),
        posts={str(k): str(v) for k, v in (row.posts or {}).items()},
        prizes=tuple(int(p) for p in row.prizes or []),
        sponsor=row.sponsor,
        entries_per_user=row.entries_per_user,
        opens_at=row.opens_at,
        entries_close_at=row.entries_close_at,
        voting_close_at=row.voting_close_at,
        state=row.state,
        created_by=row.created_by,
        recurring_key=row.recurring_key,
    )


def _entry_of(row: Row[Any]) -> Entry:
    return Entry(
        id=row.id,
        challenge_id=row.challenge_id,
        user_id=row.user_id,
        platform=row.platform,
        platform_user_id=row.platform_user_id,
        display_name=row.display_name,
        prompt=row.prompt,
        reply_target=dict(row.reply_target or {}),
        created_at=row.created_at,
        message_id=row.message_id,
        image_path=row.image_path,
        votes=row.votes,
    )


def _payout_of(row: Row[Any]) -> Payout:
    return Payout(
        challenge_id=row.challenge_id,
        entry_id=row.entry_id,
        place=row.place,
        amount=row.amount,
        platform=row.platform,
        platform_user_id=row.platform_user_id,
        state=row.state,
        idempotency_key=row.idempotency_key,
        horde_username=row.horde_username,
        claim_until=row.claim_until,
        paid_at=row.paid_at,
    )
