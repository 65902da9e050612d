"""A console line → an ``Invocation``: ``/command args`` or a bare ``draw me …`` line."""

from __future__ import annotations

from core.messages import ChannelRef, Invocation, ReplyTarget, UserRef

PLATFORM = "console"
_DRAW_TRIGGERS = ("draw me", "draw us", "draw for me", "draw for us")


def parse_line(
    line: str, *, session: str, number: int, user: str, nsfw_allowed: bool
) -> Invocation | None:
    """One input line as an invocation; ``None`` for blank lines and comments.

    Lines are numbered within a console session, so the event id carries the session: a second run
    of the same script is new input, not a redelivery.
    """
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    if text.startswith("/"):
        command, _, rest = text[1:].partition(" ")
        command = command.lower() or "help"
        body: str | None = rest.strip()
    elif text.lower().startswith(_DRAW_TRIGGERS):
        command, body = "dream", text
    else:
        # A bare line is a prompt: the console is a drawing prompt, not a chat.
        command, body = "dream", text
    return Invocation(
        event_id=f"console-{session}-{number}",
        user=UserRef(platform=PLATFORM, user_id=user, display_name=user),
        channel=ChannelRef(platform=PLATFORM, channel_id="stdin", nsfw_allowed=nsfw_allowed),
        target=ReplyTarget(platform=PLATFORM, data={"line": number}),
        text=body,
        command=command,
    )
