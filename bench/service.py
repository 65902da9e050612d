"""1,000 dream requests in flight in one process: peak memory and event-loop lag of the service.

One event loop holds everything a single-process deployment runs: the embedded horde (uvicorn +
SQLite in a temporary folder), the store (SQLite), the ``GenerationService`` with its shared
``HordePoller``, a recording adapter, and simulated GPU workers (tasks that pop a job, wait a
simulated job time, upload a tiny WebP and submit it). The requests come from distinct users, so
the per-user throttle admits them all, and the horde's per-user queue cap is raised above the
total. They are all handed to the service at once, as a burst of chat events would be.

Measured: how long until every request is acknowledged (stored) and delivered, peak RSS
(``ru_maxrss``, and ``VmRSS`` sampled from a thread so a blocked loop cannot hide a peak),
event-loop lag (a ticker that asks to wake every 10 ms records how late it wakes: p50/p99/max),
and the horde calls the bot makes per request. Goal: peak RSS < 250 MB, lag p99 < 50 ms.

By default the client-side rate limits and the poller's call budget are lifted, as the embedded
horde enforces no per-IP limits; ``--production-limits`` keeps the public horde's limits and the
default poll policy to show how long those alone make a burst take (use it with fewer requests).

    .venv/bin/python bench/service.py [--requests 1000] [--workers 25] [--job-s 0.5]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import resource
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

if __package__ in (None, ""):  # run as a script: make the repository (and tests/) importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.catalog import Catalog
from core.horde.client import DEFAULT_TIMEOUT, HordeClient
from core.horde.poller import HordePoller, PollPolicy
from core.horde.ratelimit import HORDE_LIMITS, Rate
from core.horde.server import EmbeddedHorde, HordeSettings
from core.horde.wire import SubmitInput
from core.messages import AckKind, ChannelRef, Invocation, Reply, ReplyTarget, UserRef
from core.model_reference import load_model_reference
from core.payload import BuildSettings
from core.planner import CatalogPlanner
from core.service import GenerationService, ServiceSettings
from core.store import SecretBox, Store
from core.store.ledger import StoreLedger
from styles.library import load_library
from tests.support.horde_worker import pop_input, tiny_webp
from tests.support.recording_adapter import RecordingAdapter

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MODEL = "stable_diffusion"
PLATFORM = "console"
TICK_S = 0.010
IDLE_POP_S = 1.0  # an idle worker asks again after this, as real workers do
RSS_GOAL_MB = 250.0
LAG_GOAL_MS = 50.0
NO_LIMITS: Mapping[str, tuple[Rate, ...]] = dict.fromkeys((*HORDE_LIMITS, "default"), ())
PROMPTS = (
    "a lighthouse on a cliff at dusk",
    "a fox in a snowy forest",
    "a red bicycle leaning on a wall",
    "a bowl of ramen, studio light",
)


# ---- measuring ---------------------------------------------------------------------------


def _vm_rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class RssSampler:
    """Samples ``VmRSS`` from a thread, so a peak shows even while the event loop is blocked."""

    def __init__(self, interval_s: float = 0.05) -> None:
        self.interval_s = interval_s
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak_kib = max(self.peak_kib, _vm_rss_kib())

    def __enter__(self) -> RssSampler:
        self.peak_kib = _vm_rss_kib()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_kib = max(self.peak_kib, _vm_rss_kib())


async def lag_ticker(lags_ms: list[float], stop: asyncio.Event) -> None:
    """Ask to wake every ``TICK_S`` and record how much later than asked the loop woke us."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        asked = loop.time()
        await asyncio.sleep(TICK_S)
        lags_ms.append(max(0.0, (loop.time() - asked - TICK_S) * 1000))


def quantile(values: list[float], q: float) -> float:
    """The ``q`` quantile by nearest rank (nan for no values)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


@dataclass
class Tally:
    """What the simulated peers and the bot's HTTP client counted."""

    bot_calls: Counter[str] = field(default_factory=Counter)
    worker_calls: Counter[str] = field(default_factory=Counter)
    jobs: int = 0
    errors: list[str] = field(default_factory=list)


def _endpoint(path: str) -> str:
    for marker, name in (
        ("/generate/async", "async"),
        ("/generate/check/", "check"),
        ("/generate/status/", "status"),
        ("/generate/pop", "pop"),
        ("/generate/submit", "submit"),
    ):
        if marker in path:
            return name
    return "r2" if "/_r2/" in path else "other"


class GatedTransport(httpx.AsyncBaseTransport):
    """At most ``limit`` requests inside httpcore's pool at once; the rest wait on a semaphore.

    httpcore rescans every pooled connection for every queued request whenever one is assigned
    or released, so a deep queue inside the pool costs CPU that a plain semaphore in front of
    it does not. ``--http-gate`` measures that proposed fix.
    """

    def __init__(self, limit: int) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self._gate = asyncio.Semaphore(limit)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send once a slot is free; the body is read inside the slot."""
        async with self._gate:
            response = await self._inner.handle_async_request(request)
            body = await response.aread()
            await response.aclose()
        return httpx.Response(
            response.status_code, headers=response.headers, content=body, request=request
        )

    async def aclose(self) -> None:
        """Close the pool."""
        await self._inner.aclose()


def counting_http(counter: Counter[str], gate: int = 0) -> httpx.AsyncClient:
    """An httpx client like ``HordeClient`` makes for itself, that counts calls by endpoint."""

    async def count(request: httpx.Request) -> None:
        counter[_endpoint(request.url.path)] += 1

    return httpx.AsyncClient(
        timeout=DEFAULT_TIMEOUT,
        event_hooks={"request": [count]},
        transport=GatedTransport(gate) if gate > 0 else None,
    )


class TimedAdapter(RecordingAdapter):
    """A recording adapter that also notes when each reply was sent (loop time)."""

    def __init__(self) -> None:
        super().__init__(PLATFORM)
        self.sent_at: dict[str, float] = {}
        self.errors: list[str] = []

    async def send(self, target: ReplyTarget, reply: Reply) -> str:
        """Keep the reply and its time; count replies that carry an error."""
        self.sent_at[reply.generation_id or ""] = asyncio.get_running_loop().time()
        if reply.error:
            self.errors.append(reply.error)
        return await super().send(target, reply)


# ---- the simulated workers ---------------------------------------------------------------


async def simulated_worker(
    client: HordeClient, name: str, job_s: float, stop: asyncio.Event, tally: Tally
) -> None:
    """Pop, "generate" for ``job_s``, upload the image (R2) or inline it, submit; until stopped."""
    image = tiny_webp()
    inline = base64.b64encode(image).decode()
    asking = pop_input(name, [MODEL])
    while not stop.is_set():
        job = await client.pop(asking)
        if job.id is None or job.payload is None:
            await asyncio.sleep(IDLE_POP_S)
            continue
        await asyncio.sleep(job_s)
        upload = job.r2_upload or (job.r2_uploads[0] if job.r2_uploads else None)
        if upload is not None:
            await client.upload_r2(upload, image)
        generation = "R2" if upload is not None else inline
        await client.submit(
            SubmitInput(id=job.id, generation=generation, seed=int(job.payload.seed or 0))
        )
        tally.jobs += 1


async def guarded(name: str, work: Awaitable[None], tally: Tally) -> None:
    """Await a peer; a crash is counted, not raised, so the run still reports."""
    try:
        await work
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        tally.errors.append(f"{name}: {type(exc).__name__}: {exc}")


# ---- the run -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Options:
    """The command-line knobs."""

    requests: int
    workers: int
    job_s: float
    timeout_s: float
    production_limits: bool
    http_gate: int


@dataclass
class Result:
    """What one run measured."""

    options: Options
    baseline_kib: int = 0
    acked: int = 0
    rejected: list[str] = field(default_factory=list)
    crashed: list[str] = field(default_factory=list)
    ack_s: float = float("nan")
    done_s: float = float("nan")
    timed_out: bool = False
    latencies_s: list[float] = field(default_factory=list)
    delivered: int = 0
    failed: int = 0
    lags_ms: list[float] = field(default_factory=list)
    most_in_flight: int = 0
    cpu_s: float = 0.0
    tally: Tally = field(default_factory=Tally)


def load_catalog(cache: Path) -> Catalog:
    """The shared reference data beside the repository, else the bundled fallbacks."""
    styles = SHARED_DATA / "horde-styles"
    models = SHARED_DATA / "model-reference" / "stable_diffusion.json"
    return Catalog(
        library=load_library(str(styles), cache / "styles", 3600),
        reference=load_model_reference(str(models), cache / "models", 3600),
    )


def invocation(number: int) -> Invocation:
    """A dream from its own user (``user-N``), so the per-user throttle admits every one."""
    user = f"user-{number}"
    return Invocation(
        event_id=f"event-{number}",
        user=UserRef(PLATFORM, user, display_name=user),
        channel=ChannelRef(PLATFORM, "room", nsfw_allowed=False, is_dm=False),
        target=ReplyTarget(PLATFORM, {"channel_id": "room", "line": number}),
        text=f"draw me {PROMPTS[number % len(PROMPTS)]} #{number}",
    )


async def run(options: Options, folder: Path, result: Result) -> None:
    """Start the stack, send the burst, wait for every reply (or the timeout), stop the stack."""
    loop = asyncio.get_running_loop()
    catalog = await asyncio.to_thread(load_catalog, folder / "cache")
    settings = HordeSettings(
        db_url=f"sqlite:///{folder / 'horde.db'}",
        user_concurrency=max(1000, 2 * options.requests),
        maintenance_interval_s=5.0,
    )
    limits = HORDE_LIMITS if options.production_limits else NO_LIMITS
    policy = PollPolicy() if options.production_limits else PollPolicy(max_calls_per_s=100_000)
    tally = result.tally
    stop = asyncio.Event()
    async with contextlib.AsyncExitStack() as stack:
        horde = await stack.enter_async_context(EmbeddedHorde(settings))
        bot_key = await horde.add_user("hordebot", kudos=1e12)
        worker_key = await horde.add_user("worker-owner")
        store = await Store.open(f"sqlite:///{folder / 'bot.db'}", secret_box=SecretBox.generate())
        stack.push_async_callback(store.close)
        bot_http = counting_http(tally.bot_calls, options.http_gate)
        worker_http = counting_http(tally.worker_calls, options.http_gate)
        stack.push_async_callback(bot_http.aclose)
        stack.push_async_callback(worker_http.aclose)
        client = HordeClient(bot_key, base_url=horde.url, http=bot_http, limits=limits)
        workers = HordeClient(worker_key, base_url=horde.url, http=worker_http, limits=NO_LIMITS)
        poller = await stack.enter_async_context(HordePoller(client, policy))
        service = GenerationService(
            ledger=StoreLedger(store),
            horde=client,
            poller=poller,
            planner=CatalogPlanner(catalog, BuildSettings(default_model=MODEL)),
            settings=ServiceSettings(images_dir=folder / "images"),
        )
        stack.push_async_callback(service.stop)
        adapter = TimedAdapter()
        service.attach(adapter)
        peers = [
            asyncio.create_task(
                guarded(
                    f"gpu-{i}",
                    simulated_worker(workers, f"gpu-{i}", options.job_s, stop, tally),
                    tally,
                )
            )
            for i in range(options.workers)
        ]
        ticker = asyncio.create_task(lag_ticker(result.lags_ms, stop))

        async def watch_in_flight() -> None:
            while not stop.is_set():
                in_flight = result.acked - len(adapter.sent_at)
                result.most_in_flight = max(result.most_in_flight, in_flight)
                await asyncio.sleep(0.1)

        watcher = asyncio.create_task(watch_in_flight())
        invocations = [invocation(n) for n in range(options.requests)]
        result.baseline_kib = _vm_rss_kib()
        cpu_before = sum(os.times()[:2])
        started = loop.time()
        acked_at: dict[str, float] = {}

        async def submit(inv: Invocation) -> None:
            try:
                ack = await service.submit(inv)
            except Exception as exc:  # a program error, not a refusal: count it, keep going
                result.crashed.append(f"submit: {type(exc).__name__}: {str(exc)[:120]}")
                return
            if ack.kind is not AckKind.ACCEPTED:
                result.rejected.append(f"{ack.kind}: {ack.message}")
                return
            result.acked += 1
            now = loop.time()
            for generation_id in ack.generation_ids:
                acked_at[generation_id] = now

        try:
            async with asyncio.timeout(options.timeout_s):
                await asyncio.gather(*(submit(inv) for inv in invocations))
                result.ack_s = loop.time() - started
                await service.wait_idle()
                result.done_s = loop.time() - started
        except TimeoutError:
            result.timed_out = True
        result.cpu_s = sum(os.times()[:2]) - cpu_before
        result.delivered = len(adapter.sent_at)
        result.failed = len(adapter.errors)
        result.latencies_s = [
            sent - acked_at[gid] for gid, sent in adapter.sent_at.items() if gid in acked_at
        ]
        tally.errors.extend(adapter.errors[:5])
        stop.set()
        await asyncio.gather(ticker, watcher, *peers, return_exceptions=True)


# ---- report ------------------------------------------------------------------------------


def report(result: Result, ru_maxrss_kib: int, vm_peak_kib: int) -> bool:
    """Print the table; True when both goals are met and every request was delivered."""
    o, t = result.options, result.tally
    n = max(1, result.acked)
    lags = result.lags_ms
    limits = "production limits + default poll budget" if o.production_limits else "limits lifted"
    if o.http_gate:
        limits += f", http gate {o.http_gate}"
    print(
        f"service under load: {o.requests} dreams from {o.requests} users, {o.workers} simulated "
        f"workers ({o.job_s:g} s a job), embedded horde + SQLite store, one process, {limits}"
    )
    print(
        f"  acknowledged (stored)  {result.acked} in {result.ack_s:6.1f} s; "
        f"refused {len(result.rejected)}, submit raised {len(result.crashed)}"
    )
    state = "TIMED OUT" if result.timed_out else f"in {result.done_s:6.1f} s"
    print(
        f"  delivered              {result.delivered} {state}  ({result.failed} as errors); "
        f"ack → reply p50 {quantile(result.latencies_s, 0.5):.1f} s, "
        f"p99 {quantile(result.latencies_s, 0.99):.1f} s"
    )
    print(f"  most in flight at once {result.most_in_flight}")
    calls = t.bot_calls
    print(
        "  bot's horde calls/req  "
        + "  ".join(f"{k} {calls[k] / n:.2f}" for k in ("async", "check", "status", "r2", "other"))
        + f"  = {calls.total() / n:.2f}"
    )
    print(
        f"  worker calls           pop {t.worker_calls['pop']} ({t.jobs} jobs), "
        f"upload {t.worker_calls['r2']}, submit {t.worker_calls['submit']}"
    )
    rss_mb = max(ru_maxrss_kib, vm_peak_kib) / 1024
    print(
        f"  peak RSS               ru_maxrss {ru_maxrss_kib / 1024:.0f} MB, VmRSS peak "
        f"{vm_peak_kib / 1024:.0f} MB (before the burst {result.baseline_kib / 1024:.0f} MB)"
        f"   goal < {RSS_GOAL_MB:.0f} MB"
    )
    p99 = quantile(lags, 0.99)
    print(
        f"  event-loop lag         p50 {quantile(lags, 0.5):.1f} ms, p99 {p99:.1f} ms, "
        f"max {max(lags, default=float('nan')):.0f} ms over {len(lags)} ticks"
        f"   goal p99 < {LAG_GOAL_MS:.0f} ms"
    )
    wall = result.done_s if not result.timed_out else o.timeout_s
    print(f"  CPU                    {result.cpu_s:.1f} s over {wall:.1f} s wall")
    for problem in sorted({*result.rejected, *result.crashed, *t.errors})[:8]:
        print(f"    {problem}")
    met = rss_mb < RSS_GOAL_MB and p99 < LAG_GOAL_MS
    complete = not result.timed_out and result.delivered == o.requests and not result.failed
    print(f"  goals {'met' if met else 'NOT met'}; {'all' if complete else 'NOT all'} delivered")
    return met and complete


def main() -> int:
    """Parse the flags, run once, print the table."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=25)
    parser.add_argument("--job-s", type=float, default=0.5, help="simulated seconds per job")
    parser.add_argument("--timeout", type=float, default=120.0, help="give up after (s)")
    parser.add_argument(
        "--production-limits",
        action="store_true",
        help="keep the public horde's client-side limits and the default poll budget",
    )
    parser.add_argument(
        "--http-gate",
        type=int,
        default=0,
        metavar="N",
        help="let at most N requests into each httpx pool at once (0: no gate, as in production)",
    )
    args = parser.parse_args()
    options = Options(
        args.requests,
        args.workers,
        args.job_s,
        args.timeout,
        args.production_limits,
        args.http_gate,
    )
    result = Result(options)
    with tempfile.TemporaryDirectory() as folder, RssSampler() as rss:
        asyncio.run(run(options, Path(folder), result))
    ru_maxrss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return 0 if report(result, ru_maxrss_kib, rss.peak_kib) else 1


if __name__ == "__main__":
    raise SystemExit(main())
