"""Discord events (an interaction, a message) → ``Invocation`` and the reply target as data."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import discord

from core.messages import ChannelRef, Invocation, ReplyTarget, UserRef

PLATFORM = "discord"
INTERACTION = "interaction"
MESSAGE = "message"
_MENTION = re.compile(r"<@!?(\d+)>")


def channel_ref(channel: Any, channel_id: int, *, is_dm: bool, nsfw_in_dms: bool) -> ChannelRef:
    """The channel's policy facts: NSFW only in age-restricted channels (DMs per config)."""
    if is_dm:
        nsfw = nsfw_in_dms
    else:
        is_nsfw = getattr(channel, "is_nsfw", None)
        nsfw = bool(is_nsfw()) if callable(is_nsfw) else False
    return ChannelRef(platform=PLATFORM, channel_id=str(channel_id), nsfw_allowed=nsfw, is_dm=is_dm)


def interaction_target(interaction: discord.Interaction) -> ReplyTarget:
    """Everything needed to answer an interaction later, also from a fresh process."""
    return ReplyTarget(
        platform=PLATFORM,
        data={
            "kind": INTERACTION,
            "channel_id": str(interaction.channel_id or ""),
            "user_id": str(interaction.user.id),
            "guild_id": str(interaction.guild_id or ""),
            "application_id": str(interaction.application_id),
            "token": interaction.token,
            "interaction_id": str(interaction.id),
            "created_at": interaction.created_at.isoformat(),
        },
    )


def from_interaction(
    interaction: discord.Interaction,
    command: str,
    options: Mapping[str, Any],
    *,
    nsfw_in_dms: bool,
    private: bool = False,
) -> Invocation:
    """A slash command, a button or a modal as an invocation; the interaction id is its event id.

    ``private``: the input was seen by the bot alone (a modal), as private as a DM.
    """
    is_dm = interaction.guild_id is None
    channel = channel_ref(
        interaction.channel,
        interaction.channel_id or 0,
        is_dm=is_dm,
        nsfw_in_dms=nsfw_in_dms,
    )
    if private and not is_dm:
        channel = ChannelRef(
            platform=PLATFORM,
            channel_id=channel.channel_id,
            nsfw_allowed=channel.nsfw_allowed,
            is_dm=True,
        )
    return Invocation(
        event_id=f"interaction:{interaction.id}",
        user=_user(interaction.user),
        channel=channel,
        target=interaction_target(interaction),
        options=dict(options),
        command=command,
    )


def strip_mentions(text: str, bot_id: int) -> str:
    """The message text without mentions of the bot (other mentions stay: they may be prompt)."""
    return " ".join(_MENTION.sub(lambda m: "" if int(m[1]) == bot_id else m[0], text).split())


def mentions_bot(message: discord.Message, bot_id: int) -> bool:
    """Whether the message addresses the bot by mention (not a reply ping alone)."""
    return any(int(found) == bot_id for found in _MENTION.findall(message.content))


def message_target(message: discord.Message) -> ReplyTarget:
    """Where to answer a message: a reply to it, in its channel."""
    return ReplyTarget(
        platform=PLATFORM,
        data={
            "kind": MESSAGE,
            "channel_id": str(message.channel.id),
            "user_id": str(message.author.id),
            "guild_id": str(message.guild.id) if message.guild else "",
            "message_id": str(message.id),
            "created_at": message.created_at.isoformat(),
        },
    )


def from_message(
    message: discord.Message, command: str, text: str, *, nsfw_in_dms: bool
) -> Invocation:
    """A mention or DM as an invocation; the message id is its event id."""
    is_dm = message.guild is None
    return Invocation(
        event_id=f"message:{message.id}",
        user=_user(message.author),
        channel=channel_ref(
            message.channel, message.channel.id, is_dm=is_dm, nsfw_in_dms=nsfw_in_dms
        ),
        target=message_target(message),
        text=text,
        command=command,
    )


def _user(user: discord.abc.User) -> UserRef:
    return UserRef(platform=PLATFORM, user_id=str(user.id), display_name=user.display_name)
