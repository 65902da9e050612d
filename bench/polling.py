"""Horde calls per completed request: the ETA-aware ``HordePoller`` against a fixed 5 s poll.

Both strategies run against the same simulated horde, in virtual time (an event loop whose clock
jumps to the next timer instead of waiting), so hours of traffic take well under a second. The
simulated horde draws each request's queue wait and generation time at submission; ``check``
answers ``wait_time`` as a noisy estimate of the time left (a per-request bias of ±30 % times a
per-call jitter of ±10 %, rounded to whole seconds, as the horde does), a queue position, and
done/faulted flags; ``status`` adds the images. A few requests fault.

Run: ``.venv/bin/python bench/polling.py``. Prints, per workload, calls per completed request
(submit + checks + status: median, p90, mean) and how long after the horde finished the client
noticed (latency), then the ratio of the two strategies. The same simulation backs
``tests/core/horde/test_poller_simulation.py``.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import random
import selectors
import statistics
import sys
from collections import defaultdict
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.horde.errors import RequestNotFound
from core.horde.poller import HordePoller, PollPolicy
from core.horde.wire import Generation, RequestStatusCheck, RequestStatusStable

T = TypeVar("T")
Strategy = Literal["eta", "fixed"]


# ---- virtual time ------------------------------------------------------------------------


class _VirtualSelector(selectors.SelectSelector):
    """Never blocks: when nothing is ready it advances the virtual clock to the next timer."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = super().select(0)
        if ready or (timeout is not None and timeout <= 0):
            return ready
        if timeout is None:
            raise RuntimeError("virtual time: every task waits for something that never comes")
        self.now += timeout
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An asyncio loop on a virtual clock: ``asyncio.sleep(60)`` returns at once, 60 s later."""

    def __init__(self) -> None:
        self._virtual = _VirtualSelector()
        super().__init__(self._virtual)

    def time(self) -> float:
        return self._virtual.now


def run_virtual(main: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion on a fresh virtual-time loop."""
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(main)
    finally:
        try:
            # As asyncio.run does: whatever is left (after a failure) is cancelled and awaited.
            leftovers = asyncio.all_tasks(loop)
            for task in leftovers:
                task.cancel()
            if leftovers:
                loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()


# ---- the simulated horde -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Workload:
    """Traffic and horde behaviour for one simulation run."""

    requests: int = 300
    mean_gap_s: float = 3.0
    queue_s: tuple[float, float] = (0.0, 40.0)
    work_s: tuple[float, float] = (8.0, 20.0)
    bias: tuple[float, float] = (0.7, 1.3)
    jitter: float = 0.1
    fault_rate: float = 0.02
    latency_s: float = 0.15
    seed: int = 1


@dataclass(frozen=True, slots=True)
class _Request:
    submitted_at: float
    started_at: float
    done_at: float
    bias: float
    images: int
    faults: bool


@dataclass
class SimulatedHorde:
    """An in-process horde answering ``check``/``status``/``cancel`` from the virtual clock."""

    workload: Workload
    rng: random.Random
    requests: dict[str, _Request] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    call_times: list[float] = field(default_factory=list)
    check_times: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    status_calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    async def _network(self) -> None:
        await asyncio.sleep(self.workload.latency_s)

    async def submit(self) -> str:
        """Accept a request (one call) and draw how long it will take."""
        await self._network()
        w, rng = self.workload, self.rng
        request_id = f"req-{len(self.requests):05d}"
        now = self._now()
        started = now + rng.uniform(*w.queue_s)
        self.requests[request_id] = _Request(
            submitted_at=now,
            started_at=started,
            done_at=started + rng.uniform(*w.work_s),
            bias=rng.uniform(*w.bias),
            images=rng.choice((1, 1, 2, 4)),
            faults=rng.random() < w.fault_rate,
        )
        self.calls[request_id] += 1
        return request_id

    def _progress(self, request_id: str) -> dict[str, Any]:
        request = self.requests.get(request_id)
        if request is None:
            raise RequestNotFound("request not found", status=404)
        now = self._now()
        done = now >= request.done_at
        queued = now < request.started_at
        estimate = max(0.0, request.done_at - now) * request.bias
        estimate *= 1 + self.rng.uniform(-self.workload.jitter, self.workload.jitter)
        return {
            "finished": request.images if done and not request.faults else 0,
            "processing": 0 if queued or done else request.images,
            "waiting": request.images if queued else 0,
            "restarted": 3 if done and request.faults else 0,
            "done": done,
            "faulted": done and request.faults,
            "wait_time": 0 if done else round(estimate),
            "queue_position": 1 + int((request.started_at - now) / 5) if queued else 0,
            "kudos": 10.0 * request.images,
            "is_possible": True,
        }

    def _record(self, request_id: str) -> None:
        self.calls[request_id] += 1
        self.call_times.append(self._now())

    async def check(self, request_id: str) -> RequestStatusCheck:
        """``GET /generate/check/{id}``."""
        self._record(request_id)
        self.check_times[request_id].append(self._now())
        await self._network()
        return RequestStatusCheck.model_validate(self._progress(request_id))

    async def status(self, request_id: str) -> RequestStatusStable:
        """``GET /generate/status/{id}``: progress plus one generation per finished image."""
        self._record(request_id)
        self.status_calls[request_id] += 1
        await self._network()
        body = self._progress(request_id)
        images = [
            Generation(img=f"https://r2.invalid/{request_id}/{i}.webp", seed=str(i), id=f"{i}")
            for i in range(body["finished"])
        ]
        return RequestStatusStable.model_validate({**body, "generations": images})

    async def cancel(self, request_id: str) -> RequestStatusStable:
        """``DELETE /generate/status/{id}``."""
        self._record(request_id)
        await self._network()
        return RequestStatusStable.model_validate(self._progress(request_id))


# ---- the two clients ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SimResult:
    """Per completed request: horde calls and seconds between the horde finishing and us knowing."""

    strategy: Strategy
    calls: list[int]
    latency_s: list[float]
    horde: SimulatedHorde

    def median_calls(self) -> float:
        """Median calls per completed request."""
        return statistics.median(self.calls)

    def p90_calls(self) -> float:
        """90th percentile of calls per completed request."""
        return _quantile(self.calls, 0.9)

    def busiest_second(self) -> int:
        """Most check/status calls that fell in any one-second span."""
        times = sorted(self.horde.call_times)
        best, start = 0, 0
        for end, at in enumerate(times):
            while at - times[start] >= 1.0:
                start += 1
            best = max(best, end - start + 1)
        return best

    def closest_checks_s(self) -> float:
        """The shortest gap between two checks of the same request."""
        gaps = [
            later - earlier
            for times in self.horde.check_times.values()
            for earlier, later in itertools.pairwise(times)
        ]
        return min(gaps, default=math.inf)


def _quantile(values: list[int] | list[float], q: float) -> float:
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)])


async def _fixed_poll(horde: SimulatedHorde, request_id: str, interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        check = await horde.check(request_id)
        if check.done or check.faulted:
            await horde.status(request_id)
            return


async def _simulate(strategy: Strategy, workload: Workload, policy: PollPolicy) -> SimResult:
    horde = SimulatedHorde(workload, random.Random(workload.seed))
    arrivals = random.Random(workload.seed + 1)
    outcomes: list[tuple[int, float]] = []

    async def one(poller: HordePoller | None) -> None:
        request_id = await horde.submit()
        if poller is not None:
            await poller.track(request_id)
        else:
            await _fixed_poll(horde, request_id, 5.0)
        now = asyncio.get_running_loop().time()
        outcomes.append((horde.calls[request_id], now - horde.requests[request_id].done_at))

    async with HordePoller(horde, policy) as poller:
        clients = []
        for _ in range(workload.requests):
            await asyncio.sleep(arrivals.expovariate(1 / workload.mean_gap_s))
            clients.append(asyncio.create_task(one(poller if strategy == "eta" else None)))
        await asyncio.gather(*clients)
    return SimResult(
        strategy, [calls for calls, _ in outcomes], [late for _, late in outcomes], horde
    )


def simulate(
    strategy: Strategy, workload: Workload | None = None, policy: PollPolicy | None = None
) -> SimResult:
    """Run one strategy over a workload in virtual time."""
    return run_virtual(_simulate(strategy, workload or Workload(), policy or PollPolicy()))


# ---- report ------------------------------------------------------------------------------


def _row(result: SimResult) -> str:
    calls = result.calls
    late = result.latency_s
    return (
        f"  {result.strategy:<6} calls/request median {result.median_calls():4.1f}  "
        f"p90 {result.p90_calls():4.1f}  mean {statistics.fmean(calls):5.2f}   "
        f"latency median {statistics.median(late):5.1f} s  p90 {_quantile(late, 0.9):5.1f} s   "
        f"busiest second {result.busiest_second()} calls"
    )


def main() -> None:
    """Print both strategies side by side for a normal and a busy horde."""
    workloads = {
        "normal horde (queue 0-40 s, work 8-20 s)": Workload(),
        "busy horde (queue 30-240 s, work 8-20 s)": Workload(queue_s=(30.0, 240.0), seed=7),
        "fast horde (queue 0-5 s, work 4-10 s)": Workload(queue_s=(0.0, 5.0), work_s=(4.0, 10.0)),
    }
    for title, workload in workloads.items():
        eta = simulate("eta", workload)
        fixed = simulate("fixed", workload)
        print(f"{title}, {workload.requests} requests:")
        print(_row(eta))
        print(_row(fixed))
        print(
            f"  fixed/eta calls: median {fixed.median_calls() / eta.median_calls():.2f}x, "
            f"mean {statistics.fmean(fixed.calls) / statistics.fmean(eta.calls):.2f}x"
        )


if __name__ == "__main__":
    main()
