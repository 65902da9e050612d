"""Slash commands derived from ``core.commands``: one app command per command of the table.

Options, types, ranges and help come from the table, so a command or option added there appears
on Discord without code here. Only ``/login`` differs: it takes its key through a modal, so the
secret never sits in a visible command option.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Optional, Protocol

import discord
from discord import app_commands

from core.commands import COMMANDS, Command, Kind, Option
from core.shaping import clip

# Discord's own limits on command and option descriptions and on autocomplete answers.
MAX_DESCRIPTION = 100
MAX_CHOICES = 25
MAX_OPTIONS = 25
# Answers about the user's own account are shown to them alone.
PRIVATE_COMMANDS = frozenset({"login", "logout", "kudos", "transfer", "cancel"})
MODAL_COMMANDS = frozenset({"login"})
# Option kinds whose values the user picks from a list that can exceed Discord's 25 choices.
AUTOCOMPLETED = frozenset({Kind.STYLE, Kind.MODEL, Kind.CHOICE, Kind.COMMAND})
# Options the table takes as an address that Discord users give as an uploaded file instead.
ATTACHED = frozenset({"source_image"})


class CommandHandler(Protocol):
    """What the slash commands call; the adapter implements it."""

    async def on_command(
        self, interaction: discord.Interaction, command: str, values: dict[str, Any]
    ) -> None: ...

    async def on_modal_command(self, interaction: discord.Interaction, command: str) -> None: ...

    async def complete(
        self, command: str, option: Option, current: str
    ) -> list[app_commands.Choice[str]]: ...


HandlerSource = Callable[[], CommandHandler | None]


def annotation(option: Option) -> Any:
    """The Python annotation discord.py turns into the option's Discord type and range."""
    if option.target in ATTACHED:
        return discord.Attachment
    low, high = option.minimum, option.maximum
    if option.kind is Kind.INT:
        if low is not None and high is not None:
            return app_commands.Range[int, int(low), int(high)]
        return int
    if option.kind is Kind.FLOAT:
        if low is not None and high is not None:
            return app_commands.Range[float, float(low), float(high)]
        return float
    if option.kind is Kind.FLAG:
        return bool
    return str


def plain(value: Any) -> Any:
    """An option's value as the core takes it: an uploaded file becomes its address."""
    if isinstance(value, discord.Attachment):
        return value.url
    return value


def slash_options(command: Command) -> list[Option]:
    """The options a command shows on Discord, in table order."""
    if command.name in MODAL_COMMANDS:
        return []
    return list(command.options)


def _signature(options: Sequence[Option]) -> inspect.Signature:
    params = [
        inspect.Parameter(
            "interaction", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=discord.Interaction
        )
    ]
    for option in options:
        kind = annotation(option)
        params.append(
            inspect.Parameter(
                option.name,
                inspect.Parameter.KEYWORD_ONLY,
                annotation=kind if option.required else Optional[kind],  # noqa: UP045
                default=inspect.Parameter.empty if option.required else None,
            )
        )
    return inspect.Signature(params)


def build_command(command: Command, handler: HandlerSource) -> app_commands.Command[Any, Any, Any]:
    """One app command for ``command``; its callback hands the typed values to the handler."""
    options = slash_options(command)

    async def callback(interaction: discord.Interaction, **values: Any) -> None:
        target = handler()
        if target is None:
            await interaction.response.send_message(
                "the bot is still starting; try again in a moment", ephemeral=True
            )
            return
        if command.name in MODAL_COMMANDS:
            await target.on_modal_command(interaction, command.name)
            return
        given = {key: plain(value) for key, value in values.items() if value is not None}
        await target.on_command(interaction, command.name, given)

    # discord.py reads the options from the callback's signature: give it the table's.
    callback.__signature__ = _signature(options)  # type: ignore[attr-defined]
    callback.__discord_app_commands_param_description__ = {  # type: ignore[attr-defined]
        option.name: clip(option.help, MAX_DESCRIPTION) for option in options
    }
    slash: app_commands.Command[Any, Any, Any] = app_commands.Command(
        name=command.name,
        description=clip(command.help, MAX_DESCRIPTION),
        callback=callback,  # type: ignore[arg-type]
    )
    for option in options:
        if option.kind in AUTOCOMPLETED:
            slash.autocomplete(option.name)(_completer(command, option, handler))  # type: ignore[arg-type]
    return slash


def _completer(
    command: Command, option: Option, handler: HandlerSource
) -> Callable[[discord.Interaction, str], Awaitable[list[app_commands.Choice[str]]]]:
    async def complete(
        interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        target = handler()
        if target is None:
            return []
        return (await target.complete(command.name, option, current))[:MAX_CHOICES]

    return complete


def build_all(handler: HandlerSource) -> list[app_commands.Command[Any, Any, Any]]:
    """Every command of the table as an app command."""
    return [build_command(command, handler) for command in COMMANDS.values()]
