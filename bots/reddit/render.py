"""A ``Reply`` → the texts Reddit shows: image post titles and bodies, and the reply comment.

Reddit comments cannot carry images, so the images go to the bot's own subreddit as a post and
the reply links it. Every text the bot posts ends with an invisible-enough marker
(``^(hordebot:<id>)``) by which the adapter finds its own earlier post or comment, so a second
``send`` after a crash posts nothing new.
"""

from __future__ import annotations

from dataclasses import dataclass

from bots.reddit.limits import LIMITS, TITLE
from core.messages import Reply
from core.shaping import Post, caption, clip

MARKER = "hordebot:"
FOOTER = "I am a bot; images by the AI Horde"


@dataclass(frozen=True, slots=True)
class PostedImages:
    """An image post the bot made: its fullname, its link and its images' links."""

    fullname: str
    link: str
    image_urls: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        """For the store cursor that remembers it."""
        return {"fullname": self.fullname, "link": self.link, "images": list(self.image_urls)}

    @classmethod
    def from_json(cls, value: dict[str, object]) -> PostedImages:
        """Read back from the store."""
        images = value.get("images")
        return cls(
            fullname=str(value["fullname"]),
            link=str(value["link"]),
            image_urls=tuple(str(i) for i in images) if isinstance(images, list) else (),
        )


def token(key: str) -> str:
    """The marker of one reply: the first 8 characters of its generation (or event) id."""
    return MARKER + key[:8]


def _footer(mark: str) -> str:
    return f"^({FOOTER} · {mark})"


def post_title(reply: Reply, part: int, parts: int) -> str:
    """The image post's title: the prompt, numbered when the images need several posts."""
    prompt = str(reply.metadata.get("prompt") or reply.text or "AI Horde images")
    suffix = f" ({part + 1}/{parts})" if parts > 1 else ""
    return clip(prompt, TITLE - len(suffix)) + suffix


def post_body(reply: Reply, mark: str) -> str:
    """The image post's text: the caption and the marker of this part."""
    lines = [line for line in caption(reply).splitlines() if line]
    return "\n\n".join([*lines, _footer(mark)])


def gallery_captions(post: Post) -> list[str]:
    """One caption per image: its alt text, cut to Reddit's 180 characters."""
    return [clip(image.alt_text, LIMITS.max_alt_text) for image in post.images]


def is_nsfw(reply: Reply) -> bool:
    """Whether the images must be marked NSFW."""
    return any(image.nsfw for image in reply.images)


def result_comment(reply: Reply, posted: list[PostedImages], mark: str, subreddit: str) -> str:
    """The reply comment: caption, NSFW note, links to the post(s) and images, marker."""
    if reply.error:
        return "\n\n".join([clip(reply.error, LIMITS.max_text), _footer(mark)])
    parts = [line for line in clip(caption(reply), LIMITS.max_text).splitlines() if line]
    if posted and is_nsfw(reply):
        parts.append("**NSFW**: the images are marked NSFW; open them only where that is fine.")
    number = 0
    for index, post in enumerate(posted):
        links = []
        for url in post.image_urls:
            number += 1
            links.append(f"[Image {number}]({url})")
        where = f"[post on r/{subreddit}]({post.link})"
        label = f"Part {index + 1}: " if len(posted) > 1 else ""
        parts.append(label + " · ".join([*links, where]))
    parts.append(_footer(mark))
    return "\n\n".join(parts)


def answer_comment(text: str, mark: str) -> str:
    """A short answer (help, an error line) with the marker."""
    return "\n\n".join([clip(text, LIMITS.max_text), _footer(mark)])


def clip_title(text: str) -> str:
    """A post title from free text: its first line, cut to Reddit's 300 characters."""
    first = next((line.strip() for line in text.splitlines() if line.strip()), "hordebot")
    return clip(first, TITLE)


def clip_caption(text: str) -> str:
    """A gallery caption, cut to Reddit's 180 characters."""
    return clip(text, LIMITS.max_alt_text)
