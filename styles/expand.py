"""Style expansion: filling a template, expanding categories, drawing styles, applying ``enhance``.

All pure functions over library values, so they are cheap to test exhaustively against the full
upstream library.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TypeVar

from styles.library import Enhancement, Style, StyleLibrary, StyleLora, StyleTI

log = logging.getLogger(__name__)

SPLIT = "###"

_PLACEHOLDER = re.compile(r"\{n?p\}")
_SEPARATOR_LEFT = ",("  # after these, the user's negative needs no ", " before it
_SEPARATOR_RIGHT = ",)"  # before these, it needs none after it
_REPEATED_COMMAS = re.compile(r"\s*,\s*(?:,\s*)+")
_LEADING_HASHES = re.compile(r"^[\s#]+")
_TRAILING_HASHES = re.compile(r"\s*#{2,}\s*$")


class UnknownStyle(LookupError):
    """A style or category name that the library does not know (or a category with no styles).

    ``closest`` holds suggestions for the user; ``core`` turns this into a ``UserError``.
    """

    def __init__(self, name: str, closest: list[str], *, empty_category: bool = False) -> None:
        self.name = name
        self.closest = closest
        self.empty_category = empty_category
        if empty_category:
            text = f"category {name!r} has no usable styles"
        else:
            text = f"unknown style or category {name!r}"
        if closest:
            text += f"; closest: {', '.join(closest)}"
        super().__init__(text)


@dataclass(frozen=True, slots=True)
class StylePick:
    """A style chosen for one request, and the category it was drawn from (None if named)."""

    style: Style
    category: str | None


# --- templates -------------------------------------------------------------------------------


def _join_around(pieces: list[str], negative: str) -> str:
    """Pieces of a negative template (split at ``{np}``) joined by the user's negative."""
    if not negative:
        return "".join(pieces)
    out = pieces[0]
    for piece in pieces[1:]:
        left = out.rstrip()
        glue_before = ", " if left and left[-1] not in _SEPARATOR_LEFT and out == left else ""
        right = piece.lstrip()
        glue_after = ", " if right and right[0] not in _SEPARATOR_RIGHT and piece == right else ""
        out = f"{out}{glue_before}{negative}{glue_after}{piece}"
    return out


def _tidy_negative(text: str) -> str:
    # Upstream templates hold a second "###" (scalie, furry) and stray "#" runs ("{p}##{np}",
    # "####{np}"); the horde splits on the first "###" only, so the rest would reach the model as
    # literal noise. They become separators here.
    text = _LEADING_HASHES.sub("", text).replace(SPLIT, ", ")
    text = _REPEATED_COMMAS.sub(", ", text)
    return text.strip().strip(",").strip()


def _tidy_positive(text: str) -> str:
    text = _TRAILING_HASHES.sub("", text)
    text = _REPEATED_COMMAS.sub(", ", text)
    return text.strip().strip(",").strip()


def fill_template(template: str, prompt: str, negative: str) -> str:
    """The style ``template`` with the user's ``prompt`` and ``negative`` put in.

    Only ``{p}`` and ``{np}`` are replaced, literally and in one pass, so ``{a|b}`` groups and
    braces inside the user's text survive untouched (never ``str.format``). The result's first
    ``###`` separates positive from negative; there is no ``###`` at all when the negative half
    would be empty.

    * Template without ``###`` (the common ``{p}{np}``): a non-empty negative enters as
      ``###<negative>`` where ``{np}`` stands, as the horde does.
    * Template with ``###``: ``{np}`` after it is the user's negative, joined with ", " where it
      would otherwise be glued to a word; an empty negative leaves no dangling ", ".
    * Template without ``{np}`` (upstream ``crungus revenge``): the user's negative is appended
      to the negative half, because silently dropping what the user asked to avoid is worse
      than a slightly longer negative.
    * A ``###`` inside ``prompt`` is taken as the start of more negative text, so a caller that
      did not split the user's text still gets a well-formed result.
    """
    prompt, _, more_negative = prompt.partition(SPLIT)
    negative = ", ".join(x for x in (more_negative.strip(), negative.strip()) if x)
    prompt = prompt.strip()

    if SPLIT in template:
        positive_t, negative_t = template.split(SPLIT, 1)
    else:
        head, marker, tail = template.partition("{np}")
        # "{p}, x{np}, y": the horde puts "###negative" where {np} is, so the tail goes with it.
        positive_t, negative_t = (head, f"{{np}}{tail}") if marker else (template, "")

    positive = _PLACEHOLDER.sub(lambda m: prompt if m.group() == "{p}" else "", positive_t)
    if "{np}" in negative_t:
        pieces = [p.replace("{p}", prompt) for p in negative_t.split("{np}")]
        negative_text = _join_around(pieces, negative)
    else:
        negative_text = _join_around([negative_t.replace("{p}", prompt), ""], negative)

    positive, negative_text = _tidy_positive(positive), _tidy_negative(negative_text)
    return f"{positive}{SPLIT}{negative_text}" if negative_text else positive


# --- categories --------------------------------------------------------------------------------


def expand_category(library: StyleLibrary, name: str) -> list[str]:
    """The style names category ``name`` stands for, recursively: each once, in file order.

    A member that is a category is expanded even when a style has the same name (upstream
    ``animation`` is both, listed inside ``artstyles``): inside a category list the fediverse
    bot treats such a name as the category, and so do we; a top-level lookup by the user prefers
    the style instead (``pick_styles``). Cycles are cut with a visited set and logged; members
    naming nothing are skipped. Raises ``UnknownStyle`` when ``name`` is not a category.
    """
    root = name.strip().casefold()
    if root not in library.categories:
        raise UnknownStyle(name, library.closest(name))
    found: dict[str, None] = {}
    visited: set[str] = set()

    def walk(category: str, path: tuple[str, ...]) -> None:
        visited.add(category)
        for member in library.categories[category]:
            if member in library.categories:
                if member in path:
                    log.warning("category cycle %s; cut", " -> ".join((*path, member)))
                elif member not in visited:
                    walk(member, (*path, member))
            elif member in library.styles:
                found.setdefault(member, None)
            else:
                log.debug(
                    "category %r lists %r, which is neither style nor category", category, member
                )

    walk(root, (root,))
    return list(found)


def pick_styles(
    library: StyleLibrary,
    name: str,
    k: int,
    rng: random.Random,
    *,
    usable: Callable[[Style], bool] | None = None,
) -> list[StylePick]:
    """The styles to run for ``name``: the style itself, or up to ``k`` distinct from a category.

    A style name wins over a category of the same name. From a category, ``k`` styles are drawn
    without replacement with ``rng`` (seed it for reproducible draws); ``usable`` (for example
    "its model has workers") filters the pool first, and is ignored when it would leave nothing,
    since a slow answer beats no answer. Raises ``UnknownStyle`` for an unknown name or a
    category without styles.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, not {k}")
    style = library.style(name)
    if style is not None:
        return [StylePick(style, None)]
    category = name.strip().casefold()
    pool = [library.styles[x] for x in expand_category(library, name)]
    if not pool:
        raise UnknownStyle(name, [], empty_category=True)
    if usable is not None:
        filtered = [s for s in pool if usable(s)]
        if filtered:
            pool = filtered
        else:
            log.info("category %r: no style passes the filter; drawing from all", category)
    return [StylePick(s, category) for s in rng.sample(pool, min(k, len(pool)))]


# --- enhancements ------------------------------------------------------------------------------


_Named = TypeVar("_Named", StyleLora, StyleTI)


def _append_new(own: tuple[_Named, ...], more: tuple[_Named, ...]) -> tuple[_Named, ...]:
    seen: set[str] = {x.name for x in own}
    return own + tuple(x for x in more if x.name not in seen)


def merge_enhancement(style: Style, enhancement: Enhancement) -> Style:
    """``style`` with ``enhancement`` merged in by the upstream rule.

    Lists are appended (a LoRA or TI the style already names is not added twice: the horde
    would load it twice), scalars the enhancement sets overwrite the style's. The result has
    ``enhance=False``, so merging again is a no-op.
    """
    loras = _append_new(style.loras, enhancement.loras)
    tis = _append_new(style.tis, enhancement.tis)
    overrides = {
        key: value
        for key in (
            "steps",
            "cfg_scale",
            "width",
            "height",
            "sampler_name",
            "karras",
            "clip_skip",
            "hires_fix",
        )
        if (value := getattr(enhancement, key)) is not None
    }
    return replace(style, loras=loras, tis=tis, enhance=False, **overrides)
