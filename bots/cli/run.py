"""``hordebot run`` (everything the config enables) and ``hordebot dream`` (one generation)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from typing import TYPE_CHECKING, Any

from bots.console.config import ConsoleConfig
from core.config import Config, load_config
from core.errors import UserError
from worker_node.config import WorkerConfigError

if TYPE_CHECKING:
    from bots.console.adapter import ConsoleAdapter
    from core.service import GenerationService

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    """Add ``run`` and ``dream``."""
    run = subparsers.add_parser(
        "run",
        help="start everything the config enables (embedded horde, worker, bots)",
        description="Start the embedded horde, a local worker and the bots the config enables.",
    )
    run.add_argument("--config", metavar="FILE", help="TOML config (default: built-in defaults)")
    run.set_defaults(handler=_run)

    dream = subparsers.add_parser(
        "dream",
        help="generate once through the same stack and print the image paths",
        description="One generation through the configured stack; prints each image's path.",
    )
    dream.add_argument("text", help='the request, e.g. "a lighthouse --steps 4"')
    dream.add_argument("--config", metavar="FILE", help="TOML config")
    dream.add_argument("--out", metavar="DIR", help="where to save the images")
    dream.set_defaults(handler=_dream)


async def _input_done(console: ConsoleAdapter, service: GenerationService) -> None:
    """End of input, and every generation in flight (also resumed ones) answered."""
    await console.wait_closed()
    await service.wait_idle()


def _console_config(config: Config, out: str | None = None) -> ConsoleConfig:
    section = dict(config.raw_section("console"))
    if out is not None:
        section["out_dir"] = out
    return ConsoleConfig.model_validate(section)


def _run(args: argparse.Namespace) -> int:
    return _guarded(_run_async(args.config, None, None))


def _dream(args: argparse.Namespace) -> int:
    return _guarded(_run_async(args.config, args.text, args.out))


def _guarded(coro: Any) -> int:
    try:
        code: int = asyncio.run(coro)
    except (UserError, WorkerConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


async def _run_async(config_path: str | None, text: str | None, out: str | None) -> int:
    # The stack pulls in the store, the horde server and the service: only when a command runs.
    from bots.challenges import running_challenges
    from bots.console.adapter import ConsoleAdapter
    from bots.deps import AdapterDeps
    from bots.platforms import build_adapters
    from bots.stack import running_stack

    config = load_config(config_path)
    console_config = _console_config(config, out)
    stdin = None
    if text is not None:
        import io

        stdin = io.StringIO(text + "\n")
    async with running_stack(config) as stack:
        # `dream` is one generation on the console; platforms run only under `run`.
        platforms = (
            []
            if text is not None
            else build_adapters(config, AdapterDeps(store=stack.store, catalog=stack.catalog))
        )
        console = None
        if console_config.enabled or text is not None:
            console = ConsoleAdapter(
                console_config, stdin=stdin, interactive=False if stdin else None
            )
        adapters = [*platforms, *([console] if console else [])]
        for adapter in adapters:
            stack.service.attach(adapter)
        started = []
        connected = asyncio.Event()
        async with running_challenges(stack, adapters, ready=connected):
            try:
                for adapter in adapters:
                    await adapter.start(stack.inbox)
                    started.append(adapter)
                    log.info("%s adapter started", adapter.name)
                # Connected first: a resumed reply or a challenge post finds its platform ready.
                resumed = await stack.service.start()
                if resumed:
                    print(f"resuming {resumed} generation(s) from the last run", file=sys.stderr)
                connected.set()
                await _serve(console, stack.service, keep_running=bool(platforms))
            finally:
                for adapter in reversed(started):
                    await adapter.stop()
    return 0


async def _serve(
    console: ConsoleAdapter | None, service: GenerationService, *, keep_running: bool
) -> None:
    """Until a signal; or, with the console alone, until its input ends and all is answered."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stopping.set)
    waits: set[asyncio.Task[Any]] = {asyncio.create_task(stopping.wait())}
    if console is not None and not keep_running:
        waits.add(asyncio.create_task(_input_done(console, service)))
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for task in waits:
        task.cancel()
