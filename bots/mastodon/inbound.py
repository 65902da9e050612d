"""A Mastodon mention notification → an ``Invocation`` (or ``None`` when it asks nothing).

The event id is the status id: Mastodon gives one status one id for good, so a notification
seen again after a restart, by the stream and by polling alike, is the same event to the core.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from bots.mastodon.status_text import status_text
from core.commands import DREAM
from core.errors import UserError
from core.grammar import split_line
from core.messages import ChannelRef, Invocation, ReplyTarget, UserRef

PLATFORM = "mastodon"
_SLASH_NAME = re.compile(r"\s*[/!]([A-Za-z_][A-Za-z0-9_-]*)")


def parse_mention(
    notification: Mapping[str, Any], *, bot_account_id: str, nsfw_allowed: bool
) -> Invocation | None:
    """The command a mention asks for; ``None`` for other notifications and for chatter.

    A mention with neither ``draw me …`` nor a command word is ignored silently, as the Horde's
    fediverse bot does. An unknown ``/word`` becomes an invocation of that name, so the core
    claims the event and answers with its one-line error (and the closest names).
    """
    if notification.get("type") != "mention":
        return None
    status = notification.get("status")
    account = notification.get("account")
    if not isinstance(status, Mapping) or not isinstance(account, Mapping):
        return None
    account_id = str(account.get("id", ""))
    if not account_id or account_id == bot_account_id:
        return None
    text = status_text(str(status.get("content") or ""))
    try:
        split = split_line(text, trigger_anywhere=True)
    except UserError:
        unknown = _SLASH_NAME.match(text)
        split = (unknown[1], text[unknown.end() :].strip()) if unknown else None
    if split is None:
        return None
    command, rest = split
    if command == DREAM.name:
        # Spelled as a command so the planner cannot read a first word such as "styles" in
        # "draw me styles of rain" as another command.
        rest = f"/{DREAM.name} {rest}"
    visibility = str(status.get("visibility") or "public")
    acct = str(account.get("acct") or account.get("username") or account_id)
    return Invocation(
        event_id=str(status["id"]),
        user=UserRef(
            platform=PLATFORM,
            user_id=account_id,
            display_name=str(account.get("display_name") or acct),
        ),
        channel=ChannelRef(
            platform=PLATFORM,
            channel_id=visibility,
            nsfw_allowed=nsfw_allowed,
            is_dm=visibility == "direct",
        ),
        target=ReplyTarget(
            platform=PLATFORM,
            data={
                "status_id": str(status["id"]),
                "account_id": account_id,
                "acct": acct,
                "visibility": visibility,
            },
        ),
        text=rest,
        command=command,
        received_at=_created_at(notification),
    )


def _created_at(notification: Mapping[str, Any]) -> datetime:
    value = notification.get("created_at")
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return datetime.now(UTC)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return datetime.now(UTC)


def is_public_login(invocation: Invocation) -> bool:
    """A ``/login`` anyone but the bot and the user could read: its key must not be used."""
    return invocation.command == "login" and not invocation.channel.is_dm


def id_order(value: str) -> tuple[int, str]:
    """A sort key for Mastodon ids: numeric strings compare by length first, then digits."""
    return (len(value), value)
