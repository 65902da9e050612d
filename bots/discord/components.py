"""Buttons and the login modal. Button state lives in the ``custom_id``, so buttons keep
working after a restart: discord.py matches them by template, no view needs to be remembered."""

from __future__ import annotations

import re
from typing import Any, Protocol

import discord

from core.messages import Action

_ACTIONS = "|".join(a.value for a in Action)
RESULT_TEMPLATE = rf"hb:(?P<action>{_ACTIONS}):(?P<gen>[0-9a-f-]{{8,40}}):(?P<user>\d+)"
PAGER_TEMPLATE = r"hb:styles:(?P<page>\d+):(?P<query>.{0,60})"
_LABELS = {
    Action.REROLL: ("Reroll", "🎲", discord.ButtonStyle.primary),
    Action.VARIATIONS: ("Variations", "🔀", discord.ButtonStyle.secondary),
    Action.DELETE: ("Delete", "🗑️", discord.ButtonStyle.danger),
    Action.RATE: ("Rate", "⭐", discord.ButtonStyle.secondary),
}


class ComponentHandler(Protocol):
    """What the buttons and the modal call; the adapter implements it."""

    async def on_action(
        self, interaction: discord.Interaction, action: Action, generation_id: str, owner: int
    ) -> None: ...

    async def on_styles_page(
        self, interaction: discord.Interaction, page: int, query: str
    ) -> None: ...

    async def on_login_key(self, interaction: discord.Interaction, key: str) -> None: ...


def _handler(interaction: discord.Interaction) -> ComponentHandler | None:
    found: ComponentHandler | None = getattr(interaction.client, "handler", None)
    return found


async def _starting(interaction: discord.Interaction) -> None:
    await interaction.response.send_message(
        "the bot is still starting; try again in a moment", ephemeral=True
    )


class ResultButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]], template=RESULT_TEMPLATE
):
    """Reroll, Variations, Delete or Rate under a result, for one generation and its requester."""

    def __init__(self, action: Action, generation_id: str, owner: int) -> None:
        label, emoji, style = _LABELS[action]
        super().__init__(
            discord.ui.Button(
                label=label,
                emoji=emoji,
                style=style,
                custom_id=f"hb:{action.value}:{generation_id}:{owner}",
            )
        )
        self.action = action
        self.generation_id = generation_id
        self.owner = owner

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction,
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> ResultButton:
        return cls(Action(match["action"]), match["gen"], int(match["user"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        handler = _handler(interaction)
        if handler is None:
            await _starting(interaction)
            return
        await handler.on_action(interaction, self.action, self.generation_id, self.owner)


class StylesPager(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]], template=PAGER_TEMPLATE
):
    """A page button of the style browser; the page and the query ride in the custom id."""

    def __init__(self, page: int, query: str, label: str) -> None:
        super().__init__(
            discord.ui.Button(
                label=label,
                style=discord.ButtonStyle.secondary,
                custom_id=f"hb:styles:{page}:{query[:60]}",
            )
        )
        self.page = page
        self.query = query

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction,
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> StylesPager:
        label = item.label if isinstance(item, discord.ui.Button) and item.label else "page"
        return cls(int(match["page"]), match["query"], label)

    async def callback(self, interaction: discord.Interaction) -> None:
        handler = _handler(interaction)
        if handler is None:
            await _starting(interaction)
            return
        await handler.on_styles_page(interaction, self.page, self.query)


class LoginModal(discord.ui.Modal, title="Log in to the AI Horde"):
    """Takes the API key privately: a modal is seen by the bot alone, never by the channel."""

    key: discord.ui.TextInput[LoginModal] = discord.ui.TextInput(
        label="Your AI Horde API key",
        placeholder="from https://aihorde.net/register",
        min_length=1,
        max_length=100,
    )

    def __init__(self) -> None:
        super().__init__(custom_id="hb:login", timeout=600)

    async def on_submit(self, interaction: discord.Interaction) -> None:
        handler = _handler(interaction)
        if handler is None:
            await _starting(interaction)
            return
        await handler.on_login_key(interaction, self.key.value.strip())


def result_view(actions: tuple[Action, ...], generation_id: str, owner: int) -> discord.ui.View:
    """The buttons under a result; Rate is always offered."""
    view = discord.ui.View(timeout=None)
    wanted = [*actions, Action.RATE] if Action.RATE not in actions else list(actions)
    for action in wanted:
        view.add_item(ResultButton(action, generation_id, owner))
    return view


def pager_view(page: int, pages: int, query: str) -> discord.ui.View | None:
    """Previous/next buttons of the style browser, or ``None`` when everything fits one page."""
    if pages <= 1:
        return None
    view = discord.ui.View(timeout=None)
    if page > 0:
        view.add_item(StylesPager(page - 1, query, "◀ Previous"))
    if page < pages - 1:
        view.add_item(StylesPager(page + 1, query, "Next ▶"))
    return view
