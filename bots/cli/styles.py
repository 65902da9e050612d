"""``hordebot styles``: look at the style library the bots use, from the configured source.

``list`` prints every style with its model, ``show NAME`` one style (or category) in full, and
``categories [NAME]`` the categories or what one expands to. The output is plain text; an
unknown name prints one ``error:`` line with the closest names and exits 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.config import Config, load_config
from core.errors import UserError
from core.model_reference import load_model_reference
from styles.expand import UnknownStyle, expand_category, fill_template
from styles.library import Style, StyleLibrary, load_library

EXIT_USAGE = 2
EXAMPLE_PROMPT = "a lighthouse on a cliff"


def register(subparsers: Any) -> None:
    """Add ``styles`` and its sub-commands to the ``hordebot`` parser."""
    parser = subparsers.add_parser("styles", help="inspect the style library")
    commands = parser.add_subparsers(dest="styles_command", required=True)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = commands.add_parser(name, help=help_text)
        sub.add_argument("--config", metavar="FILE", help="config file (default: built-ins)")
        return sub

    add("list", "every style and its model").set_defaults(handler=_run(_list))
    show = add("show", "one style or category in full")
    show.add_argument("name", help="style or category name (any case)")
    show.set_defaults(handler=_run(_show))
    categories = add("categories", "the categories, or the styles one expands to")
    categories.add_argument("name", nargs="?", help="category name (any case)")
    categories.set_defaults(handler=_run(_categories))


_Command = Callable[[argparse.Namespace, Config, StyleLibrary], int]


def _run(command: _Command) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        try:
            config = load_config(args.config)
            return command(args, config, _library(config))
        except (UserError, UnknownStyle) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE

    return handler


def _library(config: Config) -> StyleLibrary:
    section = config.styles
    return load_library(section.source, Path(section.cache_dir), section.refresh_seconds)


def _list(args: argparse.Namespace, config: Config, library: StyleLibrary) -> int:
    styles = sorted(library.styles.values(), key=lambda s: s.name.casefold())
    width = max((len(s.name) for s in styles), default=0)
    for style in styles:
        print(f"{style.name:<{width}}  {style.model or '-'}")
    print(
        f"{len(styles)} styles, {len(library.categories)} categories ({library.origin})",
        file=sys.stderr,
    )
    return 0


def _size(style: Style) -> str | None:
    if style.width is None and style.height is None:
        return None
    return f"{style.width or 'default'}x{style.height or 'default'}"


def _show(args: argparse.Namespace, config: Config, library: StyleLibrary) -> int:
    style = library.style(args.name)
    if style is None:
        if library.is_category(args.name):
            return _show_category(library, args.name)
        raise UnknownStyle(args.name, library.closest(args.name))
    models = config.models
    reference = load_model_reference(models.source, Path(models.cache_dir), models.refresh_seconds)
    model = style.model or "-"
    info = reference.get(style.model) if style.model else None
    if style.model:
        model += f" ({info.baseline})" if info else " (not in the model reference)"
    lines: list[tuple[str, object]] = [
        ("style", style.name),
        ("model", model),
        ("prompt", style.prompt),
        ("example", fill_template(style.prompt, EXAMPLE_PROMPT, "")),
        ("steps", style.steps),
        ("cfg_scale", style.cfg_scale),
        ("size", _size(style)),
        ("sampler_name", style.sampler_name),
        ("karras", style.karras),
        ("clip_skip", style.clip_skip),
        ("hires_fix", style.hires_fix),
        (
            "loras",
            "; ".join(
                f"{x.name}{' (version)' if x.is_version else ''} model {x.model:g} clip {x.clip:g}"
                + (f" trigger {x.inject_trigger}" if x.inject_trigger else "")
                for x in style.loras
            ),
        ),
        (
            "tis",
            "; ".join(
                f"{x.name} strength {x.strength:g}" + (f" in {x.inject_ti}" if x.inject_ti else "")
                for x in style.tis
            ),
        ),
        ("enhance", "yes" if style.enhance else None),
        *((key, value) for key, value in style.extras),
    ]
    key = style.name.casefold()
    member_of = [c for c, members in library.categories.items() if key in members]
    lines.append(("categories", ", ".join(member_of)))
    for label, value in lines:
        if value is not None and value != "":
            print(f"{label}: {value}")
    if library.is_category(args.name):
        print(f"also a category: see `hordebot styles categories {key}`")
    return 0


def _show_category(library: StyleLibrary, name: str) -> int:
    key = name.strip().casefold()
    styles = expand_category(library, key)
    print(f"category: {key} ({len(styles)} styles)")
    print(f"lists: {', '.join(library.categories[key])}")
    for style in styles:
        print(f"  {style}")
    return 0


def _categories(args: argparse.Namespace, config: Config, library: StyleLibrary) -> int:
    if args.name is None:
        names = sorted(library.categories)
        width = max((len(n) for n in names), default=0)
        for name in names:
            print(f"{name:<{width}}  {len(expand_category(library, name))} styles")
        return 0
    if not library.is_category(args.name):
        if library.style(args.name) is not None:
            raise UserError(
                f"{args.name!r} is a style, not a category",
                hint=f"see hordebot styles show {args.name.strip().casefold()}",
            )
        closest = [n for n in library.closest(args.name, n=10) if library.is_category(n)][:3]
        raise UnknownStyle(args.name, closest)
    return _show_category(library, args.name)
