"""HordeClient over real HTTP against a small stateful horde stand-in on 127.0.0.1.

The stand-in misbehaves on purpose, per request id or prompt: rate limits with ``Retry-After``
(seconds or a date), bad gateways, outages, answers slower than the client's timeout, and an
endless image. It counts what it received, so the tests can tell a retry from a double submission.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from core.horde import errors
from core.horde.client import HordeClient
from core.horde.retry import RetryPolicy
from core.horde.wire import GenerationInput

API_KEY = "key-for-tests-0f9e8d"
CHECK = {"finished": 0, "processing": 1, "waiting": 0, "done": False, "wait_time": 9}


@dataclass
class FlakyHorde:
    """The stand-in's state: how often each thing was asked, and what the uploads carried."""

    url: str = ""
    hits: Counter[str] = field(default_factory=Counter)
    uploads: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)


def build_app(state: FlakyHorde) -> Starlette:
    async def check(request: Request) -> Response:
        request_id = request.path_params["request_id"]
        state.hits[request_id] += 1
        first = state.hits[request_id] == 1
        if request_id == "limited-seconds" and first:
            return JSONResponse({"message": "1 per 1 second"}, 429, headers={"Retry-After": "7"})
        if request_id == "limited-date" and first:
            when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
            return JSONResponse({"message": "1 per 1 second"}, 429, headers={"Retry-After": when})
        if request_id == "gateway" and state.hits[request_id] <= 2:
            return Response("<html>502 Bad Gateway</html>", 502, media_type="text/html")
        if request_id == "down":
            return JSONResponse({"message": "Internal Server Error"}, 500)
        if request_id == "slow" and first:
            await state.release.wait()
        if request_id == "expired":
            return JSONResponse({"message": "not found", "rc": "RequestNotFound"}, 404)
        return JSONResponse(CHECK)

    async def generate(request: Request) -> Response:
        body = await request.json()
        state.hits["async"] += 1
        if body["prompt"] == "slow":
            await state.release.wait()
        return JSONResponse({"id": "req-1", "kudos": 10}, 202)

    async def big_image(request: Request) -> Response:
        async def endless() -> AsyncIterator[bytes]:
            for _ in range(10_000):
                state.hits["image-chunks"] += 1
                yield b"x" * 65536

        return StreamingResponse(endless(), media_type="image/webp")

    async def upload(request: Request) -> Response:
        state.uploads.append((dict(request.headers), await request.body()))
        return Response(status_code=200)

    return Starlette(
        routes=[
            Route("/api/v2/generate/check/{request_id}", check),
            Route("/api/v2/generate/async", generate, methods=["POST"]),
            Route("/r2/big.webp", big_image),
            Route("/r2/upload", upload, methods=["PUT"]),
        ]
    )


@pytest.fixture
async def flaky_horde() -> AsyncIterator[FlakyHorde]:
    state = FlakyHorde()
    config = uvicorn.Config(
        build_app(state),
        host="127.0.0.1",
        port=0,
        lifespan="off",
        log_level="warning",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    state.url = f"http://127.0.0.1:{port}"
    yield state
    state.release.set()
    server.should_exit = True
    await serving


class Waits:
    """Stands in for sleeping: records each wait and moves a clock the limiter reads."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def client_for(horde: FlakyHorde, waits: Waits, **kwargs: object) -> HordeClient:
    return HordeClient(
        API_KEY,
        base_url=f"{horde.url}/api",
        clock=waits.clock,
        sleep=waits.sleep,
        rng=random.Random(1),
        **kwargs,  # type: ignore[arg-type]
    )


async def test_retry_after_seconds_is_honoured(
    flaky_horde: FlakyHorde, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # The CLI quiets these loggers; a test that ran it earlier in this process must not hide them.
    for name in ("httpx", "httpcore"):
        caplog.set_level(logging.DEBUG, logger=name)
    waits = Waits()
    async with client_for(flaky_horde, waits) as client:
        check = await client.check("limited-seconds")
    assert check.wait_time == 9
    assert flaky_horde.hits["limited-seconds"] == 2
    assert sum(waits.slept) >= 7.0
    # Neither we nor httpx/httpcore, logging at DEBUG, may write the key down.
    assert "httpx" in caplog.text or "httpcore" in caplog.text
    assert API_KEY not in caplog.text


async def test_retry_after_as_a_date_is_honoured(flaky_horde: FlakyHorde) -> None:
    waits = Waits()
    async with client_for(flaky_horde, waits) as client:
        await client.check("limited-date")
    assert flaky_horde.hits["limited-date"] == 2
    # The date has one-second resolution and a moment passed on the wire.
    assert sum(waits.slept) >= 28.0


async def test_bad_gateways_are_retried(flaky_horde: FlakyHorde) -> None:
    waits = Waits()
    async with client_for(flaky_horde, waits) as client:
        await client.check("gateway")
    assert flaky_horde.hits["gateway"] == 3


async def test_an_outage_is_given_up_after_the_attempts(flaky_horde: FlakyHorde) -> None:
    waits = Waits()
    async with client_for(flaky_horde, waits, retry=RetryPolicy(attempts=3)) as client:
        with pytest.raises(errors.ServerError) as caught:
            await client.check("down")
    assert flaky_horde.hits["down"] == 3
    assert caught.value.status == 500


async def test_a_timed_out_read_is_asked_again(flaky_horde: FlakyHorde) -> None:
    waits = Waits()
    async with client_for(flaky_horde, waits, timeout=0.3) as client:
        await client.check("slow")
    assert flaky_horde.hits["slow"] == 2


async def test_a_timed_out_submission_is_not_sent_again(flaky_horde: FlakyHorde) -> None:
    waits = Waits()
    async with client_for(flaky_horde, waits, timeout=0.3) as client:
        with pytest.raises(errors.SubmissionUncertain):
            await client.generate(GenerationInput(prompt="slow"))
    assert flaky_horde.hits["async"] == 1


async def test_request_not_found_over_http(flaky_horde: FlakyHorde) -> None:
    async with client_for(flaky_horde, Waits()) as client:
        with pytest.raises(errors.RequestNotFound):
            await client.check("expired")


async def test_a_streamed_image_is_cut_at_the_cap(flaky_horde: FlakyHorde) -> None:
    async with client_for(flaky_horde, Waits(), max_image_bytes=1_000_000) as client:
        with pytest.raises(errors.ImageTooLarge):
            await client.fetch_image(f"{flaky_horde.url}/r2/big.webp")
    assert flaky_horde.hits["image-chunks"] < 1000


async def test_upload_reaches_the_store_as_raw_bytes(flaky_horde: FlakyHorde) -> None:
    async with client_for(flaky_horde, Waits()) as client:
        await client.upload_r2(f"{flaky_horde.url}/r2/upload", b"RIFF\x00\x01webp")
    headers, body = flaky_horde.uploads[0]
    assert body == b"RIFF\x00\x01webp"
    assert "content-type" not in headers
    assert "apikey" not in headers
