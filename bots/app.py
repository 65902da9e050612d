"""The composition root and the ``hordebot`` console script.

It is the only module that knows every command group and adapter; each group registers its own
sub-commands, so adding one is one line here.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

# Each module exposes register(subparsers); imported lazily so `hordebot payload` starts fast.
_COMMAND_MODULES: tuple[str, ...] = (
    "worker_node.cli",
    "bots.cli.styles",
    "bots.cli.horde",
    "bots.cli.payload",
    "bots.cli.run",
)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every command group registered."""
    parser = argparse.ArgumentParser(prog="hordebot", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``hordebot`` command and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not args.verbose:
        # One line per HTTP call drowns the console; -v brings them back.
        for noisy in ("httpx", "httpcore"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
