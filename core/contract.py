"""The adapter port: what a platform adapter provides and what it may call in the core.

Adapters inherit nothing; they satisfy these protocols structurally. The core shapes each reply to
the adapter's declared ``PlatformLimits`` before sending, rather than failing at send time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from core.messages import Ack, Invocation, OutImage, Progress, Reply, ReplyTarget


@dataclass(frozen=True, slots=True)
class PlatformLimits:
    """What a platform can show in one reply."""

    max_images: int = 4
    max_text: int = 500
    max_alt_text: int = 1500
    edits_progress: bool = False
    buttons: bool = False
    max_upload_bytes: int = 8 * 1024 * 1024


class Inbox(Protocol):
    """The core's entry point for adapters."""

    async def submit(self, invocation: Invocation) -> Ack:
        """Hand over one command; the answer says whether it was stored, a duplicate, or wrong."""
        ...


class Adapter(Protocol):
    """A platform adapter: lifecycle, sending, progress."""

    name: str
    limits: PlatformLimits

    async def start(self, inbox: Inbox) -> None:
        """Connect, catch up the backlog, start listening; return when ready."""
        ...

    async def stop(self) -> None:
        """Stop listening and drain in-flight sends; idempotent."""
        ...

    async def send(self, target: ReplyTarget, reply: Reply) -> str:
        """Post a reply; return the platform's message id for the delivery record.

        Raise ``DeliveryError`` when the platform refused or failed after the adapter's own
        retries: the service keeps the reply and tries again later. Where the platform allows it
        (an idempotency key, a look at the bot's own replies) a second call for the same
        ``reply.generation_id`` must not post twice: a crash between posting and recording the
        delivery calls ``send`` again after the restart.
        """
        ...

    async def show_progress(self, target: ReplyTarget, progress: Progress) -> None:
        """Show progress where the platform can; may do nothing."""
        ...


class DeliveryError(Exception):
    """A platform did not take a reply; ``retryable``: the same call may succeed later."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True, slots=True)
class Votes:
    """Who voted for one posted message.

    ``voters`` are platform user ids where the platform tells who voted (Discord reactions,
    Mastodon favourites, Lemmy likes); ``score`` is the platform's net score where it only tells a
    number (Reddit). A tally uses ``voters`` when given, else ``score``.
    """

    voters: frozenset[str] = field(default_factory=frozenset)
    score: int | None = None


class ChallengeVenue(Protocol):
    """What a platform adapter offers prompt challenges: posting to a channel and reading votes."""

    async def announce(self, channel: str, text: str, images: tuple[OutImage, ...] = ()) -> str:
        """Post ``text`` (and images) as a new message in ``channel``; return its message id.

        ``channel`` is the platform's own name for a place, as the challenge config gives it: a
        Discord channel id, a Mastodon visibility (``public``, ``unlisted``), a Lemmy community or
        a subreddit name.
        """
        ...

    async def votes(self, target: ReplyTarget, message_id: str) -> Votes:
        """The votes on a message this adapter posted (a challenge entry)."""
        ...
