"""A ``Reply`` (or a one-line answer) → the statuses to post, as plain values.

Nothing here calls Mastodon: the adapter posts each ``StatusPlan`` in order, threading every one
after the first under the one before. Visibility follows the mention (a direct message is
answered directly, followers-only stays followers-only); a public answer is posted unlisted when
the bot posted publicly a short while ago, so a busy bot does not flood the public timelines.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bots.mastodon.limits import LIMITS
from core.messages import OutImage, Reply
from core.shaping import clip, shape, split_text

# Answers longer than one status go out as a short thread; past this many, the rest is cut.
MAX_TEXT_STATUSES = 4


@dataclass(frozen=True, slots=True)
class StatusPlan:
    """One status to post: text, media (bytes with alt text) and how it is shown."""

    text: str
    visibility: str
    idempotency_key: str
    media: tuple[OutImage, ...] = ()
    sensitive: bool = False
    spoiler_text: str = ""


def reply_visibility(
    asked: str, *, last_public_post: float | None, now: float, window_s: float
) -> str:
    """The mention's visibility, with ``public`` lowered to ``unlisted`` inside the window."""
    if asked not in ("public", "unlisted", "private", "direct"):
        return "unlisted"
    if asked == "public" and last_public_post is not None and now - last_public_post < window_s:
        return "unlisted"
    return asked


def quiet_visibility(asked: str) -> str:
    """Where short answers and errors go: never the public timelines, never wider than asked."""
    return asked if asked in ("private", "direct") else "unlisted"


def mention_of(target: Mapping[str, Any]) -> str:
    """``@acct`` of the user to answer; ``acct`` is ``name`` or ``name@their.server``."""
    acct = str(target.get("acct") or "").lstrip("@")
    return f"@{acct}" if acct else ""


def idempotency_key(*parts: str) -> str:
    """A stable key for one status: the same reply sent again after a restart posts once."""
    digest = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:40]
    return f"hordebot-{digest}"


def plan_reply(
    reply: Reply, target: Mapping[str, Any], *, visibility: str, content_warning: str
) -> list[StatusPlan]:
    """The statuses that carry a generation's result (or its error line)."""
    key_base = reply.generation_id or str(target.get("status_id", ""))
    mention = mention_of(target)
    if reply.error:
        text = clip(f"{mention} {_one_line(reply.error)}".strip(), LIMITS.max_text)
        return [StatusPlan(text, quiet_visibility(visibility), idempotency_key(key_base, "0"))]
    nsfw = any(image.nsfw for image in reply.images)
    plans = []
    for index, post in enumerate(shape(reply, LIMITS, mention=mention)):
        plans.append(
            StatusPlan(
                text=post.text,
                visibility=visibility,
                idempotency_key=idempotency_key(key_base, str(index)),
                media=post.images,
                sensitive=nsfw,
                spoiler_text=content_warning if nsfw else "",
            )
        )
    return plans


def plan_answer(text: str, target: Mapping[str, Any], *, key: str) -> list[StatusPlan]:
    """An answer the core gave at once (help, styles, an error): a thread of text statuses."""
    mention = mention_of(target)
    visibility = quiet_visibility(str(target.get("visibility", "public")))
    room = LIMITS.max_text - len(mention) - 1
    chunks = split_text(text, room, most=MAX_TEXT_STATUSES)
    return [
        StatusPlan(f"{mention} {chunk}".strip(), visibility, idempotency_key(key, str(index)))
        for index, chunk in enumerate(chunks)
    ]


def plan_error(message: str, target: Mapping[str, Any], *, key: str) -> StatusPlan:
    """A refusal as one line under the mention."""
    mention = mention_of(target)
    text = clip(f"{mention} {_one_line(message)}".strip(), LIMITS.max_text)
    visibility = quiet_visibility(str(target.get("visibility", "public")))
    return StatusPlan(text, visibility, idempotency_key(key, "error"))


def _one_line(text: str) -> str:
    return " ".join(text.split())
