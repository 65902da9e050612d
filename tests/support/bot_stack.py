"""A whole bot in the test process: embedded horde, store, service, inbox, the adapters under test,
and a real worker child process on the tiny model, all from one config folder.

Leaving the context stops everything in order; entering it again on the same folder is a restart
(same store, same embedded horde database), which is how the platform tests check that a reply
comes exactly once across a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

from bots.stack import Stack, running_stack
from core.config import load_config
from core.contract import Adapter
from core.horde.client import HordeClient
from core.horde.wire import PopResponse
from tests.support.horde_worker import finish_one
from tests.support.stack_config import write_stack_config

WORKER = """
[worker]
enabled = {enabled}
name = "platform-test-worker"
horde_url = "embedded"
max_power = 8
cache_dir = "{var}/worker-cache"

[[worker.models]]
name = "stable_diffusion"
path = "{tiny_model}"
tiny = true
"""


def write_bot_config(
    folder: Path,
    *,
    tiny_model: Path | str,
    sections: str = "",
    policy: str = "",
    worker: bool = True,
) -> Path:
    """The stack config with a tiny-model worker (or none) and extra sections (``[discord]`` …)."""
    worker_text = WORKER.format(
        enabled=str(worker).lower(), var=folder / "var", tiny_model=tiny_model
    )
    return write_stack_config(folder, worker=worker_text + "\n" + sections, policy=policy)


@contextlib.asynccontextmanager
async def bot_stack(
    config_path: Path,
    adapters: Callable[[Stack], Sequence[Adapter]],
    *,
    with_worker: bool = True,
) -> AsyncIterator[Stack]:
    """Run the stack with the adapters ``adapters(stack)`` builds, attached and started.

    The adapters are connected before the service resumes what the store holds, so a resumed
    reply finds its platform ready, as in ``hordebot run``.
    """
    config = load_config(str(config_path))
    async with running_stack(config, with_worker=with_worker) as stack:
        built = list(adapters(stack))
        for adapter in built:
            stack.service.attach(adapter)
        started: list[Adapter] = []
        try:
            for adapter in built:
                await adapter.start(stack.inbox)
                started.append(adapter)
            await stack.service.start()
            yield stack
        finally:
            for adapter in reversed(started):
                await adapter.stop()


async def fake_worker_key(stack: Stack, name: str = "test-worker") -> str:
    """A key for a worker the test plays over HTTP (``tests.support.horde_worker``), on the
    stack's embedded horde; for tests that need a finished image but not the tiny model."""
    if stack.embedded is None:
        raise RuntimeError("the stack runs no embedded horde")
    return await stack.embedded.issue_key(name)


@contextlib.asynccontextmanager
async def fake_worker(
    stack: Stack, *, name: str = "fake-worker", models: Sequence[str] = ("stable_diffusion",)
) -> AsyncIterator[list[PopResponse]]:
    """A worker played over HTTP that answers every job with a tiny WebP, for as long as the
    context lasts; yields the jobs it served (their payloads say what the horde was asked).

    For tests about a platform's behaviour (restarts, faults, buttons) rather than about the
    images: it answers in milliseconds where the tiny model takes many seconds on a busy CPU.
    """
    key = await fake_worker_key(stack, name)
    served: list[PopResponse] = []

    async def serve(client: HordeClient) -> None:
        while True:
            try:
                served.append(await finish_one(client, name, list(models), attempts=20))
            except AssertionError:
                continue  # nothing to pop yet

    async with HordeClient(key, base_url=stack.horde_url) as client:
        task = asyncio.create_task(serve(client), name="fake-worker")
        try:
            yield served
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
