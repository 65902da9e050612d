"""The Discord adapter: slash commands, mentions and buttons in; embeds with images out.

Gateway handlers only defer, translate and hand over: the core's work runs in tasks this adapter
starts itself (``_pump``), never inside an event handler's task, so a slow horde never holds up
discord.py's dispatch and the core's generation tasks outlive the event that started them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import discord
from discord import app_commands

from bots.deps import AdapterDeps
from bots.discord import inbound
from bots.discord.client import DiscordBot
from bots.discord.commands import PRIVATE_COMMANDS
from bots.discord.components import LoginModal, pager_view
from bots.discord.config import DiscordConfig
from bots.discord.delivery import Poster
from bots.discord.limits import LIMITS
from bots.discord.render import (
    Rendered,
    progress_embed,
    queued_embed,
    render_reply,
    styles_page,
)
from core.commands import COMMANDS, Kind, Option
from core.contract import Inbox, PlatformLimits, Votes
from core.errors import UserError
from core.grammar import split_line
from core.messages import Ack, AckKind, Action, Invocation, OutImage, Progress, Reply, ReplyTarget
from core.shaping import Post, clip, split_text

log = logging.getLogger(__name__)

PLATFORM = inbound.PLATFORM
LOGIN_IN_PUBLIC = (
    "never post your API key in a channel: use /login (a private form) or send it to me in a DM; "
    "delete your message and consider resetting the key"
)
NOT_IN_DMS = "I only draw in servers here; mention me in a channel or use /dream"
REQUESTER_ONLY = "only the person who asked can {what} this"


class DiscordAdapter:
    """Implements ``core.contract.Adapter`` and ``core.contract.ChallengeVenue`` for Discord."""

    name = PLATFORM
    limits: PlatformLimits = LIMITS

    def __init__(
        self,
        config: DiscordConfig,
        deps: AdapterDeps,
        *,
        client: DiscordBot | None = None,
        connect: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``connect=False``: something else runs ``client`` (a test harness, a supervisor).

        ``clock`` paces progress edits; a test gives it the virtual Discord's time.
        """
        self._config = config
        self._deps = deps
        self.client = client or DiscordBot(config)
        self._connect = connect
        self._poster = Poster(self.client, config)
        self._inbox: Inbox | None = None
        self._queue: asyncio.Queue[tuple[Invocation, asyncio.Future[Ack]]] = asyncio.Queue()
        self._pump_task: asyncio.Task[None] | None = None
        self._runner: asyncio.Task[None] | None = None
        self._submits: set[asyncio.Task[None]] = set()
        self._last_progress: dict[str, float] = {}
        self._clock = clock

    # ---- lifecycle -----------------------------------------------------------------------

    async def start(self, inbox: Inbox) -> None:
        """Bind to the client, start handing commands to the core, connect unless told not to."""
        self._inbox = inbox
        self._pump_task = asyncio.create_task(self._pump(), name="discord-pump")
        self.client.handler = self
        if not self._connect:
            return
        token = os.environ.get(self._config.token_env, "")
        if not token:
            raise UserError(
                f"discord: set the bot token in the environment variable {self._config.token_env}"
            )
        await self.client.login(token)
        # discord.py reconnects by itself, with backoff, on dropped gateway connections.
        self._runner = asyncio.create_task(
            self.client.connect(reconnect=True), name="discord-gateway"
        )
        ready = asyncio.create_task(self.client.wait_until_ready())
        done, _ = await asyncio.wait({ready, self._runner}, return_when=asyncio.FIRST_COMPLETED)
        if self._runner in done:
            ready.cancel()
            self._runner.result()

    async def stop(self) -> None:
        """Stop taking events; close the connection we opened; idempotent."""
        if self.client.handler is self:
            self.client.handler = None
        if self._connect and not self.client.is_closed():
            await self.client.close()
        for task in (self._runner, self._pump_task, *self._submits):
            if task is not None and not task.done():
                task.cancel()
        tasks = [t for t in (self._runner, self._pump_task, *self._submits) if t is not None]
        await asyncio.gather(*tasks, return_exceptions=True)
        self._runner = self._pump_task = None

    async def submit(self, invocation: Invocation) -> Ack:
        """Hand one invocation to the core from the adapter's own task; wait for the ack."""
        if self._inbox is None or self._pump_task is None:
            return Ack(AckKind.REJECTED, "the bot is starting; try again in a moment")
        answer: asyncio.Future[Ack] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((invocation, answer))
        return await answer

    async def _pump(self) -> None:
        while True:
            invocation, answer = await self._queue.get()
            task = asyncio.create_task(self._submit_one(invocation, answer))
            self._submits.add(task)
            task.add_done_callback(self._submits.discard)

    async def _submit_one(self, invocation: Invocation, answer: asyncio.Future[Ack]) -> None:
        inbox = self._inbox
        try:
            if inbox is None:
                raise RuntimeError("the discord adapter is not started")
            ack = await inbox.submit(invocation)
        except Exception as exc:
            log.exception("discord: the core failed on %s", invocation.event_id)
            if not answer.done():
                answer.set_exception(exc)
            return
        if not answer.done():
            answer.set_result(ack)

    # ---- the core's side -----------------------------------------------------------------

    async def send(self, target: ReplyTarget, reply: Reply) -> str:
        """Post a result (or its error) where it was asked; the first message's id."""
        data = dict(target.data)
        owner = int(data.get("user_id") or 0)
        posts = render_reply(reply, owner=owner)
        if reply.generation_id:
            self._last_progress.pop(reply.generation_id, None)
        return await self._poster.deliver(data, posts)

    async def show_progress(self, target: ReplyTarget, progress: Progress) -> None:
        """Edit the interaction's response with a progress embed, at most every few seconds."""
        data = dict(target.data)
        if data.get("kind") != inbound.INTERACTION:
            return
        now = self._clock()
        last = self._last_progress.get(progress.generation_id)
        if last is not None and now - last < self._config.progress_interval_seconds:
            return
        self._last_progress[progress.generation_id] = now
        try:
            await self._poster.edit_embed(data, progress_embed(progress))
        except discord.HTTPException as exc:
            # Progress is a courtesy: an expired token or a rate limit must not fail the result.
            log.info("discord: progress edit skipped (%s %s)", exc.status, exc.code)

    # ---- ChallengeVenue ------------------------------------------------------------------

    async def announce(self, channel: str, text: str, images: tuple[OutImage, ...] = ()) -> str:
        """Post a challenge message in a channel (by id); returns the message id."""
        target = self.client.get_partial_messageable(int(channel))
        post = Rendered(content="", embed=None, post=Post("", images[: LIMITS.max_images]))

        async def send() -> discord.Message:
            return await target.send(content=clip(text, LIMITS.max_text), files=post.files())

        message = await self._poster.call(send, "announcement")
        return str(message.id)

    async def votes(self, target: ReplyTarget, message_id: str) -> Votes:
        """Who reacted to the message, with any emoji; the bot's own reactions do not count."""
        channel = self.client.get_partial_messageable(int(target.data["channel_id"]))
        me = self.client.user.id if self.client.user else 0

        async def count() -> frozenset[str]:
            message = await channel.fetch_message(int(message_id))
            voters: set[str] = set()
            for reaction in message.reactions:
                async for user in reaction.users():
                    if user.id != me:
                        voters.add(str(user.id))
            return frozenset(voters)

        return Votes(voters=await self._poster.call(count, "reaction lookup"))

    # ---- slash commands, buttons, the modal ------------------------------------------------

    async def on_command(
        self, interaction: discord.Interaction, command: str, values: dict[str, Any]
    ) -> None:
        """Defer at once (the 3 s rule), then hand the command over and show the core's ack."""
        await interaction.response.defer(thinking=True, ephemeral=command in PRIVATE_COMMANDS)
        invocation = inbound.from_interaction(
            interaction, command, values, nsfw_in_dms=self._config.nsfw_in_dms
        )
        ack = await self.submit(invocation)
        if ack.kind is AckKind.ANSWERED and command == "styles":
            query = str(values.get("query") or "")
            embed, page, pages = styles_page(self._deps.catalog.library, query, 0, ack.message)
            view = pager_view(page, pages, query)
            await interaction.edit_original_response(embed=embed, view=view)
            return
        await self._show_ack(interaction, ack)

    async def on_modal_command(self, interaction: discord.Interaction, command: str) -> None:
        """``/login``: the key is asked in a modal, which only the bot sees."""
        await interaction.response.send_modal(LoginModal())

    async def on_login_key(self, interaction: discord.Interaction, key: str) -> None:
        """The modal's key goes to the core (checked at the horde, stored sealed)."""
        await interaction.response.defer(thinking=True, ephemeral=True)
        invocation = inbound.from_interaction(
            interaction,
            "login",
            {"api_key": key},
            nsfw_in_dms=self._config.nsfw_in_dms,
            private=True,
        )
        await self._show_ack(interaction, await self.submit(invocation))

    async def on_action(
        self, interaction: discord.Interaction, action: Action, generation_id: str, owner: int
    ) -> None:
        """A result button: delete and follow-ups for the requester; rating for anyone."""
        if action is Action.RATE:
            await interaction.response.send_message(
                "thanks for rating! (ratings are not recorded yet)", ephemeral=True
            )
            return
        if interaction.user.id != owner:
            what = {Action.DELETE: "delete", Action.REROLL: "reroll"}.get(action, "vary")
            await interaction.response.send_message(
                REQUESTER_ONLY.format(what=what), ephemeral=True
            )
            return
        if action is Action.DELETE:
            await interaction.response.defer(ephemeral=True)
            if interaction.message is not None:
                await self._poster.call(interaction.message.delete, "delete")
            return
        await interaction.response.defer(thinking=True)
        invocation = inbound.from_interaction(
            interaction, action.value, {"id": generation_id}, nsfw_in_dms=self._config.nsfw_in_dms
        )
        await self._show_ack(interaction, await self.submit(invocation))

    async def on_styles_page(self, interaction: discord.Interaction, page: int, query: str) -> None:
        """Turn a page of the style browser."""
        embed, shown, pages = styles_page(self._deps.catalog.library, query, page)
        await interaction.response.edit_message(embed=embed, view=pager_view(shown, pages, query))

    async def complete(
        self, command: str, option: Option, current: str
    ) -> list[app_commands.Choice[str]]:
        """Type-to-filter choices: styles and categories, models, samplers, command names."""
        word = current.casefold().strip()
        labelled: list[tuple[str, str]] = []
        if option.kind is Kind.STYLE:
            library = self._deps.catalog.library
            labelled += [
                (f"Category: {name} ({len(library.categories[name])})", name)
                for name in sorted(library.categories)
            ]
            labelled += [(f"Style: {name}", name) for name in sorted(library.styles)]
        elif option.kind is Kind.MODEL:
            labelled += [(name, name) for name in self._deps.catalog.reference.names()]
        elif option.kind is Kind.CHOICE:
            labelled += [(name, name) for name in option.choices]
        elif option.kind is Kind.COMMAND:
            labelled += [(name, name) for name in COMMANDS]
        found = [(label, value) for label, value in labelled if word in value.casefold()]
        # Names that start with the typed text come first; Discord shows 25.
        found.sort(key=lambda pair: not pair[1].casefold().startswith(word))
        return [
            app_commands.Choice(name=clip(label, 100), value=value[:100])
            for label, value in found[:25]
        ]

    async def _show_ack(self, interaction: discord.Interaction, ack: Ack) -> None:
        if ack.kind is AckKind.ACCEPTED:
            await interaction.edit_original_response(embed=queued_embed(ack.message))
        elif ack.kind is AckKind.DUPLICATE:
            await interaction.delete_original_response()
        else:
            chunks = split_text(ack.message or "done", LIMITS.max_text)
            await interaction.edit_original_response(content=chunks[0])
            for chunk in chunks[1:]:
                await interaction.followup.send(chunk)

    # ---- mentions and DMs ------------------------------------------------------------------

    async def on_message(self, message: discord.Message) -> None:
        """``@bot draw me …`` in a channel, anything in a DM (when allowed)."""
        me = self.client.user
        if message.author.bot or me is None:
            return
        is_dm = message.guild is None
        if not is_dm and not inbound.mentions_bot(message, me.id):
            return
        if is_dm and not self._config.allow_dms:
            await self._reply(message, NOT_IN_DMS)
            return
        text = inbound.strip_mentions(message.content, me.id)
        try:
            split = split_line(text, bare_is_dream=is_dm, trigger_anywhere=True)
        except UserError as exc:
            await self._reply(message, str(exc))
            return
        if split is None:
            return
        command, rest = split
        if command == "login" and not is_dm:
            await self._reply(message, LOGIN_IN_PUBLIC)
            with contextlib.suppress(discord.HTTPException):
                await message.delete()
            return
        invocation = inbound.from_message(
            message, command, rest, nsfw_in_dms=self._config.nsfw_in_dms
        )
        ack = await self.submit(invocation)
        if ack.kind is AckKind.ACCEPTED:
            if ack.message:
                await self._reply(message, f"note: {ack.message}")
        elif ack.kind in (AckKind.ANSWERED, AckKind.REJECTED):
            for chunk in split_text(ack.message or "done", LIMITS.max_text):
                await self._reply(message, chunk)

    async def _reply(self, message: discord.Message, text: str) -> None:
        async def reply() -> discord.Message:
            return await message.reply(clip(text, LIMITS.max_text), mention_author=False)

        try:
            await self._poster.call(reply, "reply")
        except discord.HTTPException as exc:
            log.warning("discord: could not answer message %s: %s", message.id, exc)
