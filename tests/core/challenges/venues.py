"""An in-test platform that is both an ``Adapter`` and a ``ChallengeVenue``: it keeps every post
and lets a test set who voted on which message."""

from __future__ import annotations

from core.contract import Votes
from core.messages import OutImage, ReplyTarget
from tests.support.recording_adapter import RecordingAdapter


class VenueAdapter(RecordingAdapter):
    """Announcements are kept in ``posts``; votes are whatever ``votes_on`` holds."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.posts: list[tuple[str, str, tuple[OutImage, ...]]] = []
        self.votes_on: dict[str, set[str]] = {}
        self.vote_reads = 0

    async def announce(self, channel: str, text: str, images: tuple[OutImage, ...] = ()) -> str:
        """Keep the post; its id names the platform and its position."""
        self.posts.append((channel, text, images))
        return f"{self.name}-post-{len(self.posts)}"

    async def votes(self, target: ReplyTarget, message_id: str) -> Votes:
        """The voters a test set for this message."""
        self.vote_reads += 1
        return Votes(voters=frozenset(self.votes_on.get(message_id, set())))
