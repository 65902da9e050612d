"""The console adapter in-process: lines in, acknowledgements and replies out, files saved."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

from bots.console.adapter import ConsoleAdapter
from bots.console.config import ConsoleConfig
from core.messages import Ack, AckKind, Invocation, OutImage, Reply, ReplyTarget
from tests.support.horde_worker import tiny_webp


class ScriptedInbox:
    """Answers like the core would: dreams are accepted and answered a moment later."""

    def __init__(self, adapter: ConsoleAdapter) -> None:
        self.adapter = adapter
        self.seen: list[Invocation] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, invocation: Invocation) -> Ack:
        self.seen.append(invocation)
        if invocation.command == "help":
            return Ack(AckKind.ANSWERED, "Commands: /dream …")
        if invocation.command != "dream":
            return Ack(AckKind.REJECTED, f"unknown command /{invocation.command}")
        generation = f"gen{len(self.seen)}"
        task = asyncio.create_task(self._answer(invocation, generation))
        self._tasks.add(task)
        return Ack(AckKind.ACCEPTED, "steps raised to 4 for this model", (generation,))

    async def _answer(self, invocation: Invocation, generation: str) -> None:
        await asyncio.sleep(0.05)
        reply = Reply(generation, text="“a fox”", images=(OutImage(tiny_webp()),))
        await self.adapter.send(invocation.target, reply)


async def test_console_routes_lines_and_waits_for_its_replies(tmp_path: Path) -> None:
    out = io.StringIO()
    lines = "# a comment\n\n/help\n/nosuch\ndraw me a fox\na bare prompt\n"
    adapter = ConsoleAdapter(
        ConsoleConfig(out_dir=str(tmp_path / "out"), progress=False),
        stdin=io.StringIO(lines),
        stdout=out,
        interactive=False,
    )
    inbox = ScriptedInbox(adapter)
    await adapter.start(inbox)
    await asyncio.wait_for(adapter.wait_closed(), timeout=10)

    assert [i.command for i in inbox.seen] == ["help", "nosuch", "dream", "dream"]
    assert len({i.event_id for i in inbox.seen}) == 4
    text = out.getvalue().splitlines()
    assert "Commands: /dream …" in text
    assert "error: unknown command /nosuch" in text
    assert text.count("note: steps raised to 4 for this model") == 2
    paths = [Path(line) for line in text if line.endswith(".webp")]
    assert sorted(p.name for p in paths) == ["gen3-0.webp", "gen4-0.webp"]
    assert all(p.read_bytes().startswith(b"RIFF") for p in paths)


async def test_console_hosts_challenge_posts_and_counts_no_votes(tmp_path: Path) -> None:
    out = io.StringIO()
    adapter = ConsoleAdapter(
        ConsoleConfig(out_dir=str(tmp_path / "out")), stdin=io.StringIO(""), stdout=out
    )
    message_id = await adapter.announce("stdin", "Challenge: owls", (OutImage(tiny_webp()),))
    lines = out.getvalue().splitlines()
    assert lines[0] == "Challenge: owls"
    assert Path(lines[1]).read_bytes() == tiny_webp()
    assert message_id.startswith("announce-")
    votes = await adapter.votes(ReplyTarget("console", {}), message_id)
    assert votes.voters == frozenset()
    assert votes.score is None
