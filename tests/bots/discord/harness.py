"""The whole bot under SimCord: a virtual Discord around the real client, and the real stack.

SimCord runs the client the way it runs any discord.py bot; the adapter is bound to that client
with ``connect=False``. SimCord must be running before the stack starts, so the core's own tasks
(resumed generations too) see its webhook transport.

Most tests play the horde worker themselves over HTTP (``FakeWorker``): a one-colour WebP in a
few milliseconds instead of a worker process that takes a minute to load on a small machine.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import discord
import simcord
from PIL import Image

from bots.deps import AdapterDeps
from bots.discord.adapter import DiscordAdapter
from bots.discord.client import DiscordBot
from bots.discord.config import DiscordConfig
from bots.discord.render import MARKER
from bots.stack import Stack
from core.catalog import Catalog
from core.horde.client import HordeClient
from core.horde.wire import PopInput, PopResponse, SubmitInput
from tests.support.bot_stack import bot_stack
from tests.support.horde_worker import check_in as announce
from tests.support.horde_worker import pop_input, tiny_webp

CONFIG = DiscordConfig(retry_first_seconds=0.05, progress_interval_seconds=5.0)
MODEL = "stable_diffusion"
FAKE_WORKER = "discord-test-worker"


@contextlib.asynccontextmanager
async def discord_stack(
    config_path: Path, bot: DiscordBot, *, with_worker: bool = True
) -> AsyncIterator[tuple[Stack, DiscordAdapter]]:
    """The stack with a Discord adapter bound to ``bot`` (already run by SimCord)."""
    built: list[DiscordAdapter] = []

    def adapters(stack: Stack) -> list[DiscordAdapter]:
        deps = AdapterDeps(store=stack.store, catalog=Catalog.from_config(stack.config))
        built.append(DiscordAdapter(CONFIG, deps, client=bot, connect=False))
        return built

    async with bot_stack(config_path, adapters, with_worker=with_worker) as stack:
        yield stack, built[0]


@dataclass
class FakeWorker:
    """A horde worker played over HTTP: pops one job and hands in a tiny image for it."""

    client: HordeClient
    name: str = FAKE_WORKER

    @property
    def _ask(self) -> PopInput:
        # A batch: every image of a request (variations ask for several) comes in one pop.
        return pop_input(self.name, [MODEL]).model_copy(update={"amount": 10})

    async def finish(self, *, censored: bool = False, attempts: int = 400) -> PopResponse:
        """Pop the next request (waiting while there is none) and submit an image per slot."""
        for _ in range(attempts):
            job = await self.client.pop(self._ask)
            if job.id is not None:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"no job to pop; skipped: {job.skipped}")
        assert job.payload is not None
        uploads = job.r2_uploads or ([job.r2_upload] if job.r2_upload else [])
        for index, job_id in enumerate(job.ids or [job.id]):
            if index < len(uploads):
                await self.client.upload_r2(uploads[index], tiny_webp())
                generation = "R2"
            else:
                generation = base64.b64encode(tiny_webp()).decode()
            await self.client.submit(
                SubmitInput(
                    id=job_id,
                    generation=generation,
                    seed=int(job.payload.seed or 0) + index,
                    state="censored" if censored else "ok",
                    censored=censored,
                )
            )
        return job


@contextlib.asynccontextmanager
async def fake_worker(stack: Stack, *, check_in: bool = True) -> AsyncIterator[FakeWorker]:
    """A worker account on the stack's embedded horde.

    ``check_in``: announce the worker and its model at once, by a pop; only while nothing is
    queued, or that pop takes (and strands) a job.
    """
    assert stack.embedded is not None, "the stack must run the embedded horde"
    key = await stack.embedded.issue_key("discord-test-worker-owner")
    async with HordeClient(key, base_url=stack.horde_url) as client:
        if check_in:
            announced = await announce(client, FAKE_WORKER, [MODEL])
            assert announced.id is None, "the check-in pop took a job"
        yield FakeWorker(client)


def age_restrict(bot: discord.Client, channel: simcord.ChannelHandle) -> None:
    """Mark a channel age-restricted in the client's cache.

    SimCord 3.2.1 models no ``nsfw`` channel flag; discord.py reads it from its cached channel,
    which is what interactions and messages in that channel point to.
    """
    cached = bot.get_channel(channel.id)
    assert isinstance(cached, discord.TextChannel), cached
    cached.nsfw = True


def bot_posts(channel: simcord.ChannelHandle, bot: discord.Client) -> list[discord.Message]:
    """The bot's messages in a channel, oldest first (interaction responses included)."""
    me = bot.user
    assert me is not None
    return [m for m in channel.history() if m.author.id == me.id]


def generation_id(message: Any) -> str:
    """The generation a result message carries, from the footer of its embed."""
    embeds: list[discord.Embed] = list(message.embeds)
    footer = embeds[0].footer.text or "" if embeds else ""
    assert footer.startswith(MARKER), footer
    return footer[len(MARKER) :]


async def wait_for(check: Callable[[], Any], timeout: float = 90.0) -> Any:
    """Poll ``check()`` in real time (the worker is a real process) until it returns a value."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = check()
        if found:
            return found
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out waiting for the bot")
        await asyncio.sleep(0.1)


def with_images(res: simcord.InteractionResult) -> simcord.ResponseMessage | None:
    """The interaction's response once it carries images."""
    response = res.response
    if response is None or not response.attachments:
        return None
    return response


def is_image(data: bytes) -> bool:
    """Whether the bytes decode as an image."""
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image.width > 0
