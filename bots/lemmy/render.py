"""A ``Reply`` → Lemmy markdown: caption, images as ``![alt](url)``, NSFW behind a spoiler block.

Each comment or post the bot makes ends in an invisible link-reference line,
``[//]: # (hordebot:<key>)``, keyed by the generation id, so after a crash the bot can find what it
already posted instead of posting it again.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from core.shaping import clip

MARKER_PREFIX = "hordebot:"
# Lemmy refuses comments over 10 000 characters; answers (help text) are cut well before.
MAX_ANSWER = 9000
MAX_TITLE = 200
_UNSAFE_ALT = re.compile(r"[\[\]\\\n\r]+")


def marker(key: str) -> str:
    """The invisible line that tags a comment with ``key``."""
    return f"[//]: # ({MARKER_PREFIX}{key})"


def has_marker(content: str, key: str) -> bool:
    """Whether ``content`` carries the marker of ``key`` on a line of its own."""
    return marker(key) in content.splitlines()


def image_markdown(url: str, alt: str) -> str:
    """One image; the alt text cannot break out of its brackets."""
    safe = " ".join(_UNSAFE_ALT.sub(" ", alt).split())
    return f"![{safe}]({url})"


def images_block(images: Sequence[tuple[str, str]], *, spoiler: bool) -> str:
    """``(url, alt)`` pairs as markdown images, hidden in a spoiler block when ``spoiler``."""
    if not images:
        return ""
    lines = "\n\n".join(image_markdown(url, alt) for url, alt in images)
    if spoiler:
        return f"::: spoiler NSFW\n{lines}\n:::"
    return lines


def result_comment(
    caption: str,
    images: Sequence[tuple[str, str]],
    *,
    spoiler: bool,
    key: str,
    gallery_url: str | None = None,
) -> str:
    """A result as one comment: caption, images, a link to the gallery post, the marker."""
    parts = [caption.strip()] if caption.strip() else []
    block = images_block(images, spoiler=spoiler)
    if block:
        parts.append(block)
    if gallery_url:
        parts.append(f"Also in the gallery: {gallery_url}")
    parts.append(marker(key))
    return "\n\n".join(parts)


def answer_comment(text: str, key: str) -> str:
    """A text answer (help, an error line) with its marker."""
    return f"{clip(text.strip(), MAX_ANSWER)}\n\n{marker(key)}"


def post_title(prompt: str, fallback: str) -> str:
    """A post title from the prompt (Lemmy allows 200 characters and no newlines)."""
    title = " ".join((prompt or fallback).split())
    return clip(title or "AI Horde image", MAX_TITLE)


def announcement(text: str, images: Sequence[tuple[str, str]]) -> tuple[str, str]:
    """A challenge announcement as a post: the first line as title, everything as body."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    body = text.strip()
    block = images_block(images, spoiler=False)
    if block:
        body = f"{body}\n\n{block}" if body else block
    return post_title(first, "Challenge"), body
