"""A Reddit comment or private message → an ``Invocation``, a refusal to post, or nothing.

Pure: the adapter reads praw's objects into ``Item`` values (in its thread) and decides here.
The event id is the comment's or message's fullname (``t1_…``, ``t4_…``), so a comment seen in
the subreddit stream and again as an inbox mention is one request in the core.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from bots.reddit.config import RedditConfig
from core.errors import UserError
from core.grammar.lines import split_line, strip_trigger
from core.messages import ChannelRef, Invocation, ReplyTarget, UserRef

PLATFORM = "reddit"


class Source(StrEnum):
    """Where the adapter saw an item."""

    STREAM = "stream"  # a new comment in a listened subreddit
    MENTION = "mention"  # an inbox username mention
    REPLY = "reply"  # an inbox reply to the bot's comment or post
    MESSAGE = "message"  # a private message


@dataclass(frozen=True, slots=True)
class Item:
    """One comment or message as the adapter saw it."""

    fullname: str
    author: str
    body: str
    subreddit: str | None
    source: Source
    created_utc: float = 0.0


def login_in_public(bot: str) -> str:
    """The answer to ``/login`` in a comment: it is public, so the key is never used."""
    return (
        f"never post your AI Horde key in a comment: send /login KEY to u/{bot} in a private "
        "message, and delete that comment now"
    )


def _mention(bot: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w/])/?u/{re.escape(bot)}\b[:,]?", re.IGNORECASE)


def read_item(item: Item, *, bot: str, config: RedditConfig) -> Invocation | str | None:
    """What to do with ``item``: submit an ``Invocation``, post a one-line refusal, or ignore.

    A comment that neither names the bot nor answers it must say ``draw me`` or ``/command``;
    a first word that happens to be a command name (``help``) in a stranger's comment is not one.
    """
    if not item.author or item.author.casefold() == bot.casefold():
        return None
    if item.subreddit is not None and not config.allows(item.subreddit):
        return None
    mention = _mention(bot)
    named = mention.search(item.body) is not None
    text = mention.sub(" ", item.body).strip()
    addressed = named or item.source is not Source.STREAM
    if not addressed:
        explicit = text.startswith(("/", "!")) or strip_trigger(text, anywhere=True) is not None
        if not explicit:
            return None
    try:
        split = split_line(text, trigger_anywhere=True)
    except UserError as exc:
        # "/r/pics" in a stranger's comment is no command to us; to the bot it is a typo.
        return str(exc) if addressed else None
    if split is None:
        return None
    command, rest = split
    is_dm = item.source is Source.MESSAGE
    if command == "login" and not is_dm:
        return login_in_public(bot)
    subreddit = item.subreddit or ""
    channel = subreddit or f"dm:{item.author}"
    return Invocation(
        event_id=item.fullname,
        user=UserRef(platform=PLATFORM, user_id=item.author, display_name=item.author),
        channel=ChannelRef(
            platform=PLATFORM,
            channel_id=channel,
            nsfw_allowed=bool(subreddit) and config.nsfw_allowed(subreddit),
            is_dm=is_dm,
        ),
        target=ReplyTarget(
            platform=PLATFORM,
            data={"thing": item.fullname, "author": item.author, "subreddit": subreddit},
        ),
        text=rest,
        command=command,
    )
