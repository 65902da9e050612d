"""``ChallengeRunner``: every step of a challenge, each done once, driven by ``advance``.

Phases: scheduled → open (announced) → voting (entries closed) → closed (votes counted, prizes
fixed) → paid (transfers made) → announced (results posted); or cancelled before closing. Each
move is a compare-and-set in the store and each post is recorded, so the scheduler, a catch-up at
start and an admin may all call ``advance`` for the same challenge and it happens once. The clock
is injected: tests move time and call the same code the scheduler calls.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from core.challenges import texts
from core.challenges.config import ChallengesConfig
from core.challenges.rules import Rules, check_entry
from core.challenges.tally import tally
from core.contract import ChallengeVenue, Votes
from core.errors import UserError
from core.horde.client import HordeClient
from core.horde.errors import HordeError
from core.messages import Invocation, OutImage, Reply, ReplyTarget
from core.request import RequestSpec
from core.service import StoredGeneration
from core.store import Store
from core.store.challenges import Challenge, ChallengeRepo, Entry, NewChallenge, Payout, Venue

log = logging.getLogger(__name__)

ACTIVE = ("scheduled", "open", "voting", "closed", "paid")
FINAL = ("announced", "cancelled")
RESULT_IMAGES = 3

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class ChallengeRunner:
    """Runs challenges on the venues (platform adapters) it is given."""

    def __init__(
        self,
        *,
        store: Store,
        horde: HordeClient,
        venues: Mapping[str, ChallengeVenue],
        config: ChallengesConfig,
        clock: Clock = _utc_now,
    ) -> None:
        self.repo = ChallengeRepo(store)
        self.config = config
        self._store = store
        self._horde = horde
        self._venues = dict(venues)
        self._clock = clock
        self._locks: dict[str, asyncio.Lock] = {}
        self._listeners: list[Callable[[Challenge], None]] = []

    def on_change(self, listener: Callable[[Challenge], None]) -> None:
        """Call ``listener`` when a challenge is created or its times change (to schedule it)."""
        self._listeners.append(listener)

    def now(self) -> datetime:
        """The runner's clock."""
        return self._clock()

    # ---- creating --------------------------------------------------------------------------

    async def create(
        self,
        *,
        theme: str,
        created_by: str,
        opens_at: datetime | None = None,
        entry_hours: float | None = None,
        voting_hours: float | None = None,
        prizes: Sequence[int] | None = None,
        venues: Sequence[Venue] | None = None,
        sponsor: str | None = None,
        rules: Rules | None = None,
        entries_per_user: int | None = None,
        recurring_key: str | None = None,
    ) -> Challenge | None:
        """A new challenge with the config's defaults filled in; None for a known recurring key."""
        config = self.config
        start = opens_at or self.now()
        closes = start + timedelta(hours=entry_hours or config.entry_hours)
        chosen = tuple(venues) if venues else config.default_venues()
        if not chosen:
            raise UserError("a challenge needs a venue", hint="add --venues discord:CHANNEL_ID")
        unknown = sorted({v.platform for v in chosen} - set(self._venues))
        if unknown:
            raise UserError(f"no running adapter for {', '.join(unknown)} can host a challenge")
        if not theme.strip():
            raise UserError("a challenge needs a theme", hint="add --theme TEXT")
        created = await self.repo.create(
            NewChallenge(
                id=str(uuid.uuid4()),
                theme=theme.strip(),
                rules=(rules or Rules()).to_json(),
                venues=chosen,
                prizes=tuple(prizes if prizes is not None else config.prizes),
                sponsor=sponsor or config.sponsor,
                entries_per_user=entries_per_user or config.entries_per_user,
                opens_at=start,
                entries_close_at=closes,
                voting_close_at=closes + timedelta(hours=voting_hours or config.voting_hours),
                created_by=created_by,
                recurring_key=recurring_key,
            )
        )
        if created is not None:
            log.info("challenge %s created: %s", created.id, created.theme)
            self._changed(created)
        return created

    async def ensure_recurring(self) -> list[Challenge]:
        """Create the next occurrence of each recurring challenge, if not made before."""
        made = []
        for spec in self.config.recurring:
            occurrence = spec.next_after(self.now())
            if occurrence is None:
                continue
            created = await self.create(
                theme=spec.theme_for(occurrence),
                created_by=f"recurring:{spec.name}",
                opens_at=occurrence,
                entry_hours=spec.entry_hours,
                voting_hours=spec.voting_hours,
                prizes=spec.prizes,
                venues=None if spec.venues is None else [_venue(v) for v in spec.venues],
                sponsor=spec.sponsor,
                rules=Rules(style=spec.style, model=spec.model, words=spec.words),
                recurring_key=f"{spec.name}:{occurrence.isoformat()}",
            )
            if created is not None:
                made.append(created)
        return made

    async def cancel(self, challenge_id: str) -> Challenge:
        """Cancel a challenge that has not closed yet."""
        challenge = await self._find(challenge_id)
        if not await self.repo.move(challenge.id, ("scheduled", "open", "voting"), "cancelled"):
            raise UserError(
                f"challenge {challenge.id[:8]} is {challenge.state}; it cannot be cancelled"
            )
        return await self._find(challenge.id)

    async def edit(self, challenge_id: str, **changes: object) -> Challenge:
        """Change a challenge that has not opened yet (theme, times, prizes, rules ...)."""
        challenge = await self._find(challenge_id)
        if not await self.repo.move(challenge.id, ("scheduled",), "scheduled", **changes):
            raise UserError(
                f"challenge {challenge.id[:8]} is {challenge.state}; "
                "only a scheduled one can change"
            )
        edited = await self._find(challenge.id)
        self._changed(edited)
        return edited

    def _changed(self, challenge: Challenge) -> None:
        for listener in self._listeners:
            listener(challenge)

    async def _find(self, challenge_id: str) -> Challenge:
        found = await self.repo.get(challenge_id)
        if found is None:
            raise UserError(f"no challenge {challenge_id[:40]!r}", hint="see /challenge list")
        return found

    # ---- entries ---------------------------------------------------------------------------

    async def entry_for(
        self, invocation: Invocation, spec: RequestSpec, *, asked: bool
    ) -> Challenge | None:
        """The open challenge this dream enters, checked; None when it is no entry.

        ``asked``: the user gave ``--challenge``; otherwise a dream counts as an entry only when
        it was made inside a challenge's own thread (its channel is the announcement).
        """
        platform, channel = invocation.platform, invocation.channel.channel_id
        running = [
            c
            for c in await self.repo.listed(("open",))
            if any(v.platform == platform for v in c.venues)
        ]
        in_thread = [c for c in running if channel in c.posts.values()]
        if not asked and not in_thread:
            return None
        if not running:
            raise UserError(
                "no challenge is taking entries here right now", hint="see /challenge list"
            )
        here = in_thread or [
            c
            for c in running
            if any(v.platform == platform and v.channel == channel for v in c.venues)
        ]
        challenge = (here or running)[0]
        check_entry(Rules.from_json(challenge.rules), spec)
        user = await self._store.identify(
            platform, invocation.user.user_id, invocation.user.display_name
        )
        if await self.repo.count_entries(challenge.id, user.id) >= challenge.entries_per_user:
            many = challenge.entries_per_user
            raise UserError(
                f"you have entered “{challenge.theme}” already "
                f"({many} entr{'y' if many == 1 else 'ies'} per person)"
            )
        return challenge

    async def record_entry(
        self, challenge: Challenge, invocation: Invocation, generation_id: str, prompt: str
    ) -> None:
        """Remember an accepted dream as an entry; its message is filled in at delivery."""
        user = await self._store.identify(invocation.platform, invocation.user.user_id)
        await self.repo.add_entry(
            Entry(
                id=generation_id,
                challenge_id=challenge.id,
                user_id=user.id,
                platform=invocation.platform,
                platform_user_id=invocation.user.user_id,
                display_name=invocation.user.display_name,
                prompt=prompt,
                reply_target=invocation.target.to_json(),
                created_at=self.now(),
            )
        )

    async def on_delivered(
        self, generation: StoredGeneration, reply: Reply, message_id: str
    ) -> None:
        """``GenerationService.on_delivered`` listener: an entry's message is what gets voted on."""
        if reply.error is not None or message_id.startswith("refused"):
            return
        if await self.repo.entry(generation.id) is None:
            return
        # The service's value may predate the result: the store has the image paths.
        stored = await self._store.generation(generation.id)
        image = _first_image(stored.result if stored else generation.result)
        await self.repo.set_entry_posted(generation.id, message_id, image)

    # ---- advancing -------------------------------------------------------------------------

    async def catch_up(self) -> int:
        """Advance every unfinished challenge, make recurring ones; returns how many moved."""
        await self.ensure_recurring()
        moved = 0
        for challenge in await self.repo.listed(ACTIVE, limit=1000):
            try:
                if await self.advance(challenge.id) != challenge.state:
                    moved += 1
            except Exception:
                log.exception("challenge %s could not advance; retried later", challenge.id)
        return moved

    async def advance(self, challenge_id: str) -> str:
        """Do every step due at ``now()``; returns the state reached. Safe to call any time."""
        lock = self._locks.setdefault(challenge_id, asyncio.Lock())
        async with lock:
            while True:
                challenge = await self.repo.get(challenge_id)
                if challenge is None:
                    raise KeyError(f"no challenge {challenge_id}")
                if not await self._step(challenge):
                    return challenge.state

    async def _step(self, challenge: Challenge) -> bool:
        now = self.now()
        state = challenge.state
        if state == "scheduled" and now >= challenge.opens_at:
            await self._post_all(challenge, "announce", texts.announcement(challenge))
            return await self.repo.move(challenge.id, ("scheduled",), "open")
        if state == "open" and now >= challenge.entries_close_at:
            entries = await self._reconcile(challenge)
            await self._post_all(challenge, "voting", texts.voting(challenge, len(entries)))
            return await self.repo.move(challenge.id, ("open",), "voting")
        if state == "voting" and now >= challenge.voting_close_at:
            return await self._close(challenge)
        if state == "closed":
            return await self._pay(challenge)
        if state == "paid":
            entries = await self.repo.entries(challenge.id)
            payouts = await self.repo.payouts(challenge.id)
            images = await self._winner_images(entries, payouts)
            await self._post_all(
                challenge, "results", texts.results(challenge, entries, payouts), images
            )
            return await self.repo.move(challenge.id, ("paid",), "announced")
        return False

    async def _post_all(
        self, challenge: Challenge, phase: str, text: str, images: tuple[OutImage, ...] = ()
    ) -> None:
        for venue in challenge.venues:
            key = f"{phase}:{venue.platform}:{venue.channel}"
            if key in challenge.posts:
                continue
            adapter = self._venues.get(venue.platform)
            if adapter is None:
                log.warning("challenge %s: no %s adapter to post to", challenge.id, venue.platform)
                continue
            message_id = await adapter.announce(venue.channel, text, images)
            await self.repo.record_post(challenge.id, key, message_id)

    async def _reconcile(self, challenge: Challenge) -> list[Entry]:
        """Entries with their messages; a delivery recorded before a crash is picked up here."""
        entries = []
        for entry in await self.repo.entries(challenge.id):
            if entry.message_id is None:
                generation = await self._store.generation(entry.id)
                message = generation.delivered_message_id if generation else None
                if generation is None or message is None or message.startswith("refused"):
                    continue
                await self.repo.set_entry_posted(entry.id, message, _first_image(generation.result))
                entry = await self.repo.entry(entry.id) or entry
            entries.append(entry)
        return entries

    async def _close(self, challenge: Challenge) -> bool:
        entries = await self._reconcile(challenge)
        votes: dict[str, Votes] = {}
        for entry in entries:
            adapter = self._venues.get(entry.platform)
            if adapter is None or entry.message_id is None:
                raise RuntimeError(f"cannot read votes on {entry.platform}: no adapter running")
            votes[entry.id] = await adapter.votes(
                ReplyTarget.from_json(entry.reply_target), entry.message_id
            )
        ignored = self.config.ignored()
        # Voters are platform ids: qualified as platform:id to compare with authors and ignores.
        ranked = tally(
            [(e.id, f"{e.platform}:{e.platform_user_id}") for e in entries],
            {e.id: _qualified(e.platform, votes[e.id]) for e in entries},
            challenge.prizes,
            ignored=ignored,
            min_votes=self.config.min_votes,
        )
        by_id = {e.id: e for e in entries}
        payouts = [
            Payout(
                challenge_id=challenge.id,
                entry_id=r.entry_id,
                place=r.place,
                amount=r.prize,
                platform=by_id[r.entry_id].platform,
                platform_user_id=by_id[r.entry_id].platform_user_id,
                state="due",
                idempotency_key=_idempotency(challenge.id, r.entry_id),
            )
            for r in ranked
            if r.prize > 0
        ]
        counts = {r.entry_id: r.votes for r in ranked}
        closed = await self.repo.close_voting(challenge.id, counts, payouts)
        if closed:
            log.info(
                "challenge %s closed: %d entries, %d prizes",
                challenge.id,
                len(entries),
                len(payouts),
            )
        return closed

    async def _pay(self, challenge: Challenge) -> bool:
        sponsor = await self._sponsor(challenge)
        for payout in await self.repo.payouts(challenge.id):
            if payout.state != "due":
                continue
            key = await self._key_of(payout.platform, payout.platform_user_id)
            if key is None:
                until = self.now() + timedelta(days=self.config.claim_days)
                await self.repo.move_payout(payout, ("due",), "unclaimed", claim_until=until)
                continue
            await self._transfer(sponsor, payout, key, ("due",))
        left = [p for p in await self.repo.payouts(challenge.id) if p.state == "due"]
        return not left and await self.repo.move(challenge.id, ("closed",), "paid")

    async def _transfer(
        self, sponsor: HordeClient, payout: Payout, winner_key: str, from_states: tuple[str, ...]
    ) -> bool:
        try:
            username = (await self._horde.with_key(winner_key).find_user()).username
            await sponsor.transfer_kudos(
                username, payout.amount, idempotency_key=payout.idempotency_key
            )
        except HordeError as exc:
            if exc.transient:
                raise
            log.warning("challenge prize %s could not be paid: %s", payout.idempotency_key, exc)
            return await self.repo.move_payout(payout, from_states, "failed")
        return await self.repo.move_payout(
            payout, from_states, "paid", horde_username=username, paid_at=self.now()
        )

    async def _sponsor(self, challenge: Challenge) -> HordeClient:
        if challenge.sponsor == "bot":
            return self._horde
        platform, _, user_id = challenge.sponsor.partition(":")
        key = await self._key_of(platform, user_id)
        if key is None:
            raise RuntimeError(f"challenge {challenge.id}: sponsor {challenge.sponsor} has no key")
        return self._horde.with_key(key)

    async def _key_of(self, platform: str, user_id: str) -> str | None:
        user = await self._store.find_user(platform, user_id)
        return None if user is None else await self._store.api_key(user.id)

    async def claim(self, platform: str, user_id: str) -> int:
        """Pay a winner's unclaimed prizes now that a key is linked; returns the kudos paid."""
        key = await self._key_of(platform, user_id)
        if key is None:
            return 0
        paid = 0
        for payout in await self.repo.unclaimed(platform, user_id):
            if payout.claim_until is not None and payout.claim_until < self.now():
                await self.repo.move_payout(payout, ("unclaimed",), "expired")
                continue
            challenge = await self.repo.get(payout.challenge_id)
            if challenge is None:
                continue
            if await self._transfer(await self._sponsor(challenge), payout, key, ("unclaimed",)):
                refreshed = [
                    p
                    for p in await self.repo.payouts(challenge.id)
                    if p.entry_id == payout.entry_id
                ]
                if refreshed and refreshed[0].state == "paid":
                    paid += payout.amount
        return paid

    async def _winner_images(
        self, entries: Sequence[Entry], payouts: Sequence[Payout]
    ) -> tuple[OutImage, ...]:
        by_id = {e.id: e for e in entries}
        images = []
        for payout in payouts[:RESULT_IMAGES]:
            entry = by_id.get(payout.entry_id)
            if entry is None or entry.image_path is None:
                continue
            path = Path(entry.image_path)
            try:
                data = await asyncio.to_thread(path.read_bytes)
            except OSError:
                log.warning("winning image %s is gone", path)
                continue
            images.append(OutImage(data=data, alt_text=f"#{payout.place}: {entry.prompt}"[:1000]))
        return tuple(images)


def _qualified(platform: str, votes: Votes) -> Votes:
    """Voter ids as ``platform:id``, so ignore lists and authors compare across platforms."""
    return Votes(voters=frozenset(f"{platform}:{v}" for v in votes.voters), score=votes.score)


def _idempotency(challenge_id: str, entry_id: str) -> str:
    """Stable for the life of the prize: every retry and restart sends the same key."""
    return hashlib.sha256(f"challenge\n{challenge_id}\n{entry_id}".encode()).hexdigest()[:40]


def _first_image(result: Mapping[str, object] | None) -> str | None:
    images = (result or {}).get("images")
    if isinstance(images, list) and images and isinstance(images[0], Mapping):
        path = images[0].get("path")
        return str(path) if path else None
    return None


def _venue(text: str) -> Venue:
    from core.challenges.config import parse_venue

    return parse_venue(text)
