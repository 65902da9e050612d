"""The adapter port: what a platform adapter provides and what it may call in the core.

Adapters inherit nothing; they satisfy these protocols structurally. The core shapes each reply to
the adapter's declared ``PlatformLimits`` before sending, rather than failing at send time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from core.messages import Ack, Invocation, Progress, Reply, ReplyTarget


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
        """Post a reply; return the platform's message id for the delivery record."""
        ...

    async def show_progress(self, target: ReplyTarget, progress: Progress) -> None:
        """Show progress where the platform can; may do nothing."""
        ...
