"""``hordebot payload TEXT``: print the exact horde request body a drawing command would send.

Nothing is sent. The text is read the way the chosen platform reads it: on the console and
Discord a bare prompt is a drawing request; on Mastodon, Lemmy and Reddit it needs the trigger
(``draw me ...``) or ``/dream``, as the bots there only answer those. One request prints as a
JSON object, several (a category drawn into several styles) as a JSON list. Warnings, and the
style drawn from a category, go to stderr; bad input prints one ``error:`` line and exits 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
from typing import Any

from core.catalog import Catalog, settings_from_config
from core.config import load_config
from core.errors import UserError
from core.policy import ChannelPolicy

EXIT_USAGE = 2
PLATFORMS = ("console", "discord", "mastodon", "lemmy", "reddit")
# Platforms whose bots answer only "draw me ..." (or /dream), not any text they are sent.
TRIGGER_PLATFORMS = frozenset({"mastodon", "lemmy", "reddit"})


def register(subparsers: Any) -> None:
    """Add ``payload`` to the ``hordebot`` parser."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "payload",
        help="print the horde request body a drawing command would send",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("text", help='the command, e.g. "draw me a fox --style anime"')
    parser.add_argument("--config", metavar="FILE", help="config file (default: built-ins)")
    parser.add_argument(
        "--platform", choices=PLATFORMS, default="console", help="read the text as this platform"
    )
    parser.add_argument(
        "--sfw", action="store_true", help="as in a channel that does not allow NSFW"
    )
    parser.add_argument(
        "--seed-rng", type=int, metavar="N", help="seed for drawing styles from a category"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Print the body (or bodies) for ``args.text``; 2 with one ``error:`` line on bad input."""
    root = logging.getLogger()
    level = root.level
    if not getattr(args, "verbose", False):
        # stderr carries the warnings and errors that matter here; "loaded 404 styles" is noise.
        root.setLevel(max(level, logging.WARNING))
    try:
        return _run(args)
    finally:
        root.setLevel(level)


def _run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
        catalog = Catalog.from_config(config)
        request = catalog.parse(args.text, bare_is_dream=args.platform not in TRIGGER_PLATFORMS)
        if request is None:
            raise UserError(
                f"not a drawing request on {args.platform}",
                hint="start with draw me ... or /dream ...",
            )
        if request.spec is None:
            raise UserError(f"that is /{request.command}, not a drawing request")
        built = catalog.build(
            request.spec,
            policy=ChannelPolicy(nsfw_allowed=not args.sfw),
            rng=random.Random(args.seed_rng),
            settings=settings_from_config(config),
        )
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for item in built:
        if item.category:
            print(f"style: {item.style} (from category {item.category})", file=sys.stderr)
        for warning in item.warnings:
            print(f"warning: {warning}", file=sys.stderr)
    bodies = [item.body.to_wire() for item in built]
    print(json.dumps(bodies[0] if len(bodies) == 1 else bodies, indent=2, ensure_ascii=False))
    return 0
