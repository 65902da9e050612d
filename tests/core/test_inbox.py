"""The command inbox on the real stack: GenerationService, SQLite Store, embedded horde over HTTP.

A test worker pops jobs and hands in tiny WebPs where a generation must finish; a recording
adapter takes the replies. Every assertion reads real state: the answer text, the SQLite file's
bytes, balances at the horde, what the store kept and what the worker was given.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from core.catalog import Catalog
from core.commands import help_text
from core.horde.client import HordeClient
from core.horde.poller import HordePoller, PollPolicy
from core.horde.ratelimit import HORDE_LIMITS, per_second
from core.inbox import CommandInbox
from core.messages import Ack, AckKind, ChannelRef, Invocation, ReplyTarget, UserRef
from core.model_reference import load_model_reference
from core.payload import BuildSettings
from core.planner import CatalogPlanner
from core.service import GenerationService, ServiceSettings
from core.store import SecretBox, Store
from core.store.generations import GenerationState
from core.store.ledger import StoreLedger
from core.throttle import ThrottleRules
from styles.library import load_library
from tests.core.horde.conftest import (  # noqa: F401 - fixtures
    RunningHorde,
    embedded_horde,
    make_embedded_horde,
)
from tests.support.horde_worker import check_in, finish_one
from tests.support.paths import SHARED_MODEL_REFERENCE, SHARED_STYLES
from tests.support.recording_adapter import RecordingAdapter

MODEL = "stable_diffusion"
WORKER = "inbox-test-worker"
PLATFORM = "console"
HOUR = 3600
# Tests must not wait out the real once-a-second check and transfer limits.
FAST_LIMITS = {**HORDE_LIMITS, "check": (per_second(50),), "transfer": (per_second(50),)}
FAST_POLL = PollPolicy(first_check_s=0.05, min_interval_s=0.05, max_interval_s=0.2)


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    cache = tmp_path_factory.mktemp("catalog")
    return Catalog(
        library=load_library(str(SHARED_STYLES), cache / "styles", HOUR),
        reference=load_model_reference(str(SHARED_MODEL_REFERENCE), cache / "models", HOUR),
    )


@dataclass
class Bot:
    horde: RunningHorde
    store: Store
    db_file: Path
    client: HordeClient
    worker: HordeClient
    service: GenerationService
    inbox: CommandInbox
    adapter: RecordingAdapter
    catalog: Catalog
    _events: itertools.count[int]

    def invocation(
        self,
        command: str,
        text: str = "",
        *,
        event_id: str | None = None,
        user: str = "ann",
        options: dict[str, Any] | None = None,
        nsfw_allowed: bool = False,
        is_dm: bool = True,
    ) -> Invocation:
        number = next(self._events)
        return Invocation(
            event_id=event_id or f"event-{number}",
            user=UserRef(PLATFORM, user, display_name=user.title()),
            channel=ChannelRef(PLATFORM, "room", nsfw_allowed=nsfw_allowed, is_dm=is_dm),
            target=ReplyTarget(PLATFORM, {"channel_id": "room", "line": number}),
            text=None if options is not None else text,
            options=options,
            command=command,
        )

    async def ask(self, command: str, text: str = "", **kwargs: Any) -> Ack:
        return await self.inbox.submit(self.invocation(command, text, **kwargs))

    def stored_bytes(self) -> bytes:
        """The SQLite file and its journals, as they lie on disk."""
        files = self.db_file.parent.glob(self.db_file.name + "*")
        return b"".join(path.read_bytes() for path in sorted(files))


@pytest.fixture
async def bot(
    embedded_horde: RunningHorde,  # noqa: F811
    catalog: Catalog,
    tmp_path: Path,
) -> AsyncIterator[Bot]:
    bot_key = embedded_horde.add_user("hordebot", 100_000)
    worker_key = embedded_horde.add_user("worker-owner")
    db_file = tmp_path / "bot.db"
    store = await Store.open(f"sqlite:///{db_file}", secret_box=SecretBox.generate())
    async with (
        HordeClient(bot_key, base_url=embedded_horde.url, limits=FAST_LIMITS) as client,
        HordeClient(worker_key, base_url=embedded_horde.url, limits=FAST_LIMITS) as worker,
        HordePoller(client, FAST_POLL) as poller,
    ):
        service = GenerationService(
            ledger=StoreLedger(store),
            horde=client,
            poller=poller,
            planner=CatalogPlanner(catalog, BuildSettings(default_model=MODEL)),
            settings=ServiceSettings(
                images_dir=tmp_path / "images",
                progress_interval_s=0.0,
                throttle=ThrottleRules(cooldown_seconds=0, max_concurrent=10),
            ),
        )
        adapter = RecordingAdapter(PLATFORM)
        service.attach(adapter)
        inbox = CommandInbox(service=service, catalog=catalog, store=store, horde=client)
        try:
            yield Bot(
                embedded_horde,
                store,
                db_file,
                client,
                worker,
                service,
                inbox,
                adapter,
                catalog,
                itertools.count(1),
            )
        finally:
            await service.stop()
            await store.close()


def answered(ack: Ack) -> str:
    assert ack.kind is AckKind.ANSWERED, ack
    return ack.message


def rejected(ack: Ack) -> str:
    assert ack.kind is AckKind.REJECTED, ack
    assert "\n" not in ack.message, "a refusal is one line"
    return ack.message


# ---- answered from the catalog -------------------------------------------------------------


async def test_help_lists_every_command_or_one_commands_options(bot: Bot) -> None:
    assert answered(await bot.ask("help")) == help_text()
    assert answered(await bot.ask("help", "transfer")) == help_text("transfer")
    assert "closest" in rejected(await bot.ask("help", "transferr"))


async def test_unknown_command_names_the_closest(bot: Bot) -> None:
    message = rejected(await bot.ask("hepl"))
    assert message.startswith("unknown command /hepl")
    assert "/help" in message


async def test_a_redelivered_event_gets_no_second_answer(bot: Bot) -> None:
    assert answered(await bot.ask("help", event_id="same"))
    assert (await bot.ask("help", event_id="same")).kind is AckKind.DUPLICATE
    assert (await bot.ask("hepl", event_id="wrong")).kind is AckKind.REJECTED
    assert (await bot.ask("hepl", event_id="wrong")).kind is AckKind.DUPLICATE


async def test_styles_lists_categories_with_counts_then_one_category(bot: Bot) -> None:
    library = bot.catalog.library
    overview = answered(await bot.ask("styles"))
    assert overview.startswith(
        f"{len(library.styles)} styles in {len(library.categories)} categories"
    )
    featured = library.category("featured")
    assert featured is not None
    assert f"featured ({len(featured)})" in overview
    one = answered(await bot.ask("styles", "featured"))
    assert one.startswith(f"category featured ({len(featured)}): ")
    assert all(name in one for name in featured)
    found = answered(await bot.ask("styles", "cascade"))
    assert "cascade-portrait" in found
    assert "closest: anime" in rejected(await bot.ask("styles", "anmie"))
    assert "see /styles" in rejected(await bot.ask("styles", "zzzqqq"))


async def test_style_shows_settings_and_unknown_suggests_names(bot: Bot) -> None:
    flux = bot.catalog.library.style("flux")
    assert flux is not None
    assert flux.model is not None
    details = answered(await bot.ask("style", "flux"))
    assert details.startswith("style flux: ")
    assert f"model {flux.model}" in details
    assert f"{flux.steps} steps" in details
    assert f"{flux.width}x{flux.height}" in details
    assert "in categories: " in details
    assert "featured" in details
    with_loras = next(s for s in bot.catalog.library.styles.values() if s.loras)
    assert with_loras.loras[0].name in answered(await bot.ask("style", with_loras.name))
    message = rejected(await bot.ask("style", "fluxx"))
    assert "fluxx" in message
    assert "flux" in message.split("fluxx", 1)[1]


# ---- answered from the horde ---------------------------------------------------------------


async def test_models_lists_served_models_with_counts_and_family(bot: Bot) -> None:
    assert "no model" in rejected(await bot.ask("models"))
    await check_in(bot.worker, WORKER, [MODEL, "AlbedoBase XL (SDXL)"])
    listing = answered(await bot.ask("models"))
    assert f"{MODEL} (stable diffusion 1): 1 worker" in listing
    assert "AlbedoBase XL (SDXL) (stable_diffusion_xl): 1 worker" in listing
    only = answered(await bot.ask("models", "albedo"))
    assert only == (
        "1 model with workers matching 'albedo':\n"
        "AlbedoBase XL (SDXL) (stable_diffusion_xl): 1 worker"
    )


async def test_worker_lists_the_communitys_workers_with_state_and_kudos(bot: Bot) -> None:
    await check_in(bot.worker, WORKER, [MODEL])
    listing = answered(await bot.ask("worker"))
    assert listing.startswith(f"{WORKER}: online, 0 kudos earned, 0 images, serves {MODEL}")
    assert answered(await bot.ask("worker", WORKER)) == listing
    assert WORKER in rejected(await bot.ask("worker", WORKER + "-x"))
    others = CommandInbox(
        service=bot.service,
        catalog=bot.catalog,
        store=bot.store,
        horde=bot.client,
        community_workers=("someone-else",),
    )
    none = await others.submit(bot.invocation("worker"))
    assert "community" in rejected(none)
    ours = CommandInbox(
        service=bot.service,
        catalog=bot.catalog,
        store=bot.store,
        horde=bot.client,
        community_workers=(WORKER.upper(),),
    )
    assert answered(await ours.submit(bot.invocation("worker"))) == listing


# ---- accounts ------------------------------------------------------------------------------


async def test_login_keeps_the_key_sealed_and_out_of_answers_and_logs(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    key = bot.horde.add_user("alice", 500)
    message = answered(await bot.ask("login", key))
    assert message.startswith("logged in as alice#")
    assert message.endswith("(500 kudos)")
    user = await bot.store.find_user(PLATFORM, "ann")
    assert user is not None
    assert user.has_api_key
    assert await bot.store.api_key(user.id) == key
    on_disk = bot.stored_bytes()
    assert on_disk.startswith(b"SQLite format 3")
    assert key.encode() not in on_disk
    in_public = answered(await bot.ask("login", key, is_dm=False))
    assert "direct message" in in_public
    assert key not in in_public
    assert all(key not in record.getMessage() for record in caplog.records)


async def test_login_with_a_wrong_key_is_one_line_without_the_key(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "--not-a-key-anyone-has"
    message = rejected(await bot.ask("login", wrong))
    assert message.startswith("that key is not valid")
    assert wrong not in message
    assert "nothing else" in rejected(await bot.ask("login", "two words"))
    assert "nothing else" in rejected(await bot.ask("login", ""))
    assert await bot.store.find_user(PLATFORM, "ann") is None
    assert all(wrong not in record.getMessage() for record in caplog.records)


async def test_kudos_needs_login_then_shows_the_users_own_account(bot: Bot) -> None:
    assert rejected(await bot.ask("kudos")) == "log in with /login KEY to see your kudos"
    answered(await bot.ask("login", bot.horde.add_user("alice", 750)))
    assert answered(await bot.ask("kudos")).endswith(" has 750 kudos")
    assert "log in" in rejected(await bot.ask("kudos", user="someone"))


async def test_transfer_moves_kudos_once_per_event(bot: Bot) -> None:
    assert "log in" in rejected(await bot.ask("transfer", "bob#2 10"))
    answered(await bot.ask("login", bot.horde.add_user("alice", 500)))
    bob_key = bot.horde.add_user("bob", 10)
    bob = bot.client.with_key(bob_key)
    bob_name = (await bob.find_user()).username
    message = answered(await bot.ask("transfer", f"{bob_name} 25", event_id="gift"))
    assert message == f"sent 25 kudos to {bob_name}"
    assert (await bot.ask("transfer", f"{bob_name} 25", event_id="gift")).kind is AckKind.DUPLICATE
    assert (await bob.find_user()).kudos == 35
    assert answered(await bot.ask("kudos")).endswith(" has 475 kudos")
    assert "fewer" in rejected(await bot.ask("transfer", f"{bob_name} 100000"))
    assert "amount" in rejected(await bot.ask("transfer", f"{bob_name} lots"))


async def test_logout_forgets_the_key(bot: Bot) -> None:
    assert answered(await bot.ask("logout")) == "you were not logged in"
    answered(await bot.ask("login", bot.horde.add_user("alice", 500)))
    assert answered(await bot.ask("logout")).startswith("logged out")
    user = await bot.store.find_user(PLATFORM, "ann")
    assert user is not None
    assert not user.has_api_key
    assert await bot.store.api_key(user.id) is None
    assert "log in" in rejected(await bot.ask("kudos"))


# ---- images: reroll, variations, cancel ----------------------------------------------------


async def test_reroll_draws_the_last_request_again_with_a_new_seed(bot: Bot) -> None:
    assert rejected(await bot.ask("reroll")).startswith("no earlier request to reroll")
    first = await bot.ask("dream", "a lighthouse at dusk --seed 123 --steps 4")
    assert first.kind is AckKind.ACCEPTED, first
    await finish_one(bot.worker, WORKER, [MODEL])
    reply = await bot.adapter.next_reply()
    assert reply.generation_id == first.generation_id
    assert reply.error is None
    assert reply.metadata["seed"] == "123"

    again = await bot.ask("reroll")
    assert again.kind is AckKind.ACCEPTED, again
    assert again.generation_id not in (None, first.generation_id)
    assert again.generation_id is not None
    assert first.generation_id is not None
    stored = await bot.store.generation(again.generation_id)
    original = await bot.store.generation(first.generation_id)
    assert stored is not None
    assert original is not None
    assert "seed" not in stored.payload["params"]
    assert stored.payload["prompt"] == original.payload["prompt"]
    assert stored.payload["params"]["steps"] == 4
    job = await finish_one(bot.worker, WORKER, [MODEL])
    assert job.payload is not None
    assert job.payload.prompt.startswith("a lighthouse at dusk")
    rerolled = await bot.adapter.next_reply()
    assert rerolled.generation_id == again.generation_id
    assert rerolled.metadata["seed"] != "123"
    assert rerolled.images


async def test_variations_keep_the_seed_and_step_from_it(bot: Bot) -> None:
    first = await bot.ask("dream", "a red fox --seed 77 --steps 4")
    assert first.kind is AckKind.ACCEPTED
    await finish_one(bot.worker, WORKER, [MODEL])
    await bot.adapter.next_reply()
    varied = await bot.ask("variations")
    assert varied.kind is AckKind.ACCEPTED, varied
    assert varied.generation_id is not None
    stored = await bot.store.generation(varied.generation_id)
    assert stored is not None
    assert stored.payload["params"]["seed"] == "77"
    assert stored.payload["params"]["seed_variation"] == 1
    assert stored.payload["params"]["n"] == 4


async def test_reroll_by_id_refuses_someone_elses_request(bot: Bot) -> None:
    first = await bot.ask("dream", "a quiet harbour --steps 4", user="bea")
    assert first.kind is AckKind.ACCEPTED
    assert first.generation_id is not None
    message = rejected(await bot.ask("reroll", first.generation_id))
    assert message.startswith("you have no request with that id")
    mine = await bot.ask("reroll", first.generation_id, user="bea")
    assert mine.kind is AckKind.ACCEPTED


async def test_a_redelivered_reroll_starts_nothing_twice(bot: Bot) -> None:
    first = await bot.ask("dream", "a kite --steps 4")
    assert first.kind is AckKind.ACCEPTED
    assert (await bot.ask("reroll", event_id="button")).kind is AckKind.ACCEPTED
    assert (await bot.ask("reroll", event_id="button")).kind is AckKind.DUPLICATE


async def _submitted(bot: Bot, generation_id: str) -> str:
    for _ in range(400):
        stored = await bot.store.generation(generation_id)
        assert stored is not None
        if stored.state is GenerationState.SUBMITTED and stored.horde_id:
            return stored.horde_id
        await asyncio.sleep(0.025)
    raise AssertionError("the generation never reached the horde")


async def test_cancel_stops_the_users_newest_request_at_the_horde(bot: Bot) -> None:
    assert rejected(await bot.ask("cancel")) == "you have no running request to cancel"
    started = await bot.ask("dream", "a slow painting --steps 4")
    assert started.kind is AckKind.ACCEPTED
    assert started.generation_id is not None
    horde_id = await _submitted(bot, started.generation_id)
    assert "no running request" in rejected(await bot.ask("cancel", user="someone"))
    assert answered(await bot.ask("cancel")).startswith("cancelled")
    reply = await bot.adapter.next_reply()
    assert reply.generation_id == started.generation_id
    assert reply.error is not None
    assert not reply.images
    status = await bot.client.status(horde_id)
    assert status.generations == []
    job = await check_in(bot.worker, WORKER, [MODEL])
    assert job.id is None, "a cancelled request is no longer handed out"
