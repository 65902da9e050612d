"""HordeClient against scripted answers (httpx.MockTransport): headers, bodies, errors, retries."""

from __future__ import annotations

import json
import logging
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from core.horde import errors
from core.horde.client import PROJECT_URL, HordeClient, client_agent, package_version
from core.horde.retry import RetryPolicy
from core.horde.wire import (
    Generation,
    GenerationInput,
    GenerationParams,
    PopInput,
    SubmitInput,
)

KEY = "s3cr3t-horde-key-0123"
BASE = "https://horde.test/api"
REQUEST_ID = "0bd5f0d5-5e52-4c3a-9a4e-3f9f0d1f1a11"

Handler = Callable[[httpx.Request], httpx.Response]


class Clock:
    """A hand-moved clock whose ``sleep`` records waits and moves the clock."""

    def __init__(self) -> None:
        self.now = 500.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class Script:
    """Answers requests in turn (the last answer repeats) and keeps every request it saw."""

    def __init__(self, *answers: httpx.Response | Exception | Handler) -> None:
        self.answers = list(answers)
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, httpx.Response):
            return answer
        return answer(request)

    def bodies(self) -> list[Any]:
        return [json.loads(request.content) for request in self.seen]


def client_for(script: Script, **kwargs: Any) -> tuple[HordeClient, Clock]:
    clock = Clock()
    client = HordeClient(
        KEY,
        base_url=BASE,
        transport=httpx.MockTransport(script),
        clock=clock,
        sleep=clock.sleep,
        rng=random.Random(0),
        **kwargs,
    )
    return client, clock


def ok(body: Any, status: int = 200, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def horde_error(
    status: int, rc: str | None, message: str = "nope", **headers: str
) -> httpx.Response:
    body: dict[str, Any] = {"message": message}
    if rc is not None:
        body["rc"] = rc
    return httpx.Response(status, json=body, headers=headers)


CHECK = {"finished": 0, "processing": 1, "waiting": 0, "done": False, "wait_time": 12}
STATUS = {**CHECK, "done": True, "finished": 1, "generations": []}


# ---- headers, bodies, models -------------------------------------------------------------


async def test_horde_calls_carry_the_key_and_client_agent() -> None:
    script = Script(ok(CHECK))
    client, _ = client_for(script)
    async with client:
        await client.check(REQUEST_ID)
    request = script.seen[0]
    assert request.headers["apikey"] == KEY
    assert request.headers["Client-Agent"] == f"hordebot:{package_version()}:{PROJECT_URL}"
    assert client_agent().split(":", 2) == ["hordebot", package_version(), PROJECT_URL]
    assert str(request.url) == f"{BASE}/v2/generate/check/{REQUEST_ID}"


async def test_generate_sends_the_wire_body_and_surfaces_warnings() -> None:
    accepted = {
        "id": REQUEST_ID,
        "kudos": 12.0,
        "message": "No workers can serve this right now",
        "warnings": [{"code": "NoAvailableWorker", "message": "no worker"}],
    }
    script = Script(ok(accepted, 202))
    request = GenerationInput(prompt="a lighthouse ### fog", params=GenerationParams(steps=20))
    client, _ = client_for(script)
    async with client:
        result = await client.generate(request)
    assert script.seen[0].method == "POST"
    assert script.seen[0].url.path == "/api/v2/generate/async"
    assert script.bodies() == [request.to_wire()]
    assert script.bodies()[0]["nsfw"] is True
    assert script.bodies()[0]["r2"] is True
    assert result.id == REQUEST_ID
    assert [w.code for w in result.warnings] == ["NoAvailableWorker"]


async def test_dry_run_asks_for_the_cost_only() -> None:
    script = Script(ok({"kudos": 23.5}))
    client, _ = client_for(script)
    async with client:
        cost = await client.dry_run(GenerationInput(prompt="cat"))
        with pytest.raises(ValueError, match="dry_run"):
            await client.generate(GenerationInput(prompt="cat", dry_run=True))
    assert cost.kudos == 23.5
    assert script.bodies()[0]["dry_run"] is True
    assert len(script.seen) == 1


async def test_status_and_cancel_read_generations() -> None:
    gen = {"img": "https://r2.test/a.webp", "seed": "42", "id": "g1", "model": "m"}
    script = Script(ok({**STATUS, "generations": [gen]}))
    client, _ = client_for(script)
    async with client:
        status = await client.status(REQUEST_ID)
        cancelled = await client.cancel(REQUEST_ID)
    assert status.generations[0].seed == "42"
    assert cancelled.done
    assert [(r.method, r.url.path) for r in script.seen] == [
        ("GET", f"/api/v2/generate/status/{REQUEST_ID}"),
        ("DELETE", f"/api/v2/generate/status/{REQUEST_ID}"),
    ]


async def test_a_request_id_cannot_leave_its_path_segment() -> None:
    script = Script(ok(CHECK))
    client, _ = client_for(script)
    async with client:
        await client.check("../../kudos/transfer")
    assert script.seen[0].url.raw_path == b"/api/v2/generate/check/..%2F..%2Fkudos%2Ftransfer"


async def test_models_skip_rows_that_do_not_fit_and_count_workers() -> None:
    rows = [
        {"name": "stable_diffusion", "count": 12, "eta": 30, "type": "image"},
        {"count": 3},
        {"name": "AlbedoBase XL (SDXL)", "count": 4, "queued": 5.5e6},
    ]
    script = Script(ok(rows))
    client, _ = client_for(script)
    async with client:
        models = await client.models(min_count=1)
        counts = await client.worker_counts()
    assert [m.name for m in models] == ["stable_diffusion", "AlbedoBase XL (SDXL)"]
    assert counts == {"stable_diffusion": 12, "AlbedoBase XL (SDXL)": 4}
    assert script.seen[0].url.params["type"] == "image"
    assert script.seen[0].url.params["min_count"] == "1"


async def test_workers_tolerate_both_shapes() -> None:
    workers = [{"id": "w1", "name": "one", "models": ["a"]}, "junk"]
    script = Script(ok(workers), ok({"workers": workers}), ok({"unexpected": True}))
    client, _ = client_for(script)
    async with client:
        assert [w["id"] for w in await client.workers()] == ["w1"]
        assert [w["id"] for w in await client.workers()] == ["w1"]
        with pytest.raises(errors.InvalidResponse):
            await client.workers()


async def test_find_user_and_heartbeat() -> None:
    script = Script(
        ok({"username": "alice#7", "id": 7, "kudos": 150.0, "worker_ids": []}),
        ok({"message": "OK", "version": "5.1.5"}),
    )
    client, _ = client_for(script)
    async with client:
        user = await client.find_user()
        beat = await client.heartbeat()
    assert (user.username, user.kudos) == ("alice#7", 150.0)
    assert beat.message == "OK"


async def test_pop_and_submit_send_their_models() -> None:
    job = {
        "id": "job-1",
        "ids": ["job-1"],
        "model": "stable_diffusion",
        "payload": {"prompt": "cat", "ddim_steps": 20, "seed": 3},
        "ttl": 150,
        "r2_upload": "https://r2.test/up/job-1",
        "r2_uploads": ["https://r2.test/up/job-1"],
    }
    script = Script(ok(job), ok({"reward": 10.5}))
    client, _ = client_for(script)
    pop = PopInput(name="w", models=["stable_diffusion"], bridge_agent="hordebot-worker:0.1:x")
    async with client:
        popped = await client.pop(pop)
        reward = await client.submit(SubmitInput(id="job-1", generation="R2", seed=3))
    assert popped.payload is not None
    assert popped.payload.ddim_steps == 20
    assert script.bodies() == [
        pop.model_dump(mode="json"),
        SubmitInput(id="job-1", generation="R2", seed=3).model_dump(mode="json"),
    ]
    assert reward.reward == 10.5


async def test_a_duplicate_submit_after_a_lost_answer_counts_as_done() -> None:
    script = Script(httpx.ReadTimeout("lost"), horde_error(400, "DuplicateGen"))
    client, _ = client_for(script)
    async with client:
        reward = await client.submit(SubmitInput(id="job-1", generation="R2", seed=3))
    assert reward.reward == 0.0
    assert len(script.seen) == 2


async def test_a_duplicate_submit_on_the_first_try_is_an_error() -> None:
    script = Script(horde_error(400, "DuplicateGen"))
    client, _ = client_for(script)
    async with client:
        with pytest.raises(errors.DuplicateGen):
            await client.submit(SubmitInput(id="job-1", generation="R2", seed=3))


# ---- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "rc", "expected"),
    [
        (403, "KudosUpfront", errors.KudosUpfront),
        (429, "TooManyPrompts", errors.TooManyPrompts),
        (401, "InvalidAPIKey", errors.InvalidAPIKey),
        (400, "CorruptPrompt", errors.CorruptPrompt),
        (404, "RequestNotFound", errors.RequestNotFound),
        (400, "MissingPrompt", errors.MissingPrompt),
        (403, "TimeoutIP", errors.TimeoutIP),
        (400, "MaintenanceMode", errors.MaintenanceMode),
        (400, "NoValidWorkers", errors.NoValidWorkers),
        (400, "KudosTransferNotEnough", errors.KudosTransferNotEnough),
        (404, "UserNotFound", errors.UserNotFound),
        (403, "BannedClientAgent", errors.BannedClientAgent),
        (403, "SharedKeyEmpty", errors.SharedKeyEmpty),
        # Codes the horde does not list keep their family.
        (403, "SomethingNewForbidden", errors.Forbidden),
        (404, "FilterNotFound", errors.NotFound),
        (400, "TooManyExtraSourceImages.", errors.BadRequest),
        (418, "Teapot", errors.HordeError),
    ],
)
async def test_each_return_code_becomes_its_own_exception(
    status: int, rc: str, expected: type[errors.HordeError]
) -> None:
    script = Script(horde_error(status, rc, "the horde's words"))
    client, _ = client_for(script)
    async with client:
        with pytest.raises(expected) as caught:
            await client.check(REQUEST_ID)
    error = caught.value
    assert type(error) is expected
    assert (error.status, error.rc, error.detail) == (status, rc, "the horde's words")
    assert error.user_message
    assert "\n" not in error.user_message
    assert len(script.seen) == 1, "refusals are not retried"


def test_a_known_code_with_a_trailing_dot_is_still_known() -> None:
    assert errors.HordeError.for_rc("KudosUpfront.") is errors.KudosUpfront
    assert errors.error_class_for(403, "KudosUpfront.") is errors.KudosUpfront
    assert errors.error_class_for(503, None) is errors.ServerError


async def test_schema_errors_name_the_fields() -> None:
    body = {"message": "Input payload validation failed", "errors": {"params.width": "65 is bad"}}
    script = Script(httpx.Response(400, json=body))
    client, _ = client_for(script)
    async with client:
        with pytest.raises(errors.ValidationFailed) as caught:
            await client.generate(GenerationInput(prompt="cat"))
    assert caught.value.errors == {"params.width": "65 is bad"}
    assert "params.width" in str(caught.value)


async def test_success_bodies_that_do_not_fit_are_invalid_responses() -> None:
    script = Script(
        ok({"done": "perhaps"}),
        ok(["not", "a", "status"]),
        httpx.Response(200, text="<html>hi</html>"),
        ok({"username": "no id"}),
    )
    client, _ = client_for(script)
    async with client:
        for call in (client.check, client.status, client.check):
            with pytest.raises(errors.InvalidResponse):
                await call(REQUEST_ID)
        with pytest.raises(errors.InvalidResponse, match="UserDetails"):
            await client.find_user()


# ---- retries -----------------------------------------------------------------------------


async def test_a_rate_limit_429_is_retried_after_retry_after() -> None:
    script = Script(horde_error(429, None, "2 per 1 second", **{"Retry-After": "7"}), ok(CHECK))
    client, clock = client_for(script)
    async with client:
        check = await client.check(REQUEST_ID)
    assert check.wait_time == 12
    assert len(script.seen) == 2
    assert sum(clock.slept) >= 7.0


async def test_rate_limit_429s_are_given_up_after_the_attempts() -> None:
    script = Script(horde_error(429, None, "90 per 1 minute"))
    client, _ = client_for(script, retry=RetryPolicy(attempts=3))
    async with client:
        with pytest.raises(errors.RateLimited):
            await client.find_user()
    assert len(script.seen) == 3


async def test_too_many_prompts_is_a_refusal_not_a_rate_limit() -> None:
    script = Script(horde_error(429, "TooManyPrompts"))
    client, _ = client_for(script)
    async with client:
        with pytest.raises(errors.TooManyPrompts):
            await client.generate(GenerationInput(prompt="cat"))
    assert len(script.seen) == 1


async def test_server_errors_on_reads_are_retried() -> None:
    script = Script(httpx.Response(502, text="<html>Bad gateway</html>"), ok(CHECK))
    client, _ = client_for(script)
    async with client:
        await client.check(REQUEST_ID)
    assert len(script.seen) == 2


async def test_persistent_server_errors_end_in_server_error() -> None:
    script = Script(httpx.Response(500, text="Internal Server Error"))
    client, _ = client_for(script, retry=RetryPolicy(attempts=2))
    async with client:
        with pytest.raises(errors.ServerError, match="Internal Server Error"):
            await client.status(REQUEST_ID)
    assert len(script.seen) == 2


async def test_read_timeouts_on_reads_are_retried() -> None:
    script = Script(httpx.ReadTimeout("slow"), ok(CHECK))
    client, _ = client_for(script)
    async with client:
        await client.check(REQUEST_ID)
    assert len(script.seen) == 2


async def test_connection_failures_end_in_unavailable() -> None:
    script = Script(httpx.ConnectError("refused"))
    client, _ = client_for(script, retry=RetryPolicy(attempts=3))
    async with client:
        with pytest.raises(errors.HordeUnavailable):
            await client.heartbeat()
    assert len(script.seen) == 3


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ReadTimeout("slow"),
        httpx.RemoteProtocolError("dropped"),
        httpx.Response(500),
        httpx.Response(504),
    ],
)
async def test_async_is_never_sent_twice_once_the_horde_may_have_it(
    failure: httpx.Response | Exception,
) -> None:
    script = Script(failure, ok({"id": REQUEST_ID}, 202))
    client, _ = client_for(script)
    async with client:
        with pytest.raises(errors.SubmissionUncertain) as caught:
            await client.generate(GenerationInput(prompt="cat"))
    assert len(script.seen) == 1
    assert "\n" not in caught.value.user_message


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ConnectError("refused"),
        httpx.ConnectTimeout("no route"),
        horde_error(429, None, "2 per 1 second", **{"Retry-After": "1"}),
        httpx.Response(503, text="Service Unavailable"),
    ],
)
async def test_async_is_retried_when_the_horde_cannot_have_it(
    failure: httpx.Response | Exception,
) -> None:
    script = Script(failure, ok({"id": REQUEST_ID}, 202))
    client, _ = client_for(script)
    async with client:
        accepted = await client.generate(GenerationInput(prompt="cat"))
    assert accepted.id == REQUEST_ID
    assert len(script.seen) == 2


async def test_transfer_keeps_one_idempotency_key_across_retries() -> None:
    script = Script(httpx.Response(503), ok({"transferred": 50}), ok({"transferred": 50}))
    client, clock = client_for(script)
    async with client:
        moved = await client.transfer_kudos("bob#2", 50)
        await client.transfer_kudos("bob#2", 50, idempotency_key="chosen-key")
    assert moved.transferred == 50
    keys = [request.headers["Idempotency-Key"] for request in script.seen]
    assert keys[0] == keys[1], "a retry repeats the same key"
    assert keys[2] == "chosen-key"
    assert len(set(keys)) == 2
    assert script.bodies()[0] == {"username": "bob#2", "amount": 50}
    assert clock.now - 500.0 >= 1.0, "transfers wait a second between them"


# ---- rate limits -------------------------------------------------------------------------


async def test_checks_of_one_request_are_spaced_but_others_are_not() -> None:
    script = Script(ok(CHECK))
    client, clock = client_for(script)
    async with client:
        await client.check("a")
        await client.check("b")
        assert clock.slept == []
        await client.check("a")
    assert clock.slept
    assert clock.slept[0] >= 1.0


async def test_status_is_held_to_ten_a_minute_per_request() -> None:
    script = Script(ok(STATUS))
    client, clock = client_for(script)
    async with client:
        for _ in range(11):
            await client.status(REQUEST_ID)
    assert sum(clock.slept) >= 60.0


async def test_with_key_shares_the_limits_but_not_the_key() -> None:
    script = Script(ok(CHECK))
    client, clock = client_for(script)
    other = client.with_key("another-key-456")
    async with client:
        await client.check(REQUEST_ID)
        await other.check(REQUEST_ID)
    assert [r.headers["apikey"] for r in script.seen] == [KEY, "another-key-456"]
    assert clock.slept, "both keys share the bot's per-IP limit"
    assert other.limiter is client.limiter


# ---- images ------------------------------------------------------------------------------


async def test_base64_images_are_decoded_and_capped() -> None:
    client, _ = client_for(Script(ok({})), max_image_bytes=10)
    async with client:
        assert await client.fetch_image("aGVsbG8=") == b"hello"
        assert await client.fetch_image(Generation(img="aGVsbG8=", seed="1", id="g")) == b"hello"
        with pytest.raises(errors.ImageTooLarge):
            await client.fetch_image("aGVsbG8gd29ybGQgaGVsbG8gd29ybGQ=")
        with pytest.raises(errors.ImageUnavailable):
            await client.fetch_image("N/A")
        with pytest.raises(errors.ImageUnavailable):
            await client.fetch_image("not*base64!")


async def test_image_links_are_fetched_without_the_api_key() -> None:
    script = Script(httpx.Response(200, content=b"RIFF....WEBP"))
    client, _ = client_for(script)
    async with client:
        data = await client.fetch_image("https://r2.test/img.webp?sig=1")
    assert data == b"RIFF....WEBP"
    assert "apikey" not in script.seen[0].headers


async def test_an_image_declared_too_large_is_not_read() -> None:
    script = Script(httpx.Response(200, content=b"x" * 2048))
    client, _ = client_for(script, max_image_bytes=1024)
    async with client:
        with pytest.raises(errors.ImageTooLarge, match="2048"):
            await client.fetch_image("https://r2.test/big.webp")


async def test_an_undeclared_large_image_stops_streaming_at_the_cap() -> None:
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(100):
            sent += 1
            yield b"x" * 65536

    script = Script(lambda request: httpx.Response(200, content=chunks()))
    client, _ = client_for(script, max_image_bytes=200_000)
    async with client:
        with pytest.raises(errors.ImageTooLarge):
            await client.fetch_image("https://r2.test/endless.webp")
    assert sent < 10, "the download stops soon after the cap, not at the end"


async def test_an_expired_image_link_is_unavailable() -> None:
    script = Script(httpx.Response(403, text="<Error>Request has expired</Error>"))
    client, _ = client_for(script)
    async with client:
        with pytest.raises(errors.ImageUnavailable):
            await client.fetch_image("https://r2.test/old.webp")
    assert len(script.seen) == 1


async def test_r2_upload_is_a_plain_put_without_form_type_or_key() -> None:
    script = Script(httpx.Response(500), httpx.Response(200))
    client, _ = client_for(script)
    async with client:
        await client.upload_r2("https://r2.test/up/job-1?sig=abc", b"RIFFwebpbytes")
    request = script.seen[-1]
    assert len(script.seen) == 2, "a 500 from the store is retried"
    assert request.method == "PUT"
    assert request.content == b"RIFFwebpbytes"
    assert "content-type" not in request.headers
    assert "apikey" not in request.headers


async def test_a_refused_upload_is_an_upload_failure() -> None:
    script = Script(httpx.Response(403, text="SignatureDoesNotMatch"))
    client, _ = client_for(script)
    async with client:
        with pytest.raises(errors.UploadFailed, match="SignatureDoesNotMatch"):
            await client.upload_r2("https://r2.test/up/job-1", b"x")


# ---- secrets -----------------------------------------------------------------------------


async def test_the_api_key_is_never_logged_nor_shown(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    # The CLI quiets these loggers; a test that ran it earlier in this process must not hide them.
    for name in ("httpx", "httpcore"):
        caplog.set_level(logging.DEBUG, logger=name)
    script = Script(
        horde_error(429, None, "2 per 1 second", **{"Retry-After": "1"}),
        httpx.ReadTimeout("slow"),
        ok(CHECK),
        horde_error(401, "InvalidAPIKey"),
    )
    client, _ = client_for(script)
    async with client:
        await client.check(REQUEST_ID)
        with pytest.raises(errors.InvalidAPIKey) as caught:
            await client.find_user()
    assert caplog.records, "the client does log its retries"
    assert KEY not in caplog.text
    assert KEY not in repr(client)
    assert KEY not in str(caught.value)
    assert KEY not in caught.value.user_message


async def test_an_injected_http_client_is_left_open() -> None:
    script = Script(ok(CHECK))
    async with httpx.AsyncClient(transport=httpx.MockTransport(script)) as http:
        async with HordeClient(KEY, base_url=BASE, http=http) as client:
            await client.check(REQUEST_ID)
        assert not http.is_closed
    with pytest.raises(ValueError, match="either"):
        HordeClient(KEY, http=http, transport=httpx.MockTransport(script))
