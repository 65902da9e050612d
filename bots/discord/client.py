"""The discord.py client: the command tree derived from the table, buttons, mentions.

The client is built before the adapter is bound to it (``handler``), so a test harness or a
supervisor can run it the way discord.py clients are run; events that come before binding get
a polite "starting" answer.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import discord
from discord import app_commands

from bots.discord.commands import CommandHandler, build_all
from bots.discord.components import ComponentHandler, ResultButton, StylesPager
from bots.discord.config import DiscordConfig

log = logging.getLogger(__name__)


class Handler(CommandHandler, ComponentHandler, Protocol):
    """Everything the client hands to the adapter."""

    async def on_message(self, message: discord.Message) -> None: ...


class DiscordBot(discord.Client):
    """A ``discord.Client`` with hordebot's slash commands and persistent buttons."""

    def __init__(self, config: DiscordConfig, **options: Any) -> None:
        intents = discord.Intents.default()
        # Mentions ("@bot draw me …") need the text of messages.
        intents.message_content = True
        super().__init__(intents=intents, **options)
        self.config = config
        self.handler: Handler | None = None
        self.tree = app_commands.CommandTree(self)
        for command in build_all(lambda: self.handler):
            self.tree.add_command(command)
        self._synced = False

    async def setup_hook(self) -> None:
        """Buttons of results posted before a restart keep working: match them by template."""
        self.add_dynamic_items(ResultButton, StylesPager)

    async def on_ready(self) -> None:
        """Sync the commands once per process (to the configured guilds, else globally)."""
        if self._synced:
            return
        self._synced = True
        if self.config.guild_ids:
            for guild_id in self.config.guild_ids:
                guild = discord.Object(id=guild_id)
                self.tree.copy_global_to(guild=guild)
                await self.tree.sync(guild=guild)
        else:
            await self.tree.sync()
        log.info("discord: logged in as %s, commands synced", self.user)

    async def on_message(self, message: discord.Message) -> None:
        """Hand mentions and DMs to the adapter; the client's own messages never."""
        if self.handler is None or self.user is None or message.author.id == self.user.id:
            return
        await self.handler.on_message(message)
