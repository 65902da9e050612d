"""Platform-neutral values that cross between adapters and the core.

An adapter turns a platform event into an ``Invocation``; the core answers with ``Ack`` at once and
later with ``Progress`` and ``Reply``. A ``ReplyTarget`` is plain JSON-serialisable data so a result
can be delivered after a restart by a fresh adapter instance.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


@dataclass(frozen=True, slots=True)
class UserRef:
    """Who asked: the platform's user id and a display name."""

    platform: str
    user_id: str
    display_name: str = ""


@dataclass(frozen=True, slots=True)
class ChannelRef:
    """Where it was asked, with the policy facts the core needs."""

    platform: str
    channel_id: str
    nsfw_allowed: bool = False
    is_dm: bool = False


@dataclass(frozen=True, slots=True)
class ReplyTarget:
    """Everything needed to answer later, as data: platform plus ids (status, channel, token)."""

    platform: str
    data: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict for the store."""
        return {"platform": self.platform, "data": dict(self.data)}

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> ReplyTarget:
        """Rebuild a target read back from the store."""
        return cls(platform=str(value["platform"]), data=dict(value.get("data", {})))


@dataclass(frozen=True, slots=True)
class Invocation:
    """One command from a user: text (a grammar line) or structured options (a mapping)."""

    event_id: str
    user: UserRef
    channel: ChannelRef
    target: ReplyTarget
    text: str | None = None
    options: Mapping[str, Any] | None = None
    command: str = "dream"
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def platform(self) -> str:
        """The platform the command came from."""
        return self.user.platform


class AckKind(StrEnum):
    """What the core did with an invocation, at once."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"
    ANSWERED = "answered"


@dataclass(frozen=True, slots=True)
class Ack:
    """The core's immediate answer: accepted (stored durably), a duplicate, or an error line.

    One command may start several generations (a category drawn into distinct styles).
    """

    kind: AckKind
    message: str = ""
    generation_ids: tuple[str, ...] = ()

    @property
    def generation_id(self) -> str | None:
        """The first generation started, if any."""
        return self.generation_ids[0] if self.generation_ids else None


class Phase(StrEnum):
    """Where a generation stands."""

    QUEUED = "queued"
    WAITING = "waiting"
    PROCESSING = "processing"
    FINISHED = "finished"


@dataclass(frozen=True, slots=True)
class Progress:
    """A throttled progress note for a pending generation."""

    generation_id: str
    phase: Phase
    queue_position: int = 0
    wait_time: int = 0
    finished: int = 0
    total: int = 1


class Action(StrEnum):
    """Follow-ups an adapter may offer as buttons."""

    REROLL = "reroll"
    VARIATIONS = "variations"
    DELETE = "delete"
    RATE = "rate"


@dataclass(frozen=True, slots=True)
class OutImage:
    """One image to post: bytes, MIME type, alt text, and whether it must be hidden as sensitive."""

    data: bytes
    mime_type: str = "image/webp"
    alt_text: str = ""
    nsfw: bool = False
    censored: bool = False


@dataclass(frozen=True, slots=True)
class ImageMeta:
    """What produced one image."""

    seed: str
    model: str
    worker: str
    job_id: str
    censored: bool = False


@dataclass(frozen=True, slots=True)
class Reply:
    """A final answer: text, images with metadata, and the actions that apply; or an error line."""

    generation_id: str | None
    text: str = ""
    images: tuple[OutImage, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    actions: tuple[Action, ...] = ()
    error: str | None = None
