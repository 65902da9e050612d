"""A Lemmy mention or reply to the bot → an ``Invocation``.

The comment's markdown is the command text once the bot's own mention (``@bot``,
``@bot@instance``, the markdown link lemmy-ui writes for it, or ``!bot``) is taken out. The event
id is the comment's id: Lemmy may notify one comment both as a mention and as a reply, and it is
one request either way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from bots.lemmy import wire
from bots.lemmy.config import LemmyConfig
from core.errors import UserError
from core.grammar import split_line
from core.messages import ChannelRef, Invocation, ReplyTarget, UserRef

PLATFORM = "lemmy"
_UNKNOWN = re.compile(r"\s*[/!]([A-Za-z_][A-Za-z0-9_-]*)(.*)", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Notice:
    """One unread notification: a mention of the bot or a reply to it."""

    kind: Literal["mention", "reply"]
    notice_id: int
    view: wire.CommentView


def mention_pattern(username: str) -> re.Pattern[str]:
    """What a mention of the bot looks like in a comment's markdown."""
    name = re.escape(username)
    link = rf"\[\s*[@!]{name}(?:@[\w.-]+)?\s*\]\([^)\s]*\)"
    bare = rf"(?<![\w@/\[])[@!]{name}(?:@[\w.-]+)?(?![\w-])"
    return re.compile(f"{link}|{bare}", re.IGNORECASE)


def command_text(content: str, username: str) -> str:
    """The comment's text with every mention of the bot removed and spaces tidied."""
    stripped = mention_pattern(username).sub(" ", content)
    return re.sub(r"[ \t]+", " ", stripped).strip()


def event_id(comment: wire.Comment) -> str:
    """The stable id a redelivery of this comment will have again."""
    return f"comment-{comment.id}"


def reply_target(view: wire.CommentView, *, nsfw_allowed: bool) -> ReplyTarget:
    """Where and how the answer goes, as plain data that survives a restart."""
    return ReplyTarget(
        platform=PLATFORM,
        data={
            "post_id": view.post.id,
            "comment_id": view.comment.id,
            "community": view.community.name,
            "community_id": view.community.id,
            "author": view.creator.name,
            "nsfw_allowed": nsfw_allowed,
        },
    )


def to_invocation(view: wire.CommentView, config: LemmyConfig) -> Invocation | None:
    """The request a comment makes of the bot; ``None`` when it asks nothing (or is the bot's).

    An unknown ``/name`` still becomes an invocation of that name, so the core answers it with
    its one-line error and records the event (no second error after a restart).
    """
    comment = view.comment
    if comment.deleted or comment.removed:
        return None
    if view.creator.name.casefold() == config.username.casefold() and view.creator.local:
        return None
    text = command_text(comment.content, config.username)
    try:
        split = split_line(text, trigger_anywhere=True)
    except UserError:
        unknown = _UNKNOWN.match(text)
        split = (unknown[1].casefold(), unknown[2].strip()) if unknown else None
    if split is None:
        return None
    command, rest = split
    nsfw_allowed = config.nsfw_allowed_in(view.community.name, view.community.actor_id)
    return Invocation(
        event_id=event_id(comment),
        user=UserRef(
            platform=PLATFORM,
            user_id=view.creator.actor_id or view.creator.name,
            display_name=view.creator.display_name or view.creator.name,
        ),
        channel=ChannelRef(
            platform=PLATFORM,
            channel_id=view.community.actor_id or view.community.name,
            nsfw_allowed=nsfw_allowed,
        ),
        target=reply_target(view, nsfw_allowed=nsfw_allowed),
        text=rest,
        command=command,
    )
