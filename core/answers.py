"""The text of the inbox's answers: pure functions from values to the lines a user reads.

Kept apart from ``core.inbox`` (which does the I/O) so every answer can be checked without a
horde or a database, and so the wording lives in one place for every platform.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence

from core.commands import command_names
from core.errors import UserError
from core.horde.wire import UserDetails, WorkerDetails
from core.model_reference import ModelReference
from styles.library import Style, StyleLibrary

# A listing longer than this names the first ones and counts the rest (chat messages are short).
MAX_LISTED = 40


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() or abs(value) >= 100 else f"{value:,.2f}"


def _listed(names: Sequence[str], limit: int = MAX_LISTED) -> str:
    shown = ", ".join(names[:limit])
    more = len(names) - limit
    return f"{shown} and {more} more" if more > 0 else shown


def unknown_command(name: str) -> UserError:
    """The error for a command nobody declared, naming the closest ones."""
    close = difflib.get_close_matches(name.casefold(), command_names(), n=3, cutoff=0.5)
    hint = f"closest: {', '.join('/' + c for c in close)}" if close else "see /help"
    return UserError(f"unknown command /{name[:40]}", hint=hint)


def styles_listing(library: StyleLibrary, query: str | None) -> str:
    """``/styles``: the categories with their sizes; a category's styles; or names with a word."""
    if not query:
        categories = sorted(library.categories)
        counted = [f"{name} ({len(library.categories[name])})" for name in categories]
        return (
            f"{len(library.styles)} styles in {len(categories)} categories. "
            f"Categories: {_listed(counted, limit=len(counted))}. "
            "Write /styles WORD to look for styles, /style NAME to see one."
        )
    members = library.category(query)
    if members is not None:
        return f"category {query.casefold()} ({len(members)}): {_listed(list(members))}"
    word = " ".join(query.casefold().split())
    found = [name for name in library.names() if word in name]
    if not found:
        close = library.closest(word)
        hint = f"closest: {', '.join(close)}" if close else "see /styles"
        raise UserError(f"no style or category holds {word[:40]!r}", hint=hint)
    return f"{len(found)} matching {word!r}: {_listed(found)}"


def _style_settings(style: Style) -> list[str]:
    parts: list[str] = []
    if style.model:
        parts.append(f"model {style.model}")
    if style.steps is not None:
        parts.append(f"{style.steps} steps")
    if style.cfg_scale is not None:
        parts.append(f"CFG {style.cfg_scale:g}")
    if style.width is not None or style.height is not None:
        parts.append(f"{style.width or '?'}x{style.height or '?'}")
    if style.sampler_name:
        parts.append(f"sampler {style.sampler_name}")
    if style.karras is not None:
        parts.append(f"karras {'on' if style.karras else 'off'}")
    if style.clip_skip is not None:
        parts.append(f"clip skip {style.clip_skip}")
    if style.hires_fix:
        parts.append("hires fix")
    if style.loras:
        loras = ", ".join(
            f"{'v:' if lora.is_version else ''}{lora.name} ({lora.model:g})" for lora in style.loras
        )
        parts.append(f"LoRAs {loras}")
    if style.tis:
        tis = ", ".join(f"{ti.name} ({ti.strength:g})" for ti in style.tis)
        parts.append(f"TIs {tis}")
    if style.enhance:
        parts.append("enhanced per model family")
    return parts


def style_details(library: StyleLibrary, name: str) -> str:
    """``/style NAME``: a style's settings and prompt template, or a category's members."""
    style = library.style(name)
    members = library.category(name)
    if style is None and members is None:
        close = library.closest(name)
        hint = f"did you mean {', '.join(close)}?" if close else "see /styles"
        raise UserError(f"unknown style {name[:60]!r}", hint=hint)
    lines: list[str] = []
    if style is not None:
        settings = _style_settings(style)
        described = "; ".join(settings) if settings else "no fixed settings"
        lines.append(f"style {style.name}: {described}")
        lines.append(f"prompt: {style.prompt}")
        holders = sorted(c for c, names in library.categories.items() if style.name in names)
        if holders:
            lines.append(f"in categories: {', '.join(holders)}")
    if members is not None:
        lines.append(f"category {name.casefold()} ({len(members)}): {_listed(list(members))}")
    return "\n".join(lines)


def models_listing(
    counts: Mapping[str, int], reference: ModelReference, query: str | None, limit: int
) -> str:
    """``/models``: the models with most workers first, with their family from the reference."""
    word = " ".join((query or "").casefold().split())
    served = [(name, count) for name, count in counts.items() if count > 0]
    if word:
        served = [(name, count) for name, count in served if word in name.casefold()]
    if not served:
        matching = f" matching {word!r}" if word else ""
        raise UserError(f"no model{matching} has a worker at the horde right now")
    served.sort(key=lambda item: (-item[1], item[0].casefold()))
    lines = []
    for name, count in served[:limit]:
        info = reference.get(name)
        family = f" ({info.baseline})" if info is not None else ""
        lines.append(f"{name}{family}: {count} worker{'s' if count != 1 else ''}")
    plural = "s" if len(served) != 1 else ""
    head = f"{len(served)} model{plural} with workers" + (f" matching {word!r}" if word else "")
    if len(served) > limit:
        head += f", the {limit} with most workers"
    return "\n".join([f"{head}:", *lines])


def workers_listing(workers: Iterable[WorkerDetails], *, community: bool) -> str:
    """``/worker``: each worker's online state, what it earned and what it serves."""
    rows = sorted(workers, key=lambda w: (not w.online, w.name.casefold()))
    if not rows:
        whose = "the community's workers" if community else "any worker"
        raise UserError(f"the horde does not list {whose} right now")
    lines = []
    for worker in rows:
        state = "online" if worker.online else "offline"
        models = _listed(worker.models, limit=5) if worker.models else "no models"
        lines.append(
            f"{worker.name}: {state}, {_number(worker.kudos_rewards)} kudos earned, "
            f"{worker.requests_fulfilled} images, serves {models}"
        )
    return "\n".join(lines)


def kudos_line(user: UserDetails) -> str:
    """``/kudos``: the account's name and balance."""
    return f"{user.username} has {_number(user.kudos)} kudos"


def login_line(user: UserDetails) -> str:
    """``/login``: whose key was saved; never the key itself."""
    return f"logged in as {user.username} ({_number(user.kudos)} kudos)"


def transfer_line(username: str, transferred: float) -> str:
    """``/transfer``: what moved."""
    return f"sent {_number(transferred)} kudos to {username}"
