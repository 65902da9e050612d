"""The composition root's wiring: build the store, horde client, poller, service, the embedded
horde and a worker child process from one config, and tear them down in order.

This is the only place that knows every part. ``hordebot run`` and ``hordebot dream`` use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from core.blocklist import Blocklist
from core.catalog import Catalog
from core.config import Config
from core.errors import UserError
from core.horde.client import HordeClient
from core.horde.poller import HordePoller, PollPolicy
from core.horde.ratelimit import HORDE_LIMITS, Rate
from core.horde.wire import ANON_API_KEY
from core.inbox import CommandInbox
from core.planner import CatalogPlanner
from core.service import GenerationService, ServiceSettings
from core.store import SecretBox, Store
from core.store.ledger import StoreLedger
from core.throttle import ThrottleRules
from worker_node.config import WorkerConfig, parse_worker_config

if TYPE_CHECKING:
    from core.horde.server.embedded import EmbeddedHorde

log = logging.getLogger(__name__)

EMBEDDED = "embedded"
BOT_USER = "hordebot"
LOCAL_WORKER_USER = "local-worker"
LOCAL_LIMITS: Mapping[str, tuple[Rate, ...]] = MappingProxyType({"default": ()})
LOCAL_POLL = PollPolicy(first_check_s=0.5, min_interval_s=0.5, max_interval_s=2.0)
# The bot's own account on an embedded horde starts rich enough for any demo.
BOT_KUDOS = 1_000_000.0


@dataclass
class Stack:
    """Everything a running bot needs, built and started."""

    config: Config
    horde_url: str
    client: HordeClient
    poller: HordePoller
    store: Store
    service: GenerationService
    inbox: CommandInbox
    catalog: Catalog
    worker: asyncio.subprocess.Process | None = None
    # The embedded horde when the config runs one: tests and admin commands issue keys on it.
    embedded: EmbeddedHorde | None = None


def worker_section(config: Config) -> WorkerConfig:
    """The validated ``[worker]`` section (all defaults when absent)."""
    return parse_worker_config(config.raw_section("worker"), str(config.path or "<defaults>"))


@contextlib.asynccontextmanager
async def running_stack(config: Config, *, with_worker: bool = True) -> AsyncIterator[Stack]:
    """Start every part the config enables; stop them in reverse order on exit."""
    worker_config = worker_section(config)
    async with contextlib.AsyncExitStack() as stack:
        horde_url = config.horde.url
        bot_key = os.environ.get(config.horde.api_key_env) or ANON_API_KEY
        worker_key: str | None = None
        embedded: EmbeddedHorde | None = None
        if config.horde.embedded:
            from core.horde.server.embedded import EmbeddedHorde
            from core.horde.server.settings import HordeSettings

            _make_parent(config.horde.embedded_db)
            embedded = EmbeddedHorde(
                HordeSettings(db_url=config.horde.embedded_db),
                host=config.horde.embedded_host,
                port=config.horde.embedded_port,
            )
            await stack.enter_async_context(embedded)
            horde_url = embedded.url
            bot_key = await embedded.issue_key(BOT_USER, kudos=BOT_KUDOS)
            if worker_config.enabled:
                worker_key = await embedded.issue_key(LOCAL_WORKER_USER)

        _make_parent(config.store.url)
        box = SecretBox.from_env_or_file(config.store.key_file)
        store = await Store.open(config.store.url, secret_box=box)
        stack.push_async_callback(store.close)

        # The embedded horde is on this machine and has no rate limits: the public horde's limits
        # (one /check a second for the whole bot) would be the bot's ceiling; look often instead.
        limits = LOCAL_LIMITS if config.horde.embedded else HORDE_LIMITS
        client = HordeClient(bot_key, base_url=horde_url, limits=limits)
        stack.push_async_callback(client.aclose)
        poller = HordePoller(client, LOCAL_POLL if config.horde.embedded else None)
        stack.push_async_callback(poller.aclose)

        planner = await asyncio.to_thread(CatalogPlanner.from_config, config)
        policy = config.policy
        settings = ServiceSettings(
            images_dir=Path(config.store.images_dir),
            progress_interval_s=policy.progress_interval_seconds,
            throttle=ThrottleRules(
                cooldown_seconds=policy.cooldown_seconds,
                max_concurrent=policy.max_concurrent,
                keyed_cooldown_seconds=policy.keyed_cooldown_seconds,
                keyed_max_concurrent=policy.keyed_max_concurrent,
            ),
            blocklist=Blocklist(
                words=policy.blocked_words,
                patterns=policy.blocked_patterns,
                styles=policy.blocked_styles,
                models=policy.blocked_models,
            ),
            community_workers=config.community.workers,
            community_fallback_s=config.community.fallback_after_seconds,
        )
        service = GenerationService(
            ledger=StoreLedger(store),
            horde=client,
            poller=poller,
            planner=planner,
            settings=settings,
        )
        stack.push_async_callback(service.stop)

        process = None
        if with_worker and worker_config.enabled:
            process = await _start_worker(config, worker_config, horde_url, worker_key)
            stack.push_async_callback(_stop_worker, process)
        inbox = CommandInbox(
            service=service,
            catalog=planner.catalog,
            store=store,
            horde=client,
            community_workers=config.community.workers,
        )
        yield Stack(
            config,
            horde_url,
            client,
            poller,
            store,
            service,
            inbox,
            planner.catalog,
            process,
            embedded,
        )


async def _start_worker(
    config: Config, worker: WorkerConfig, horde_url: str, key: str | None
) -> asyncio.subprocess.Process:
    """The worker runs in its own process: torch stays out of the bot, and a crash stays there."""
    if worker.horde_url == EMBEDDED and not config.horde.embedded:
        raise UserError(
            "worker.horde_url is 'embedded' but [horde] embedded = false; "
            "give the worker a horde URL or enable the embedded horde"
        )
    if config.path is None:
        raise UserError("a worker needs a config file: pass --config FILE")
    env = dict(os.environ)
    if worker.horde_url == EMBEDDED:
        env["HORDEBOT_WORKER_HORDE_URL"] = horde_url
    if key is not None:
        env[worker.api_key_env] = key
    for model in worker.models:
        if model.tiny:
            await asyncio.to_thread(_ensure_tiny_model, Path(model.path))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "worker_node", "--config", str(config.path), env=env
    )
    log.info("worker %s started (pid %d)", worker.name, process.pid)
    return process


def _ensure_tiny_model(path: Path) -> None:
    if path.exists():
        return
    from worker_node.tiny_model import build_tiny_model

    log.info("building the tiny offline model at %s", path)
    build_tiny_model(path)


async def _stop_worker(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    process.terminate()
    try:
        await asyncio.wait_for(process.wait(), timeout=30)
    except TimeoutError:
        process.kill()
        await process.wait()


def _make_parent(url_or_path: str) -> None:
    """Create the folder of a SQLite file so a fresh checkout needs no set-up."""
    if url_or_path.startswith("sqlite"):
        path = url_or_path.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
