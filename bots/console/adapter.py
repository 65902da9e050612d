"""The console adapter: reads commands from stdin, prints progress, saves images, prints paths.

On a TTY it is an interactive prompt with history; otherwise it reads line by line. At end of input
it waits until every generation it started has been answered, then returns.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from bots.console.config import ConsoleConfig
from bots.console.inbound import PLATFORM, parse_line
from bots.console.limits import LIMITS
from bots.console.render import progress_line, reply_lines, save_images
from core.contract import Inbox, PlatformLimits, Votes
from core.messages import AckKind, OutImage, Progress, Reply, ReplyTarget


class ConsoleAdapter:
    """The terminal as a platform."""

    name = PLATFORM
    limits: PlatformLimits = LIMITS

    def __init__(
        self,
        config: ConsoleConfig,
        *,
        stdin: TextIO | None = None,
        stdout: TextIO | None = None,
        interactive: bool | None = None,
    ) -> None:
        self._config = config
        self._stdin = stdin or sys.stdin
        self._stdout = stdout or sys.stdout
        self._interactive = self._stdin.isatty() if interactive is None else interactive
        self._session = uuid.uuid4().hex[:8]
        self._pending: set[str] = set()
        # A reply may in principle arrive before its ack is processed; remember answered ids.
        self._answered: set[str] = set()
        self._all_answered = asyncio.Event()
        self._all_answered.set()
        self._reader: asyncio.Task[None] | None = None
        self._done = asyncio.Event()

    async def start(self, inbox: Inbox) -> None:
        """Start reading input in a task of our own."""
        if self._interactive:
            _enable_history(Path(self._config.history_file))
        self._reader = asyncio.create_task(self._read_loop(inbox), name="console-reader")

    async def wait_closed(self) -> None:
        """Return once input has ended and every generation it started has been answered."""
        await self._done.wait()

    async def stop(self) -> None:
        """Stop reading; idempotent."""
        if self._reader and not self._reader.done():
            self._reader.cancel()
        self._done.set()

    async def send(self, target: ReplyTarget, reply: Reply) -> str:
        """Save the images, print their paths; the message id is the first path (or the target)."""
        paths = await asyncio.to_thread(save_images, reply, Path(self._config.out_dir))
        for line in reply_lines(reply, paths):
            self._print(line)
        if reply.generation_id:
            self._answered.add(reply.generation_id)
            self._pending.discard(reply.generation_id)
            if not self._pending:
                self._all_answered.set()
        return str(paths[0]) if paths else f"console:{target.data.get('line', '')}"

    async def show_progress(self, target: ReplyTarget, progress: Progress) -> None:
        """Print a progress line when enabled."""
        if self._config.progress:
            self._print(progress_line(progress))

    async def announce(self, channel: str, text: str, images: tuple[OutImage, ...] = ()) -> str:
        """Print a challenge post (and save its images); the terminal is one channel."""
        reply = Reply(generation_id=f"announce-{uuid.uuid4().hex[:8]}", images=images)
        paths = await asyncio.to_thread(save_images, reply, Path(self._config.out_dir))
        self._print(text)
        for path in paths:
            self._print(str(path))
        return reply.generation_id or ""

    async def votes(self, target: ReplyTarget, message_id: str) -> Votes:
        """Nobody votes on a terminal: every console entry has no votes."""
        return Votes()

    async def _read_loop(self, inbox: Inbox) -> None:
        number = 0
        while True:
            line = await asyncio.to_thread(self._read_line)
            if line is None:
                break
            number += 1
            invocation = parse_line(
                line,
                session=self._session,
                number=number,
                user=self._config.user,
                nsfw_allowed=self._config.nsfw_allowed,
            )
            if invocation is None:
                continue
            ack = await inbox.submit(invocation)
            if ack.kind is AckKind.ACCEPTED:
                fresh = set(ack.generation_ids) - self._answered
                if fresh:
                    self._pending |= fresh
                    self._all_answered.clear()
                if ack.message:
                    # Warnings, such as a value the model's spec corrected.
                    self._print(f"note: {ack.message}")
            elif ack.kind is AckKind.REJECTED:
                self._print(f"error: {ack.message}")
            elif ack.message:
                self._print(ack.message)
        await self._all_answered.wait()
        self._done.set()

    def _read_line(self) -> str | None:
        if self._interactive:
            try:
                return input("hordebot> ")
            except EOFError:
                return None
        line = self._stdin.readline()
        return line if line else None

    def _print(self, line: str) -> None:
        print(line, file=self._stdout, flush=True)


def _enable_history(path: Path) -> None:
    """Keep line history across sessions on a TTY, where readline exists."""
    try:
        import readline
    except ImportError:  # pragma: no cover - platforms without readline
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        readline.read_history_file(str(path))
    save: Callable[[str], None] = readline.write_history_file
    import atexit

    atexit.register(save, str(path))
