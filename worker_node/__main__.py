"""``python -m worker_node --config FILE``: the worker as its own process.

The composition root starts the worker this way as a child process (torch stays out of the bots'
process) and stops it with SIGTERM; the exit status is that of ``hordebot worker``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from worker_node.node import run_worker


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments, set up logging, and run the worker until it is stopped."""
    parser = argparse.ArgumentParser(
        prog="python -m worker_node", description="Run a horde worker node (torch + diffusers)."
    )
    parser.add_argument("--config", metavar="FILE", help="the TOML config with a [worker] section")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not args.verbose:
        # One line per HTTP call drowns the log; -v brings them back.
        for noisy in ("httpx", "httpcore"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    return run_worker(args.config)


if __name__ == "__main__":
    raise SystemExit(main())
