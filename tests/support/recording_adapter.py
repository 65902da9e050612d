"""An adapter for tests that keeps what the core sends it, so a test can wait for each reply."""

from __future__ import annotations

import asyncio

from core.contract import Inbox, PlatformLimits
from core.messages import Progress, Reply, ReplyTarget


class RecordingAdapter:
    """Satisfies ``core.contract.Adapter``; every ``send`` is queued for ``next_reply``."""

    def __init__(self, name: str = "console", limits: PlatformLimits | None = None) -> None:
        self.name = name
        self.limits = limits or PlatformLimits()
        self.sent: list[tuple[ReplyTarget, Reply]] = []
        self.progress: list[Progress] = []
        self._replies: asyncio.Queue[Reply] = asyncio.Queue()

    async def start(self, inbox: Inbox) -> None:
        """Nothing to connect to."""

    async def stop(self) -> None:
        """Nothing to drain."""

    async def send(self, target: ReplyTarget, reply: Reply) -> str:
        """Keep the reply; its message id is its position."""
        self.sent.append((target, reply))
        self._replies.put_nowait(reply)
        return f"{self.name}-message-{len(self.sent)}"

    async def show_progress(self, target: ReplyTarget, progress: Progress) -> None:
        """Keep the note."""
        self.progress.append(progress)

    async def next_reply(self, timeout: float = 30.0) -> Reply:
        """The next reply sent, waiting up to ``timeout`` seconds for it."""
        return await asyncio.wait_for(self._replies.get(), timeout)
