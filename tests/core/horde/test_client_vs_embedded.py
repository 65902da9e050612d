"""HordeClient and HordePoller against the embedded horde, over real HTTP on 127.0.0.1.

One client plays the requester, another (with its own key) plays a worker with pop, R2 upload and
submit, so every call the bots and the worker make crosses a real socket once. Skipped while the
``embedded_horde`` fixture (tests/core/horde/conftest.py) is not there.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from PIL import Image

from core.horde import errors
from core.horde.client import HordeClient
from core.horde.poller import HordePoller, PollPolicy
from core.horde.ratelimit import HORDE_LIMITS, per_second
from core.horde.wire import GenerationInput, GenerationParams, PopInput, PopResponse, SubmitInput

MODEL = "stable_diffusion"
AGENT = "hordebot-worker:0.1.0:https://github.com/hordebot/hordebot"
# Tests must not wait out the real once-a-second check and transfer limits.
FAST_LIMITS = {**HORDE_LIMITS, "check": (per_second(20),), "transfer": (per_second(20),)}


@dataclass
class Peers:
    url: str
    requester: HordeClient
    worker: HordeClient
    requester_key: str
    worker_key: str


def webp(colour: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), colour).save(buffer, "WEBP")
    return buffer.getvalue()


async def add_user(horde: Any, name: str, kudos: float) -> str:
    key = horde.add_user(name, kudos)
    if inspect.isawaitable(key):
        key = await key
    assert isinstance(key, str)
    return key


@pytest.fixture
async def peers(request: pytest.FixtureRequest) -> AsyncIterator[Peers]:
    try:
        horde = request.getfixturevalue("embedded_horde")
    except pytest.FixtureLookupError:
        pytest.skip("waits on the embedded_horde fixture (helper C)")
    requester_key = await add_user(horde, "alice", 5000)
    worker_key = await add_user(horde, "bob", 100)
    async with (
        HordeClient(requester_key, base_url=horde.url, limits=FAST_LIMITS) as requester,
        HordeClient(worker_key, base_url=horde.url) as worker,
    ):
        yield Peers(horde.url, requester, worker, requester_key, worker_key)


def request(*, r2: bool = True, prompt: str = "a red square ### blurry") -> GenerationInput:
    return GenerationInput(
        prompt=prompt,
        params=GenerationParams(steps=10, width=512, height=512),
        models=[MODEL],
        r2=r2,
        nsfw=False,
        censor_nsfw=False,
    )


async def pop_job(worker: HordeClient, name: str = "hordebot-test-worker") -> PopResponse:
    pop = PopInput(name=name, models=[MODEL], bridge_agent=AGENT, nsfw=True)
    for _ in range(20):
        job = await worker.pop(pop)
        if job.id is not None:
            return job
        await asyncio.sleep(0.05)
    raise AssertionError(f"no job popped; skipped: {job.skipped}")


def seed_of(job: PopResponse) -> int:
    assert job.payload is not None
    return int(job.payload.seed or 0)


async def test_generate_check_pop_upload_submit_status_and_download(peers: Peers) -> None:
    accepted = await peers.requester.generate(request(r2=True))
    check = await peers.requester.check(accepted.id)
    assert (check.done, check.waiting) == (False, 1)

    job = await pop_job(peers.worker)
    assert job.payload is not None
    assert job.payload.prompt.startswith("a red square")
    upload = job.r2_upload or (job.r2_uploads[0] if job.r2_uploads else None)
    assert upload is not None, "the embedded horde hands out an upload link"
    image = webp()
    await peers.worker.upload_r2(upload, image)
    reward = await peers.worker.submit(
        SubmitInput(id=job.id or "", generation="R2", seed=seed_of(job))
    )
    assert reward.reward > 0

    assert (await peers.requester.check(accepted.id)).done
    status = await peers.requester.status(accepted.id)
    assert status.done
    assert len(status.generations) == 1
    generation = status.generations[0]
    assert generation.img.startswith("http")
    assert generation.seed == str(seed_of(job))
    data = await peers.requester.fetch_image(generation)
    assert data[:4] == b"RIFF"
    assert data[8:12] == b"WEBP"

    counts = await peers.requester.worker_counts()
    assert counts.get(MODEL, 0) >= 1


async def test_base64_results_when_r2_is_off(peers: Peers) -> None:
    accepted = await peers.requester.generate(request(r2=False))
    job = await pop_job(peers.worker)
    image = webp((10, 200, 10))
    await peers.worker.submit(
        SubmitInput(id=job.id or "", generation=base64.b64encode(image).decode(), seed=seed_of(job))
    )
    status = await peers.requester.status(accepted.id)
    generation = status.generations[0]
    assert not generation.img.startswith("http")
    data = await peers.requester.fetch_image(generation)
    assert data[:4] == b"RIFF"


async def test_the_poller_follows_a_request_over_http(peers: Peers) -> None:
    accepted = await peers.requester.generate(request())
    policy = PollPolicy(first_check_s=0.05, min_interval_s=0.1, max_interval_s=0.3)
    async with HordePoller(peers.requester, policy) as poller:
        final = poller.track(accepted.id)
        job = await pop_job(peers.worker)
        await peers.worker.upload_r2(job.r2_upload or job.r2_uploads[0], webp())
        await peers.worker.submit(SubmitInput(id=job.id or "", generation="R2", seed=seed_of(job)))
        status = await asyncio.wait_for(final, timeout=30)
    assert status.done
    assert len(status.generations) == 1


async def test_cancel_before_any_worker(peers: Peers) -> None:
    accepted = await peers.requester.generate(request())
    cancelled = await peers.requester.cancel(accepted.id)
    assert cancelled.finished == 0
    assert cancelled.generations == []


async def test_dry_run_costs_kudos_without_a_request(peers: Peers) -> None:
    before = await peers.requester.find_user()
    cost = await peers.requester.dry_run(request())
    after = await peers.requester.find_user()
    assert cost.kudos > 0
    assert after.kudos == before.kudos


async def test_find_user_and_kudos_transfer_with_idempotency_key(peers: Peers) -> None:
    alice = await peers.requester.find_user()
    bob = await peers.worker.find_user()
    assert alice.username.startswith("alice#")
    moved = await peers.requester.transfer_kudos(bob.username, 25, idempotency_key="gift-1")
    again = await peers.requester.transfer_kudos(bob.username, 25, idempotency_key="gift-1")
    assert moved.transferred == 25
    assert again.transferred == 25
    assert (await peers.worker.find_user()).kudos == bob.kudos + 25, "the replay moved nothing"
    with pytest.raises(errors.KudosTransferNotEnough):
        await peers.worker.transfer_kudos(alice.username, 1_000_000)


async def test_refusals_arrive_as_typed_errors(peers: Peers) -> None:
    with pytest.raises(errors.RequestNotFound):
        await peers.requester.check("00000000-0000-0000-0000-000000000000")
    stranger = peers.requester.with_key("not-a-key-anyone-has")
    with pytest.raises((errors.InvalidAPIKey, errors.UserNotFound)):
        await stranger.find_user()
    assert (await peers.requester.heartbeat()).message == "OK"
    assert isinstance(await peers.requester.workers(), list)
