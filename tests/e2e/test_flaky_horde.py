"""A horde failing 30 % of calls: every request still ends with one reply, most with images.

The bot side is real: a ``GenerationService`` on a SQLite store, a ``HordeClient`` with the horde's
published limits and a short timeout, and the ETA-aware ``HordePoller``, all talking to the
embedded horde through ``FlakyProxy`` (rate limits, ``TooManyPrompts``, 5xx, stalls past the
timeout). A worker played over HTTP, straight to the horde, finishes every job it is given. The
proxy's log of arrivals shows that the client never went over a limit, even while retrying.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from core.catalog import Catalog
from core.horde.client import HordeClient
from core.horde.poller import HordePoller, PollPolicy
from core.horde.ratelimit import HORDE_LIMITS
from core.horde.retry import RetryPolicy
from core.horde.wire import SubmitInput
from core.messages import AckKind, ChannelRef, Invocation, Reply, ReplyTarget, UserRef
from core.model_reference import load_model_reference
from core.payload import BuildSettings
from core.planner import CatalogPlanner
from core.service import GenerationService, ServiceSettings
from core.store import SecretBox, Store
from core.store.ledger import StoreLedger
from core.throttle import ThrottleRules
from styles.library import load_library
from tests.core.horde.conftest import (  # noqa: F401 - fixtures
    RunningHorde,
    embedded_horde,
    make_embedded_horde,
)
from tests.peers.flaky_proxy import (
    Call,
    Fault,
    FlakyProxy,
    endpoint_of,
    limit_breaches,
    tightest_window,
)
from tests.support.horde_worker import pop_input, tiny_webp
from tests.support.paths import SHARED_MODEL_REFERENCE, SHARED_STYLES
from tests.support.recording_adapter import RecordingAdapter

pytestmark = pytest.mark.slow

REQUESTS = 20
MODEL = "stable_diffusion"
PLATFORM = "console"
SEED = 2024
# Short enough that a stall is a timeout, long enough that a loaded 2-core machine is not one.
CLIENT_TIMEOUT_S = 2.0
STALL_S = CLIENT_TIMEOUT_S + 1.5
HOUR = 3600
# Arrivals are timed at the proxy, after two busy event loops. The client books slots 10 % past
# the limits, which a loaded machine can eat (a 1 s window came in at 0.6 s under three CPU hogs
# with staggered submissions). A client without limits, or one retrying past them, lands far below.
ARRIVAL_JITTER_S = 0.25


@pytest.fixture
def proxy(embedded_horde: RunningHorde) -> Iterator[FlakyProxy]:  # noqa: F811
    with FlakyProxy(embedded_horde.url, fault_rate=0.3, seed=SEED, stall_s=STALL_S) as flaky:
        yield flaky


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    return Catalog(
        library=load_library(str(SHARED_STYLES), tmp_path / "cache" / "styles", HOUR),
        reference=load_model_reference(str(SHARED_MODEL_REFERENCE), tmp_path / "cache" / "m", HOUR),
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(f"sqlite:///{tmp_path / 'bot.db'}", secret_box=SecretBox.generate())
    try:
        yield opened
    finally:
        await opened.close()


async def play_worker(client: HordeClient, stop: asyncio.Event) -> int:
    """Pop and finish jobs until told to stop; returns how many were handed in."""
    done = 0
    while not stop.is_set():
        job = await client.pop(pop_input("flaky-test-worker", [MODEL]))
        if job.id is None or job.payload is None:
            await asyncio.sleep(0.05)
            continue
        ids = job.ids or [job.id]
        uploads = job.r2_uploads or ([job.r2_upload] if job.r2_upload else [])
        for index, job_id in enumerate(ids):
            await client.upload_r2(uploads[index], tiny_webp())
            seed = int(job.payload.seed or 0)
            await client.submit(SubmitInput(id=job_id, generation="R2", seed=seed))
            done += 1
    return done


def invocation(number: int) -> Invocation:
    user = f"user-{number}"
    return Invocation(
        event_id=f"event-{number}",
        user=UserRef(PLATFORM, user),
        channel=ChannelRef(PLATFORM, "town-square", nsfw_allowed=False),
        target=ReplyTarget(PLATFORM, {"channel_id": "town-square", "line": number}),
        text=f"draw me a red fox number {number} --steps 4",
    )


async def wait_for_replies(adapter: RecordingAdapter, count: int, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while len(adapter.sent) < count:
            await asyncio.sleep(0.1)


async def test_30_percent_failing_horde_calls_still_give_every_request_one_good_end(
    embedded_horde: RunningHorde,  # noqa: F811
    proxy: FlakyProxy,
    catalog: Catalog,
    store: Store,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    bot_key = embedded_horde.add_user("hordebot", 100_000)
    worker_key = embedded_horde.add_user("worker-owner")
    quick_retries = RetryPolicy(attempts=4, base_delay_s=0.2, max_delay_s=2.0)
    poll = PollPolicy(first_check_s=0.5, min_interval_s=0.5, max_interval_s=2.0)
    adapter = RecordingAdapter(PLATFORM)
    stop_worker = asyncio.Event()
    async with (
        HordeClient(
            bot_key,
            base_url=proxy.url,
            timeout=httpx.Timeout(CLIENT_TIMEOUT_S),
            retry=quick_retries,
            limits=HORDE_LIMITS,
        ) as client,
        HordeClient(worker_key, base_url=embedded_horde.url) as worker_client,
        HordePoller(client, poll) as poller,
    ):
        service = GenerationService(
            ledger=StoreLedger(store),
            horde=client,
            poller=poller,
            planner=CatalogPlanner(catalog, BuildSettings(default_model=MODEL)),
            settings=ServiceSettings(
                images_dir=tmp_path / "images",
                progress_interval_s=3600,
                throttle=ThrottleRules(cooldown_seconds=0, max_concurrent=REQUESTS),
                busy_retry_s=0.5,
            ),
        )
        service.attach(adapter)
        worker = asyncio.create_task(play_worker(worker_client, stop_worker))
        try:
            # All at once, as a busy channel does: the client's limiter, not the store, spaces them.
            acks = await asyncio.gather(
                *(service.submit(invocation(number)) for number in range(REQUESTS))
            )
            assert [ack.kind for ack in acks] == [AckKind.ACCEPTED] * REQUESTS, acks
            await wait_for_replies(adapter, REQUESTS, timeout=90)
            async with asyncio.timeout(30):
                await service.wait_idle()
        finally:
            stop_worker.set()
            await service.stop()
            await asyncio.wait_for(worker, 30)

    replies: list[Reply] = [reply for _, reply in adapter.sent]
    errors = [reply.error for reply in replies if reply.error is not None]
    good = len(replies) - len(errors)
    calls = proxy.recorded()
    faults = proxy.fault_counts()
    by_endpoint = Counter(endpoint_of(call.method, call.path)[0] for call in calls)
    print(
        f"\n{len(calls)} calls through the proxy {dict(by_endpoint)}, faults {dict(faults)}; "
        f"{good}/{REQUESTS} with images, errors {errors}; "
        f"tightest limit window (key, rate, span/period): {tightest_window(calls, HORDE_LIMITS)}"
    )

    expected = {gid for ack in acks for gid in ack.generation_ids}
    assert len(replies) == REQUESTS, "one reply per request, and no second one"
    assert {reply.generation_id for reply in replies} == expected
    lines = {target.data["line"] for target, _ in adapter.sent}
    assert lines == set(range(REQUESTS)), "every request answered where it was asked"
    for reply in replies:
        if reply.error is None:
            assert reply.images, reply
            assert all(image.data.startswith(b"RIFF") for image in reply.images)
        else:
            assert not reply.images, reply
            assert reply.error.strip(), reply
            assert "\n" not in reply.error, "an error reply is one line"
    assert good >= 0.8 * REQUESTS, errors

    unexpected = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert unexpected == [], "no exception escaped into the logs"

    assert set(faults) == set(Fault), f"every kind of fault was met: {faults}"
    assert sum(faults.values()) >= 0.2 * len(calls), (faults, len(calls))
    assert limit_breaches(calls, HORDE_LIMITS, tolerance_s=ARRIVAL_JITTER_S) == []


def test_the_limit_check_catches_calls_over_a_limit() -> None:
    def check(request_id: str, at: float) -> Call:
        return Call(at, "GET", f"/api/v2/generate/check/{request_id}", None)

    spaced = [check("a", 0.0), check("a", 1.1), check("b", 1.2), check("a", 2.2)]
    assert limit_breaches(spaced, HORDE_LIMITS, tolerance_s=ARRIVAL_JITTER_S) == []
    hurried = [*spaced, check("a", 2.5)]
    breaches = limit_breaches(hurried, HORDE_LIMITS, tolerance_s=ARRIVAL_JITTER_S)
    assert len(breaches) == 1
    key, _, span = breaches[0]
    assert key == ("check", "a")
    assert span == pytest.approx(0.3)
    submissions = [Call(t / 10, "POST", "/api/v2/generate/async", None) for t in range(3)]
    assert len(limit_breaches(submissions, HORDE_LIMITS)) == 1, "3 submissions in 0.2 s"
