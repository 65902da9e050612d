"""A ``Reply`` cut to what one platform can show: captions, text length, images per post.

Every adapter posts the same facts (the prompt, the style, the model, the seed, the kudos, a note
when images were censored); only the room differs. Adapters call ``shape`` with their
``PlatformLimits`` and post the ``Post`` values in order, the first as the reply itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.contract import PlatformLimits
from core.messages import OutImage, Reply

ELLIPSIS = "…"
_DETAILS = ("style", "category", "model", "seed", "kudos")


@dataclass(frozen=True, slots=True)
class Post:
    """One message to post: its text and at most ``limits.max_images`` images."""

    text: str
    images: tuple[OutImage, ...] = ()


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, ending in an ellipsis when it was cut."""
    if limit <= 0:
        return ""
    if len(text) <= limit:
        return text
    return text[: limit - 1].rstrip() + ELLIPSIS


def details_line(reply: Reply) -> str:
    """``style: anime · model: X · seed: 1 · kudos: 12``, from the reply's metadata."""
    meta = reply.metadata
    parts = []
    for key in _DETAILS:
        value = meta.get(key)
        if value in (None, ""):
            continue
        if isinstance(value, float):
            value = f"{value:g}"
        parts.append(f"{key}: {value}")
    return " · ".join(parts)


def censored_note(reply: Reply) -> str:
    """A plain note when the horde censored images, else an empty string."""
    count = sum(1 for image in reply.images if image.censored)
    if not count:
        return ""
    if count == len(reply.images):
        return "The horde censored the images (NSFW is not allowed here, or a worker flagged them)."
    return f"The horde censored {count} of {len(reply.images)} images."


def caption(reply: Reply, *, mention: str = "") -> str:
    """The text of a result post: mention, prompt, details and any censorship note, one per line."""
    if reply.error:
        return f"{mention} {reply.error}".strip()
    lines = [f"{mention} {reply.text}".strip()] if reply.text or mention else []
    details = details_line(reply)
    if details:
        lines.append(details)
    note = censored_note(reply)
    # The reply text from the service already says how many were censored; say it once.
    if note and "censored" not in reply.text:
        lines.append(note)
    return "\n".join(line for line in lines if line)


def shape(reply: Reply, limits: PlatformLimits, *, mention: str = "") -> list[Post]:
    """The posts that carry ``reply`` on a platform with ``limits``; never an empty list.

    Images beyond ``max_images`` go into follow-up posts (each with a short "k/n" text), alt texts
    are cut to ``max_alt_text`` and oversized images are left out with a note, so a platform never
    refuses a post for its size.
    """
    full = caption(reply, mention=mention)
    if reply.error:
        return [Post(clip(full, limits.max_text))]
    fitting: list[OutImage] = []
    dropped = 0
    for image in reply.images:
        if len(image.data) > limits.max_upload_bytes:
            dropped += 1
            continue
        fitting.append(_with_alt(image, limits.max_alt_text))
    text = clip(full, limits.max_text)
    if dropped:
        # The note is what the user must not miss: the caption gives way to it.
        note = f"({dropped} image{'s' if dropped > 1 else ''} too large for this platform)"
        room = limits.max_text - len(note) - 1
        text = f"{clip(full, room)}\n{note}" if room > 0 else clip(note, limits.max_text)
    per_post = max(limits.max_images, 1)
    chunks = [tuple(fitting[i : i + per_post]) for i in range(0, len(fitting), per_post)]
    if not chunks:
        return [Post(text)]
    posts = [Post(text, chunks[0])]
    for number, chunk in enumerate(chunks[1:], start=2):
        follow = f"{mention} ({number}/{len(chunks)})".strip()
        posts.append(Post(clip(follow, limits.max_text), chunk))
    return posts


def _with_alt(image: OutImage, limit: int) -> OutImage:
    if len(image.alt_text) <= limit:
        return image
    return OutImage(
        data=image.data,
        mime_type=image.mime_type,
        alt_text=clip(image.alt_text, limit),
        nsfw=image.nsfw,
        censored=image.censored,
    )


def split_text(text: str, limit: int, *, most: int | None = None) -> list[str]:
    """``text`` cut at line breaks into messages of at most ``limit`` characters, a longer line
    into pieces; with ``most``, the rest is clipped into the last message (a long ``/help`` on a
    platform whose posts are short)."""
    chunks: list[str] = []
    current = ""
    for line in text.splitlines() or [""]:
        while len(line) > limit:
            if current:
                chunks.append(current)
                current = ""
            chunks.append(line[:limit])
            line = line[limit:]
        joined = f"{current}\n{line}" if current else line
        if len(joined) <= limit:
            current = joined
        else:
            chunks.append(current)
            current = line
    if current or not chunks:
        chunks.append(current)
    if most is not None and len(chunks) > most:
        chunks = [*chunks[: most - 1], clip("\n".join(chunks[most - 1 :]), limit)]
    return chunks
