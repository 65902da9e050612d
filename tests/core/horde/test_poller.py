"""The shared poller's behaviour, on a virtual-time event loop against a scripted horde."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import defaultdict
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from bench.polling import run_virtual
from core.horde import errors
from core.horde.poller import HordePoller, PollPolicy, PollProgress
from core.horde.wire import Generation, RequestStatusCheck, RequestStatusStable

Answer = dict[str, Any] | Exception


def now() -> float:
    return asyncio.get_running_loop().time()


def waiting(wait_time: int, queue_position: int = 0, **extra: Any) -> dict[str, Any]:
    return {"waiting": 1, "wait_time": wait_time, "queue_position": queue_position, **extra}


DONE: dict[str, Any] = {"finished": 1, "done": True}
FAULTED: dict[str, Any] = {"done": True, "faulted": True, "restarted": 3}


class ScriptedHorde:
    """Answers ``check`` from a per-request script (the last answer repeats) and logs every call."""

    def __init__(self, scripts: dict[str, list[Answer]]) -> None:
        self.scripts = scripts
        self.calls: list[tuple[float, str, str]] = []

    def times(self, kind: str, request_id: str) -> list[float]:
        return [t for t, k, r in self.calls if k == kind and r == request_id]

    def _next(self, request_id: str) -> dict[str, Any]:
        script = self.scripts[request_id]
        answer = script.pop(0) if len(script) > 1 else script[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def check(self, request_id: str) -> RequestStatusCheck:
        self.calls.append((now(), "check", request_id))
        return RequestStatusCheck.model_validate(self._next(request_id))

    async def status(self, request_id: str) -> RequestStatusStable:
        self.calls.append((now(), "status", request_id))
        body = self.scripts[request_id][0]
        assert isinstance(body, dict)
        gens = [Generation(img="aGk=", seed="1", id="g1")] if body.get("finished") else []
        return RequestStatusStable.model_validate({**body, "generations": gens})

    async def cancel(self, request_id: str) -> RequestStatusStable:
        self.calls.append((now(), "cancel", request_id))
        return RequestStatusStable.model_validate(
            {"finished": 1, "done": True, "generations": [{"img": "aGk=", "seed": "1", "id": "g1"}]}
        )


def scenario(body: Callable[[], Coroutine[Any, Any, None]]) -> None:
    run_virtual(body())


def test_a_request_is_checked_soon_then_at_its_eta_then_fetched_once() -> None:
    horde = ScriptedHorde({"r": [waiting(20), DONE]})
    policy = PollPolicy(first_check_s=2.0, overshoot=1.1, slack_s=1.0)

    async def body() -> None:
        async with HordePoller(horde, policy) as poller:
            final = await poller.track("r")
        assert final.done
        assert len(final.generations) == 1

    scenario(body)
    checks = horde.times("check", "r")
    assert checks == pytest.approx([2.0, 2.0 + 20 * 1.1 + 1.0])
    assert len(horde.times("status", "r")) == 1
    assert horde.times("status", "r")[0] >= checks[-1]


def test_an_estimate_that_keeps_missing_is_trusted_less_each_time() -> None:
    script: list[Answer] = [waiting(10), *[waiting(0)] * 8, DONE]
    horde = ScriptedHorde({"r": script})
    policy = PollPolicy(first_check_s=1.0, slack_s=1.0, max_interval_s=30.0)

    async def body() -> None:
        async with HordePoller(horde, policy) as poller:
            await poller.track("r")

    scenario(body)
    gaps = [b - a for a, b in itertools.pairwise(horde.times("check", "r"))]
    late = gaps[1:]
    assert late == sorted(late), "gaps grow while the job runs late"
    assert late[0] >= 2.0
    assert max(late) == pytest.approx(30.0)


def test_an_expired_request_fails_with_request_not_found() -> None:
    horde = ScriptedHorde({"r": [waiting(5), errors.RequestNotFound("gone", status=404)]})

    async def body() -> None:
        async with HordePoller(horde) as poller:
            with pytest.raises(errors.RequestNotFound):
                await poller.track("r")
            assert poller.tracking() == frozenset()

    scenario(body)
    assert horde.times("status", "r") == []


def test_transient_failures_are_survived_and_retry_after_respected() -> None:
    horde = ScriptedHorde(
        {
            "r": [
                errors.HordeUnavailable("timeout"),
                errors.ServerError("bad gateway", status=502),
                errors.RateLimited("2 per 1 second", status=429, retry_after=30.0),
                DONE,
            ]
        }
    )

    async def body() -> None:
        async with HordePoller(horde, PollPolicy(first_check_s=1.0)) as poller:
            final = await poller.track("r")
        assert final.done

    scenario(body)
    checks = horde.times("check", "r")
    assert len(checks) == 4
    assert checks[3] - checks[2] >= 30.0


def test_a_lasting_outage_ends_the_request_with_its_error() -> None:
    horde = ScriptedHorde({"r": [errors.HordeUnavailable("down")]})
    policy = PollPolicy(first_check_s=1.0, give_up_after_s=300.0, max_interval_s=60.0)

    async def body() -> None:
        async with HordePoller(horde, policy) as poller:
            with pytest.raises(errors.HordeUnavailable):
                await poller.track("r")
        assert now() >= 300.0

    scenario(body)


def test_a_refusal_ends_the_request_at_once() -> None:
    horde = ScriptedHorde({"r": [errors.InvalidAPIKey("bad key", status=401)]})

    async def body() -> None:
        async with HordePoller(horde) as poller:
            with pytest.raises(errors.InvalidAPIKey):
                await poller.track("r")

    scenario(body)
    assert len(horde.times("check", "r")) == 1


def test_a_faulted_request_resolves_with_its_faulted_status() -> None:
    horde = ScriptedHorde({"r": [waiting(3), FAULTED]})

    async def body() -> None:
        async with HordePoller(horde) as poller:
            final = await poller.track("r")
        assert final.faulted
        assert final.generations == []

    scenario(body)
    assert len(horde.times("status", "r")) == 1


def test_cancel_returns_what_was_finished_and_stops_polling() -> None:
    horde = ScriptedHorde({"r": [waiting(600)]})

    async def body() -> None:
        async with HordePoller(horde) as poller:
            future = poller.track("r")
            await asyncio.sleep(5)
            partial = await poller.cancel("r")
            assert (await future) is partial
            assert len(partial.generations) == 1
            await asyncio.sleep(600)

    scenario(body)
    assert len(horde.times("check", "r")) == 1
    assert len(horde.times("cancel", "r")) == 1


def test_dropping_interest_stops_the_checks() -> None:
    horde = ScriptedHorde({"r": [waiting(10)]})

    async def body() -> None:
        async with HordePoller(horde, PollPolicy(first_check_s=1.0)) as poller:
            future = poller.track("r")
            await asyncio.sleep(2)
            future.cancel()
            await asyncio.sleep(300)
            assert poller.tracking() == frozenset()

    scenario(body)
    assert len(horde.times("check", "r")) == 1


def test_progress_reaches_sync_and_async_callbacks_even_if_one_breaks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    horde = ScriptedHorde(
        {"r": [waiting(30, queue_position=4), {"processing": 1, "wait_time": 5}, DONE]}
    )
    seen: list[tuple[str, int, int]] = []
    phases: list[str] = []

    def on_progress(progress: PollProgress) -> None:
        seen.append((progress.phase, progress.check.queue_position, progress.calls))

    async def on_progress_async(progress: PollProgress) -> None:
        phases.append(progress.phase)

    def broken(progress: PollProgress) -> None:
        raise RuntimeError("callback bug")

    async def body() -> None:
        async with HordePoller(horde) as poller:
            poller.track("r", broken)
            poller.track("r", on_progress)
            await poller.track("r", on_progress_async)

    scenario(body)
    assert seen == [("queued", 4, 1), ("processing", 0, 2), ("done", 0, 3)]
    assert phases == ["queued", "processing", "done"]
    assert "callback bug" in caplog.text


def test_a_crowd_of_requests_stays_inside_the_global_budget() -> None:
    ids = [f"r{n}" for n in range(40)]
    horde = ScriptedHorde({request_id: [waiting(4), DONE] for request_id in ids})
    policy = PollPolicy(first_check_s=1.0, max_calls_per_s=5)

    async def body() -> None:
        async with HordePoller(horde, policy) as poller:
            finals = await asyncio.gather(*(poller.track(r) for r in ids))
        assert all(final.done for final in finals)

    scenario(body)
    times = sorted(t for t, _, _ in horde.calls)
    assert len(times) == 40 * 3
    for start in times:
        in_a_second = [t for t in times if start <= t < start + 1.0]
        assert len(in_a_second) <= 5
    per_request: dict[str, list[float]] = defaultdict(list)
    for t, kind, request_id in horde.calls:
        if kind == "check":
            per_request[request_id].append(t)
    for checks in per_request.values():
        assert all(b - a >= 1.0 for a, b in itertools.pairwise(checks))


def test_a_new_request_is_not_held_behind_a_long_sleep() -> None:
    horde = ScriptedHorde({"slow": [waiting(3000)], "fast": [waiting(2), DONE]})

    async def body() -> None:
        async with HordePoller(horde, PollPolicy(first_check_s=2.0)) as poller:
            poller.track("slow")
            await asyncio.sleep(10)
            await poller.track("fast")
            assert now() < 20

    scenario(body)
    assert horde.times("check", "fast")[0] == pytest.approx(12.0)


def test_tracking_twice_shares_one_future_and_close_cancels_it() -> None:
    horde = ScriptedHorde({"r": [waiting(100)]})

    async def body() -> None:
        poller = HordePoller(horde)
        first = poller.track("r")
        assert poller.track("r") is first
        await poller.aclose()
        assert first.cancelled()
        with pytest.raises(RuntimeError, match="closed"):
            poller.track("other")

    scenario(body)


def test_done_by_check_but_not_by_status_keeps_following() -> None:
    # A job restarted between the two calls: the poller must not hand out an unfinished status.
    horde = ScriptedHorde({"r": [waiting(2)]})
    answers = iter([DONE, waiting(3), DONE])

    async def check(request_id: str) -> RequestStatusCheck:
        horde.calls.append((now(), "check", request_id))
        return RequestStatusCheck.model_validate(next(answers))

    statuses = iter([waiting(3), DONE])

    async def status(request_id: str) -> RequestStatusStable:
        horde.calls.append((now(), "status", request_id))
        return RequestStatusStable.model_validate(next(statuses))

    horde.check = check  # type: ignore[method-assign]
    horde.status = status  # type: ignore[method-assign]

    async def body() -> None:
        async with HordePoller(horde) as poller:
            final = await poller.track("r")
        assert final.done

    scenario(body)
    assert len(horde.times("status", "r")) == 2


def test_the_poller_runs_on_a_real_loop_too(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    horde = ScriptedHorde({"r": [DONE]})

    async def body() -> None:
        async with HordePoller(horde, PollPolicy(first_check_s=0.01)) as poller:
            assert (await poller.track("r")).done

    asyncio.run(body())
