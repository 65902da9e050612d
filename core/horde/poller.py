"""One shared, ETA-aware poller for every pending horde request.

Polling each request every few seconds costs about a dozen calls per image and eats into limits
shared by the whole bot. The horde already says how long a request has left (``wait_time``), so the
poller checks once soon after submission to learn that estimate, then sleeps until just past it:
``wait_time × overshoot + slack`` (the estimate is often ±30 % off; the overshoot buys a high chance
that the second look finds the request done). A look that finds it still running uses the fresh
estimate and backs off further each time the estimate misses. When ``check`` reports done or
faulted, ``status`` is called once for the images. In practice that is submit + 2 checks + status
for most requests (``bench/polling.py`` measures it against a fixed 5 s poll).

One scheduler task serves all requests from a heap of due times; every call it makes draws from a
global budget (``max_calls_per_s``) as well as the client's per-request limits. Transient failures
(rate limits, outages) are retried with backoff for up to ``give_up_after_s``; ``RequestNotFound``
(the request expired) and other refusals end the request with that error. Clock and sleep are
injectable, and default to the running event loop's, so a virtual-time loop can simulate hours of
polling in milliseconds.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import inspect
import itertools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal, Protocol, Self

from core.horde.errors import HordeError
from core.horde.ratelimit import Clock, Rate, RateLimiter, Sleep
from core.horde.wire import REQUEST_LIFETIME_S, RequestStatusCheck, RequestStatusStable

log = logging.getLogger(__name__)


class StatusSource(Protocol):
    """What the poller needs from a horde client (``HordeClient`` fits; so does a simulation)."""

    async def check(self, request_id: str, /) -> RequestStatusCheck: ...

    async def status(self, request_id: str, /) -> RequestStatusStable: ...

    async def cancel(self, request_id: str, /) -> RequestStatusStable: ...


@dataclass(frozen=True, slots=True)
class PollPolicy:
    """When to look again. Defaults aim at ≤ 4 horde calls per request, submission included."""

    first_check_s: float = 2.0
    overshoot: float = 1.1
    slack_s: float = 1.0
    min_interval_s: float = 1.0
    max_interval_s: float = 60.0
    max_calls_per_s: int = 5
    give_up_after_s: float = float(REQUEST_LIFETIME_S)


@dataclass(frozen=True, slots=True)
class PollProgress:
    """What the latest check said about one request, and when the poller will look again."""

    request_id: str
    check: RequestStatusCheck
    calls: int
    next_check_s: float | None

    @property
    def phase(self) -> Literal["queued", "processing", "done", "faulted"]:
        """``queued``, ``processing``, ``done`` or ``faulted``, for a progress line."""
        if self.check.faulted:
            return "faulted"
        if self.check.done:
            return "done"
        if self.check.processing or self.check.finished:
            return "processing"
        return "queued"


ProgressCallback = Callable[[PollProgress], Awaitable[None] | None]


@dataclass(eq=False)
class _Job:
    request_id: str
    future: asyncio.Future[RequestStatusStable]
    callbacks: list[ProgressCallback] = field(default_factory=list)
    calls: int = 0
    misses: int = 0
    expect_done: bool = False
    finishing: bool = False
    failures: int = 0
    failing_since: float | None = None
    ticket: int = 0


def _running_loop_time() -> float:
    return asyncio.get_running_loop().time()


class HordePoller:
    """Tracks pending horde requests and resolves each with its final status, calling sparingly.

    ``track(id)`` returns a future for the final ``RequestStatusStable`` (check its ``faulted``);
    cancelling that future stops tracking. ``cancel(id)`` cancels at the horde and resolves the
    future with what was finished. Use as an async context manager, or call ``aclose``.
    """

    def __init__(
        self,
        source: StatusSource,
        policy: PollPolicy | None = None,
        *,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        self._source = source
        self._policy = policy or PollPolicy()
        self._clock: Clock = clock or _running_loop_time
        self._sleep: Sleep = sleep or asyncio.sleep
        self._budget = RateLimiter(self._clock, self._sleep)
        self._budget_rates = (Rate(self._policy.max_calls_per_s, 1.0),)
        self._jobs: dict[str, _Job] = {}
        self._due: list[tuple[float, int, int, _Job]] = []
        self._order = itertools.count()
        self._wake = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._polls: set[asyncio.Task[None]] = set()
        self._closed = False

    # ---- public --------------------------------------------------------------------------

    def track(
        self, request_id: str, on_progress: ProgressCallback | None = None
    ) -> asyncio.Future[RequestStatusStable]:
        """Start following a submitted request; the future resolves with its final status."""
        if self._closed:
            raise RuntimeError("the poller is closed")
        job = self._jobs.get(request_id)
        if job is None:
            future: asyncio.Future[RequestStatusStable] = asyncio.get_running_loop().create_future()
            job = _Job(request_id, future)
            self._jobs[request_id] = job
            future.add_done_callback(functools.partial(self._on_future_done, job))
            self._schedule(job, self._policy.first_check_s)
            self._ensure_running()
        if on_progress is not None:
            job.callbacks.append(on_progress)
        return job.future

    async def cancel(self, request_id: str) -> RequestStatusStable:
        """Cancel at the horde; the tracked future (if any) resolves with the partial status."""
        job = self._jobs.pop(request_id, None)
        if job is not None:
            job.ticket += 1
        try:
            final = await self._source.cancel(request_id)
        except BaseException:
            if job is not None and not job.future.done() and not self._closed:
                self._jobs[request_id] = job
                self._schedule(job, self._policy.min_interval_s)
            raise
        if job is not None and not job.future.done():
            job.future.set_result(final)
        return final

    def tracking(self) -> frozenset[str]:
        """The request ids still being followed."""
        return frozenset(self._jobs)

    async def aclose(self) -> None:
        """Stop polling; futures still pending are cancelled."""
        self._closed = True
        tasks = [*self._polls, *([self._runner] if self._runner else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for job in list(self._jobs.values()):
            job.future.cancel()
        self._jobs.clear()
        self._due.clear()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # ---- scheduling ----------------------------------------------------------------------

    def _schedule(self, job: _Job, delay: float) -> None:
        if self._jobs.get(job.request_id) is not job:
            return
        job.ticket += 1
        heapq.heappush(self._due, (self._clock() + delay, next(self._order), job.ticket, job))
        self._wake.set()

    def _ensure_running(self) -> None:
        if self._runner is None or self._runner.done():
            self._runner = asyncio.get_running_loop().create_task(self._run())
            self._runner.add_done_callback(self._on_runner_done)

    def _on_runner_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        error = task.exception()
        log.error("the horde poller stopped", exc_info=error)
        for job in list(self._jobs.values()):
            self._settle(job, error=error)

    def _next_due(self) -> tuple[float, _Job] | None:
        while self._due:
            due, _, ticket, job = self._due[0]
            if job.ticket == ticket and self._jobs.get(job.request_id) is job:
                return due, job
            heapq.heappop(self._due)
        return None

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            head = self._next_due()
            if head is None:
                await self._wake.wait()
                continue
            due, job = head
            delay = due - self._clock()
            if delay > 0:
                await self._nap(delay)
                continue
            heapq.heappop(self._due)
            await self._budget.acquire("calls", self._budget_rates)
            if self._jobs.get(job.request_id) is not job:
                continue
            task = asyncio.get_running_loop().create_task(self._poll(job))
            self._polls.add(task)
            task.add_done_callback(self._polls.discard)

    async def _nap(self, delay: float) -> None:
        """Sleep until ``delay`` passes or a newly tracked request may be due sooner."""
        sleeper = asyncio.ensure_future(self._sleep(delay))
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waker.cancel()

    # ---- one look at one request ---------------------------------------------------------

    async def _poll(self, job: _Job) -> None:
        request_id = job.request_id
        try:
            if not job.finishing:
                job.calls += 1
                check = await self._source.check(request_id)
                self._recovered(job)
                if not (check.done or check.faulted):
                    delay = self._next_delay(job, check)
                    await self._notify(job, check, delay)
                    self._schedule(job, delay)
                    return
                job.finishing = True
                await self._notify(job, check, None)
                await self._budget.acquire("calls", self._budget_rates)
            job.calls += 1
            final = await self._source.status(request_id)
            self._recovered(job)
        except HordeError as exc:
            self._failed(job, exc)
            return
        except Exception as exc:
            log.exception("polling horde request %s failed", request_id)
            self._settle(job, error=exc)
            return
        if final.done or final.faulted:
            self._settle(job, result=final)
            return
        # check said done but status says otherwise (a job was restarted): keep following it.
        job.finishing = False
        self._schedule(job, self._next_delay(job, final))

    def _next_delay(self, job: _Job, check: RequestStatusCheck) -> float:
        policy = self._policy
        if job.expect_done:
            job.misses += 1
        delay = check.wait_time * policy.overshoot + policy.slack_s
        if job.misses:
            # The estimate was wrong before: do not trust it to the second again.
            delay = max(delay, policy.slack_s * 2**job.misses)
        job.expect_done = delay <= policy.max_interval_s
        return min(policy.max_interval_s, max(policy.min_interval_s, delay))

    async def _notify(self, job: _Job, check: RequestStatusCheck, delay: float | None) -> None:
        progress = PollProgress(job.request_id, check, job.calls, delay)
        for callback in list(job.callbacks):
            try:
                outcome = callback(progress)
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception:
                log.exception("progress callback for horde request %s failed", job.request_id)

    def _recovered(self, job: _Job) -> None:
        job.failures = 0
        job.failing_since = None

    def _failed(self, job: _Job, error: HordeError) -> None:
        if not error.transient:
            self._settle(job, error=error)
            return
        now = self._clock()
        if job.failing_since is None:
            job.failing_since = now
        job.failures += 1
        if now - job.failing_since >= self._policy.give_up_after_s:
            self._settle(job, error=error)
            return
        backoff = self._policy.min_interval_s * 2**job.failures
        delay = min(self._policy.max_interval_s, max(backoff, error.retry_after or 0.0))
        log.warning("horde request %s: %s; looking again in %.0f s", job.request_id, error, delay)
        self._schedule(job, delay)

    def _settle(
        self,
        job: _Job,
        *,
        result: RequestStatusStable | None = None,
        error: BaseException | None = None,
    ) -> None:
        if self._jobs.get(job.request_id) is job:
            del self._jobs[job.request_id]
        if job.future.done():
            return
        if error is not None:
            job.future.set_exception(error)
        elif result is not None:
            job.future.set_result(result)

    def _on_future_done(self, job: _Job, future: asyncio.Future[RequestStatusStable]) -> None:
        if future.cancelled() and self._jobs.get(job.request_id) is job:
            del self._jobs[job.request_id]
