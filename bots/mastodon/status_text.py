"""Status HTML as the plain text a user typed, with every mention taken out.

Mastodon stores a status as server-rendered HTML: mentions are
``<span class="h-card"><a class="u-url mention" …>@<span>bot</span></a></span>``, links hide
their scheme in ``<span class="invisible">``, line breaks are ``<br>`` and paragraphs ``<p>``.
The grammar wants the words only; links stay as their full text, since a prompt may quote one.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

# A bare handle that no server linked (another server's rendering, or a plain-text mock):
# "@bot" or "@bot@example.social", at the start or after a space, so e-mail addresses stay.
_BARE_MENTION = re.compile(r"(?:(?<=\s)|^)@[A-Za-z0-9_]+(?:@[A-Za-z0-9.-]+\.[A-Za-z]{2,})?\b")
_SPACES = re.compile(r"[ \t\u00a0]+")
_BLOCK_ENDS = frozenset({"p", "div", "li", "blockquote", "pre"})


class _TextOf(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        # Depth inside a mention link: its text (the handle) is dropped.
        self._mention_depth = 0
        self._stack: list[bool] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.parts.append("\n")
            return
        if tag == "a":
            classes = (dict(attrs).get("class") or "").split()
            is_mention = "mention" in classes and "hashtag" not in classes
            self._stack.append(is_mention)
            if is_mention:
                self._mention_depth += 1

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._stack:
            if self._stack.pop():
                self._mention_depth -= 1
        elif tag in _BLOCK_ENDS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._mention_depth:
            self.parts.append(data)


def status_text(content: str) -> str:
    """The text of a status's HTML ``content``: mentions removed, one line per ``<br>``/``</p>``."""
    parser = _TextOf()
    parser.feed(content or "")
    parser.close()
    lines = []
    for raw in "".join(parser.parts).split("\n"):
        line = _SPACES.sub(" ", _BARE_MENTION.sub(" ", raw)).strip()
        lines.append(line)
    return "\n".join(lines).strip()
