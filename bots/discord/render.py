"""``Reply`` and ``Progress`` → Discord messages: an embed, image attachments and buttons.

The words come from ``core.shaping`` (the same caption every platform posts); this module only
lays them out. Files are built fresh for every attempt: discord.py consumes them when it sends.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import discord

from bots.discord.components import result_view
from bots.discord.limits import LIMITS
from core.messages import Action, Phase, Progress, Reply
from core.shaping import Post, caption, clip, shape
from styles.library import StyleLibrary

MARKER = "hordebot · "
MAX_TITLE = 256
MAX_DESCRIPTION = 4096
PAGE_SIZE = 25
_EXTENSIONS = {"image/webp": "webp", "image/png": "png", "image/jpeg": "jpg"}
_OK, _CENSORED, _ERROR, _WAIT = 0x5865F2, 0xE67E22, 0xED4245, 0x99AAB5


@dataclass(frozen=True, slots=True)
class Rendered:
    """One message to post or edit: what ``send``/``edit`` take, files made on demand."""

    content: str
    embed: discord.Embed | None
    post: Post = field(default_factory=lambda: Post(""))
    generation_id: str = ""
    with_view: bool = False
    owner: int = 0
    actions: tuple[str, ...] = ()

    def files(self) -> list[discord.File]:
        """Fresh ``discord.File`` objects for the post's images (alt text as description)."""
        stem = (self.generation_id or "image")[:8]
        return [
            discord.File(
                io.BytesIO(image.data),
                filename=f"{stem}-{index}.{_EXTENSIONS.get(image.mime_type, 'webp')}",
                spoiler=image.nsfw,
                description=clip(image.alt_text, LIMITS.max_alt_text) or None,
            )
            for index, image in enumerate(self.post.images)
        ]

    def view(self) -> discord.ui.View | None:
        """The result buttons, on the first message of a result only."""
        if not self.with_view or not self.generation_id:
            return None
        return result_view(tuple(Action(a) for a in self.actions), self.generation_id, self.owner)


def render_reply(reply: Reply, *, owner: int, mention: str = "") -> list[Rendered]:
    """The messages that carry ``reply``: the first with the embed and the buttons."""
    gen = reply.generation_id or ""
    if reply.error:
        text = clip(f"{mention} {reply.error}".strip(), LIMITS.max_text)
        embed = discord.Embed(description=text, colour=_ERROR)
        embed.set_footer(text=MARKER + gen)
        return [Rendered(content=mention, embed=embed, generation_id=gen)]
    posts = shape(reply, LIMITS)
    censored = any(image.censored for image in reply.images)
    prompt = str(reply.metadata.get("prompt") or reply.text or "")
    embed = discord.Embed(
        title=clip(prompt, MAX_TITLE) or None,
        description=clip(caption(reply), MAX_DESCRIPTION),
        colour=_CENSORED if censored else _OK,
    )
    embed.set_footer(text=MARKER + gen)
    first = Rendered(
        content=mention,
        embed=embed,
        post=posts[0],
        generation_id=gen,
        with_view=bool(reply.actions),
        owner=owner,
        actions=tuple(a.value for a in reply.actions),
    )
    rest = [
        Rendered(
            content=clip(f"{mention} {post.text}".strip(), 2000),
            embed=None,
            post=post,
            generation_id=gen,
        )
        for post in posts[1:]
    ]
    return [first, *rest]


def progress_embed(progress: Progress) -> discord.Embed:
    """The embed a pending generation shows, edited while it waits."""
    done = progress.finished
    total = max(progress.total, 1)
    squares = "🟩" * done + "🟨" * (total - done) if total <= 20 else f"{done}/{total}"
    if progress.phase is Phase.PROCESSING:
        line = f"drawing… {squares}"
    elif progress.queue_position:
        line = f"queued at position {progress.queue_position} {squares}"
    else:
        line = f"waiting for a worker {squares}"
    if progress.wait_time:
        line += f"\nabout {progress.wait_time} s to go"
    embed = discord.Embed(description=line, colour=_WAIT)
    embed.set_footer(text=MARKER + progress.generation_id)
    return embed


def queued_embed(note: str = "") -> discord.Embed:
    """The embed shown at once when a request was accepted (warnings included)."""
    text = "queued on the AI Horde…"
    if note:
        text += f"\nnote: {note}"
    return discord.Embed(description=clip(text, MAX_DESCRIPTION), colour=_WAIT)


def style_names(library: StyleLibrary, query: str) -> list[str]:
    """What the style browser pages through: categories first, then styles, filtered."""
    word = query.casefold().strip()
    categories = sorted(library.categories)
    styles = sorted(library.styles)
    named = [f"📁 {c} ({len(library.categories[c])})" for c in categories if word in c]
    named += [f"🎨 {s}" for s in styles if word in s]
    return named


def styles_page(
    library: StyleLibrary, query: str, page: int, summary: str = ""
) -> tuple[discord.Embed, int, int]:
    """One page of the style browser: the embed, the page shown (clamped) and the page count."""
    names = style_names(library, query)
    pages = max(1, -(-len(names) // PAGE_SIZE))
    page = min(max(page, 0), pages - 1)
    shown = names[page * PAGE_SIZE : (page + 1) * PAGE_SIZE]
    body = "\n".join(shown) or "nothing matches"
    if summary:
        body = f"{clip(summary, 1500)}\n\n{body}"
    title = f"Styles matching “{query}”" if query else "Styles and categories"
    embed = discord.Embed(title=title, description=clip(body, MAX_DESCRIPTION), colour=_OK)
    embed.set_footer(text=f"page {page + 1}/{pages} · /dream style: NAME")
    return embed, page, pages
