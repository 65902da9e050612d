"""A flaky reverse proxy before a horde: a seeded share of calls fail as the real one fails.

``FlakyProxy(upstream)`` serves on 127.0.0.1 port 0 from a background thread and mirrors the
upstream's paths, so a client pointed at ``proxy.url`` talks to the upstream through it. With the
probability ``fault_rate`` a call is answered with a fault instead:

- ``RATE_LIMITED``: 429 with ``Retry-After: 1`` and no ``rc`` (flask-limiter's answer);
- ``TOO_MANY_PROMPTS``: 429 with ``rc`` ``TooManyPrompts`` (submissions only);
- ``SERVER_ERROR`` / ``BAD_GATEWAY`` / ``UNAVAILABLE``: 500 / 502 / 503, the request never
  reaching the horde;
- ``STALL``: the request *is* forwarded, but the answer is held for ``stall_s`` (longer than the
  client's timeout), as when the horde acted and the reply was lost on the way.

Every other call is forwarded with httpx. Each endpoint (see ``endpoint_of``) draws from its own
RNG seeded from ``seed``, so the k-th submission gets the same fate in every run whatever order the
polls interleave in. Every call that arrives is recorded in ``calls`` (arrival time, method, path,
fault) so a test can check, with ``limit_breaches``, that the client kept the horde's limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType
from typing import Self

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from core.horde.ratelimit import Rate
from core.horde.wire import ErrorBody
from tests.peers.loopback import loopback_server, wait_started

_METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH"]
# Headers that describe one hop, not the message; httpx and uvicorn set their own.
_HOP_HEADERS = frozenset(
    {
        "connection",
        "content-encoding",
        "content-length",
        "host",
        "keep-alive",
        "transfer-encoding",
        "upgrade",
    }
)
_START_TIMEOUT_S = 10.0

#: How the horde counts a call: endpoint name, plus the request id where it limits per id.
Key = tuple[str, str | None]


class Fault(StrEnum):
    """How the proxy can spoil one call."""

    RATE_LIMITED = "429 rate limit"
    TOO_MANY_PROMPTS = "429 TooManyPrompts"
    SERVER_ERROR = "500"
    BAD_GATEWAY = "502"
    UNAVAILABLE = "503"
    STALL = "stall"


#: Faults that make sense for any call; ``TooManyPrompts`` only answers a submission.
_ANY_CALL = (
    Fault.RATE_LIMITED,
    Fault.SERVER_ERROR,
    Fault.BAD_GATEWAY,
    Fault.UNAVAILABLE,
    Fault.STALL,
)
_SUBMISSION = (*_ANY_CALL, Fault.TOO_MANY_PROMPTS)


@dataclass(frozen=True, slots=True)
class Call:
    """One call that reached the proxy: when (``time.monotonic``), what, and how it was spoiled."""

    at: float
    method: str
    path: str
    fault: Fault | None


def endpoint_of(method: str, path: str) -> Key:
    """The client's endpoint name for a call and, where the horde limits per id, that id.

    Names match ``core.horde.ratelimit.HORDE_LIMITS``; anything unknown is ``default``.
    """
    parts = [part for part in path.split("/") if part]
    if "v2" in parts:
        parts = parts[parts.index("v2") + 1 :]
    match method, parts:
        case "POST", ["generate", "async"]:
            return "async", None
        case "GET", ["generate", "check", request_id]:
            return "check", request_id
        case "GET", ["generate", "status", request_id]:
            return "status", request_id
        case "DELETE", ["generate", "status", request_id]:
            return "cancel", request_id
        case "POST", ["generate", "pop"]:
            return "pop", None
        case "POST", ["generate", "submit"]:
            return "submit", None
        case "POST", ["kudos", "transfer"]:
            return "transfer", None
        case "GET", ["find_user"]:
            return "find_user", None
        case "GET", ["status", "models"]:
            return "models", None
        case "GET", ["status", "heartbeat"]:
            return "heartbeat", None
        case "GET", ["workers"]:
            return "workers", None
    return "default", None


def windows(
    calls: Iterable[Call], limits: Mapping[str, Sequence[Rate]]
) -> Iterator[tuple[Key, Rate, float]]:
    """For each limit, the span of every run of N + 1 consecutive calls it counts together.

    Calls are grouped as the horde counts them (endpoint, plus the request id where it limits
    per id). A rate of N per P seconds holds when every such span is at least P: a sliding
    window, stricter than the horde's fixed ones.
    """
    times: dict[Key, list[float]] = defaultdict(list)
    for call in calls:
        times[endpoint_of(call.method, call.path)].append(call.at)
    for key, arrivals in times.items():
        endpoint = key[0]
        rates = limits[endpoint] if endpoint in limits else limits.get("default", ())
        arrivals.sort()
        for rate in rates:
            for first, last in zip(arrivals, arrivals[rate.count :], strict=False):
                yield key, rate, last - first


def limit_breaches(
    calls: Iterable[Call], limits: Mapping[str, Sequence[Rate]], *, tolerance_s: float = 0.0
) -> list[tuple[Key, Rate, float]]:
    """Every run of N + 1 calls that arrived within less than a limit's period P.

    ``tolerance_s`` forgives spans that short of P by at most that much: arrival times carry the
    jitter of both event loops between the client's send and the proxy's clock.
    """
    return [
        (key, rate, span)
        for key, rate, span in windows(calls, limits)
        if span < rate.period_s - tolerance_s
    ]


def tightest_window(
    calls: Iterable[Call], limits: Mapping[str, Sequence[Rate]]
) -> tuple[Key, Rate, float] | None:
    """The window with the smallest span / period, as (key, rate, ratio); above 1.0 is kept."""
    ratios = ((key, rate, span / rate.period_s) for key, rate, span in windows(calls, limits))
    return min(ratios, key=lambda window: window[2], default=None)


class FlakyProxy:
    """The proxy and what it saw; ``start()``/``stop()`` or use it as a context manager."""

    def __init__(
        self,
        upstream: str,
        *,
        fault_rate: float = 0.3,
        seed: int = 0,
        stall_s: float = 3.0,
    ) -> None:
        if not 0.0 <= fault_rate <= 1.0:
            raise ValueError(f"fault_rate must be within 0..1, not {fault_rate}")
        self.upstream = httpx.URL(upstream)
        self.fault_rate = fault_rate
        self.seed = seed
        self.stall_s = stall_s
        self.calls: list[Call] = []
        self._rngs: dict[str, random.Random] = {}
        self._bags: dict[str, list[Fault]] = {}
        self._closing: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._http: httpx.AsyncClient | None = None
        self.port = 0

    # ---- what a test reads ---------------------------------------------------------------

    @property
    def url(self) -> str:
        """The upstream URL with the proxy's origin (so ``/api`` stays ``/api``)."""
        return str(self.upstream.copy_with(host="127.0.0.1", port=self.port)).rstrip("/")

    def recorded(self) -> list[Call]:
        """A snapshot of the calls so far."""
        with self._lock:
            return list(self.calls)

    def fault_counts(self) -> Counter[Fault]:
        """How many calls got each fault."""
        return Counter(call.fault for call in self.recorded() if call.fault is not None)

    # ---- HTTP ----------------------------------------------------------------------------

    def _draw(self, endpoint: str) -> Fault | None:
        with self._lock:
            rng = self._rngs.setdefault(endpoint, random.Random(f"{self.seed}/{endpoint}"))
            if rng.random() >= self.fault_rate:
                return None
            # A shuffled bag rather than independent draws: a few dozen calls meet every kind.
            bag = self._bags.setdefault(endpoint, [])
            if not bag:
                bag.extend(_SUBMISSION if endpoint == "async" else _ANY_CALL)
                rng.shuffle(bag)
            return bag.pop()

    async def _handle(self, request: Request) -> Response:
        method, path = request.method, request.url.path
        endpoint, _ = endpoint_of(method, path)
        fault = self._draw(endpoint)
        with self._lock:
            self.calls.append(Call(time.monotonic(), method, path, fault))
        match fault:
            case Fault.RATE_LIMITED:
                body = ErrorBody(message="Rate limit exceeded: 2 per 1 second")
                return JSONResponse(
                    body.model_dump(exclude_none=True),
                    status_code=429,
                    headers={"Retry-After": "1"},
                )
            case Fault.TOO_MANY_PROMPTS:
                body = ErrorBody(
                    message="You have too many images waiting; wait for some to finish.",
                    rc="TooManyPrompts",
                )
                return JSONResponse(body.model_dump(exclude_none=True), status_code=429)
            case Fault.SERVER_ERROR:
                return Response("Internal Server Error", status_code=500)
            case Fault.BAD_GATEWAY:
                return Response("<html><body>502 Bad Gateway</body></html>", status_code=502)
            case Fault.UNAVAILABLE:
                return Response("<html><body>503 Service Unavailable</body></html>", 503)
        answer = await self._forward(request)
        if fault is Fault.STALL and self._closing is not None:
            # Held until the client has given up, or until the proxy stops.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self.stall_s)
        return answer

    async def _forward(self, request: Request) -> Response:
        if self._http is None:
            raise RuntimeError("the proxy is not running")
        url = self.upstream.copy_with(path=request.url.path, query=request.url.query.encode())
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS]
        upstream = await self._http.request(
            request.method, url, headers=headers, content=await request.body()
        )
        kept = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_HEADERS}
        return Response(upstream.content, status_code=upstream.status_code, headers=kept)

    def app(self) -> Starlette:
        """Every path and method goes to ``_handle``."""
        return Starlette(routes=[Route("/{path:path}", self._handle, methods=_METHODS)])

    # ---- lifecycle -----------------------------------------------------------------------

    async def _serve(self, server: uvicorn.Server) -> None:
        self._loop = asyncio.get_running_loop()
        self._closing = asyncio.Event()
        async with httpx.AsyncClient(timeout=30.0) as http:
            self._http = http
            try:
                await server.serve()
            finally:
                self._http = None

    def start(self) -> Self:
        """Serve on 127.0.0.1, a free port, in a daemon thread; returns once accepting."""
        server = loopback_server(self.app(), timeout_graceful_shutdown=1)
        self._server = server
        self._thread = threading.Thread(
            target=asyncio.run, args=(self._serve(server),), name="flaky-proxy", daemon=True
        )
        self._thread.start()
        self.port = wait_started(server, self._thread, "flaky proxy", _START_TIMEOUT_S)
        return self

    def stop(self) -> None:
        """Stop serving (stalled answers are cut off) and wait for the thread."""
        if self._server is not None and self._thread is not None:
            if self._loop is not None and self._closing is not None:
                self._loop.call_soon_threadsafe(self._closing.set)
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
