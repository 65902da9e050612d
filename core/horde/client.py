"""The async AI Horde client: every v2 call the bots and the worker make, typed, limited, retried.

One ``HordeClient`` wraps one ``httpx.AsyncClient`` (given, or created and then owned). Each call:

- waits for its slot in the client-side rate limits (``ratelimit.HORDE_LIMITS``), keyed by endpoint
  and, where the horde counts per path, by request id;
- sends ``apikey`` and ``Client-Agent: hordebot:<version>:<url>``; the key goes to the horde only,
  never to image or upload links, and is never logged;
- retries 429 without ``rc`` (honouring ``Retry-After``), 5xx, timeouts and connection errors with
  jittered backoff, a bounded number of times;
- turns refusals into the typed exceptions of ``errors.py`` and success bodies into the models of
  ``wire.py`` (a body that does not fit is ``InvalidResponse``).

Double submission. ``POST /generate/async`` creates a job and spends kudos, and the horde has no
idempotency key for it. It is retried only when the horde cannot have accepted it: the connection
was never made, a 429 from the rate limiter, 408 or 503. After the body may have arrived (read
timeout, dropped connection, 500/502/504) the client raises ``SubmissionUncertain`` instead: asking
the user to wait a minute is cheaper than charging twice. Everything else is safe to repeat: GETs,
``DELETE status``, dry runs, kudos transfers (one ``Idempotency-Key`` for all attempts), pops
(a lost pop strands a job only until its TTL) and submits (a repeat is refused as
``DuplicateGen``, which after a retry means the first attempt landed).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import random
import uuid
from collections.abc import Callable, Hashable, Mapping
from importlib import metadata
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from core.horde.errors import (
    DuplicateGen,
    HordeError,
    HordeUnavailable,
    InvalidResponse,
    RateLimited,
    ServerError,
    SubmissionUncertain,
    UploadFailed,
    ValidationFailed,
    error_class_for,
)
from core.horde.images import (
    DEFAULT_MAX_IMAGE_BYTES,
    decode_base64_image,
    download_image,
    is_image_url,
)
from core.horde.ratelimit import HORDE_LIMITS, Clock, Rate, RateLimiter, Sleep, secret_tag
from core.horde.retry import RetryDecision, RetryPolicy, parse_retry_after, run_with_retries
from core.horde.wire import (
    ANON_API_KEY,
    ActiveModel,
    DryRunResponse,
    ErrorBody,
    Generation,
    GenerationInput,
    Heartbeat,
    KudosTransferInput,
    KudosTransferResponse,
    PopInput,
    PopResponse,
    RequestAsync,
    RequestStatusCheck,
    RequestStatusStable,
    SubmitInput,
    SubmitResponse,
    UserDetails,
)

DEFAULT_BASE_URL = "https://aihorde.net/api"
PROJECT_URL = "https://github.com/hordebot/hordebot"
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)

#: Statuses worth another try for a call that may be repeated, and for one that may not.
_RETRY_REPLAYABLE = frozenset({408, 429, 500, 502, 503, 504})
_RETRY_NOT_ACCEPTED = frozenset({408, 429, 503})
#: Statuses after which a non-repeatable call may or may not have taken effect.
_AMBIGUOUS = frozenset({500, 502, 504})

M = TypeVar("M", bound=BaseModel)

log = logging.getLogger(__name__)


def package_version() -> str:
    """The installed hordebot version (``0.1.0`` when running from an uninstalled tree)."""
    try:
        return metadata.version("hordebot")
    except metadata.PackageNotFoundError:
        return "0.1.0"


def client_agent() -> str:
    """The ``Client-Agent`` the horde asks every integration to send: ``name:version:contact``."""
    return f"hordebot:{package_version()}:{PROJECT_URL}"


class HordeClient:
    """Typed async calls to an AI Horde (the public one or the embedded one) for one API key.

    ``with_key`` gives a client for another key that shares the connection pool and the rate
    limits (the horde counts most limits per IP, so all keys of one bot share them).
    """

    def __init__(
        self,
        api_key: str = ANON_API_KEY,
        *,
        base_url: str = DEFAULT_BASE_URL,
        http: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        limiter: RateLimiter | None = None,
        limits: Mapping[str, tuple[Rate, ...]] = HORDE_LIMITS,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
        rng: random.Random | None = None,
        max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
        agent: str | None = None,
    ) -> None:
        if http is not None and transport is not None:
            raise ValueError("pass either an httpx client or a transport, not both")
        self._api_key = api_key
        self._base = base_url.rstrip("/")
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(transport=transport, timeout=timeout)
        self._retry = retry or RetryPolicy()
        self._sleep: Sleep = sleep or asyncio.sleep
        if limiter is None:
            limiter = (
                RateLimiter(sleep=self._sleep) if clock is None else RateLimiter(clock, self._sleep)
            )
        self._limiter = limiter
        self._limits = limits
        self._rng = rng or random.Random()
        self._max_image_bytes = max_image_bytes
        self._agent = agent or client_agent()

    # ---- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool if this client created it."""
        if self._owns_http:
            await self._http.aclose()

    def with_key(self, api_key: str) -> HordeClient:
        """A client for another API key sharing this one's connections and rate limits."""
        other = copy.copy(self)
        other._api_key = api_key
        other._owns_http = False
        return other

    def __repr__(self) -> str:
        who = "anonymous" if self._api_key == ANON_API_KEY else "keyed"
        return f"HordeClient({self._base!r}, {who})"

    @property
    def base_url(self) -> str:
        """The API root, ending in ``/api``."""
        return self._base

    @property
    def limiter(self) -> RateLimiter:
        """The rate limiter shared by this client and its ``with_key`` siblings."""
        return self._limiter

    # ---- requester side ----------------------------------------------------------------

    async def generate(self, request: GenerationInput) -> RequestAsync:
        """Queue an image request; its ``warnings`` may say that no worker serves it right now."""
        if request.dry_run:
            raise ValueError("a dry-run request goes through dry_run(), which returns its cost")
        response = await self._call(
            "POST",
            "generate/async",
            endpoint="async",
            json=request.to_wire(),
            replay_safe=False,
            ok=(200, 202),
        )
        accepted = _parse(RequestAsync, response)
        if accepted.warnings:
            log.info(
                "horde request %s accepted with warnings %s",
                accepted.id,
                [warning.code for warning in accepted.warnings],
            )
        return accepted

    async def dry_run(self, request: GenerationInput) -> DryRunResponse:
        """What a request would cost in kudos, without queueing it."""
        body = request.model_copy(update={"dry_run": True}).to_wire()
        response = await self._call(
            "POST", "generate/async", endpoint="async", json=body, replay_safe=True, ok=(200, 202)
        )
        return _parse(DryRunResponse, response)

    async def check(self, request_id: str) -> RequestStatusCheck:
        """Progress of a request, without images (cheap; poll this)."""
        response = await self._call(
            "GET", f"generate/check/{_segment(request_id)}", endpoint="check", per=request_id
        )
        return _parse(RequestStatusCheck, response)

    async def status(self, request_id: str) -> RequestStatusStable:
        """Progress plus finished images (10/min per request: call once, when done)."""
        response = await self._call(
            "GET", f"generate/status/{_segment(request_id)}", endpoint="status", per=request_id
        )
        return _parse(RequestStatusStable, response)

    async def cancel(self, request_id: str) -> RequestStatusStable:
        """Stop a request; the answer holds the images finished so far."""
        response = await self._call(
            "DELETE", f"generate/status/{_segment(request_id)}", endpoint="cancel", per=request_id
        )
        return _parse(RequestStatusStable, response)

    async def fetch_image(self, image: Generation | str) -> bytes:
        """The bytes of a finished image: downloaded from its link (capped) or base64-decoded."""
        img = image.img if isinstance(image, Generation) else image
        if not is_image_url(img):
            return decode_base64_image(img, max_bytes=self._max_image_bytes)

        async def attempt() -> bytes:
            try:
                return await download_image(self._http, img, max_bytes=self._max_image_bytes)
            except httpx.TransportError as exc:
                raise HordeUnavailable(f"image download: {type(exc).__name__}") from exc

        return await run_with_retries(
            attempt,
            policy=self._retry,
            decide=_retry_transient,
            sleep=self._sleep,
            rng=self._rng,
            what="image download",
        )

    # ---- account and status ------------------------------------------------------------

    async def find_user(self) -> UserDetails:
        """The account behind this client's API key."""
        return _parse(UserDetails, await self._call("GET", "find_user", endpoint="find_user"))

    async def transfer_kudos(
        self, username: str, amount: int, *, idempotency_key: str | None = None
    ) -> KudosTransferResponse:
        """Send kudos to ``alias#id`` (or a shared key); one idempotency key covers all retries."""
        body = KudosTransferInput(username=username, amount=amount).model_dump(mode="json")
        response = await self._call(
            "POST",
            "kudos/transfer",
            endpoint="transfer",
            per=secret_tag(self._api_key),
            json=body,
            headers={"Idempotency-Key": idempotency_key or uuid.uuid4().hex},
        )
        return _parse(KudosTransferResponse, response)

    async def models(
        self,
        *,
        model_type: str = "image",
        min_count: int | None = None,
        max_count: int | None = None,
        model_state: str | None = None,
    ) -> list[ActiveModel]:
        """Models with active workers (``count``), their queue and ETA; odd rows are skipped."""
        params: dict[str, str | int] = {"type": model_type}
        if min_count is not None:
            params["min_count"] = min_count
        if max_count is not None:
            params["max_count"] = max_count
        if model_state is not None:
            params["model_state"] = model_state
        response = await self._call("GET", "status/models", endpoint="models", params=params)
        rows = _json(response)
        if not isinstance(rows, list):
            raise InvalidResponse(
                "status/models did not return a list", status=response.status_code
            )
        models: list[ActiveModel] = []
        for row in rows:
            try:
                models.append(ActiveModel.model_validate(row))
            except ValidationError:
                log.debug("skipping a status/models row that does not fit: %.200r", row)
        return models

    async def worker_counts(self) -> dict[str, int]:
        """How many workers serve each image model right now."""
        return {model.name: model.count for model in await self.models()}

    async def heartbeat(self) -> Heartbeat:
        """Whether the horde is up (exempt from rate limits)."""
        return _parse(Heartbeat, await self._call("GET", "status/heartbeat", endpoint="heartbeat"))

    async def workers(self) -> list[dict[str, Any]]:
        """The active workers as loose records (the shape varies between horde versions)."""
        body = _json(await self._call("GET", "workers", endpoint="workers"))
        if isinstance(body, dict) and isinstance(body.get("workers"), list):
            body = body["workers"]
        if not isinstance(body, list):
            raise InvalidResponse("workers did not return a list")
        return [row for row in body if isinstance(row, dict)]

    # ---- worker side -------------------------------------------------------------------

    async def pop(self, request: PopInput) -> PopResponse:
        """Ask for a job; ``id`` is None when there is none."""
        response = await self._call(
            "POST", "generate/pop", endpoint="pop", json=request.model_dump(mode="json")
        )
        return _parse(PopResponse, response)

    async def submit(self, result: SubmitInput) -> SubmitResponse:
        """Hand in a finished (or faulted) job and learn the reward."""
        sent = 0

        def count() -> None:
            nonlocal sent
            sent += 1

        try:
            response = await self._call(
                "POST",
                "generate/submit",
                endpoint="submit",
                json=result.model_dump(mode="json"),
                on_send=count,
            )
        except DuplicateGen:
            if sent > 1:
                # Our earlier attempt got through but its answer was lost; the reward is unknown.
                log.info("submit of job %s landed on an earlier attempt", result.id)
                return SubmitResponse()
            raise
        return _parse(SubmitResponse, response)

    async def upload_r2(self, url: str, data: bytes) -> None:
        """PUT image bytes to a presigned upload link: raw body, no form Content-Type, no key."""
        if not is_image_url(url):
            raise UploadFailed("the upload link is not an http(s) URL")

        async def attempt() -> None:
            try:
                response = await self._http.put(url, content=data)
            except httpx.TransportError as exc:
                raise HordeUnavailable(f"upload: {type(exc).__name__}") from exc
            if response.status_code >= 500:
                raise ServerError(
                    f"upload answered {response.status_code}", status=response.status_code
                )
            if not 200 <= response.status_code < 300:
                raise UploadFailed(
                    f"upload answered {response.status_code}: {response.text[:200]}",
                    status=response.status_code,
                )

        await run_with_retries(
            attempt,
            policy=self._retry,
            decide=_retry_transient,
            sleep=self._sleep,
            rng=self._rng,
            what="R2 upload",
        )

    # ---- plumbing ----------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        *,
        endpoint: str,
        per: str | None = None,
        json: Any = None,
        params: Mapping[str, str | int] | None = None,
        headers: Mapping[str, str] | None = None,
        replay_safe: bool = True,
        ok: tuple[int, ...] = (200,),
        on_send: Callable[[], None] | None = None,
    ) -> httpx.Response:
        url = f"{self._base}/v2/{path}"
        all_headers = {
            "apikey": self._api_key,
            "Client-Agent": self._agent,
            "Accept": "application/json",
        }
        if headers:
            all_headers.update(headers)
        rates = (
            self._limits[endpoint] if endpoint in self._limits else self._limits.get("default", ())
        )
        key: Hashable = (endpoint, per) if per is not None else endpoint
        what = f"{method} /v2/{path}"

        async def attempt() -> httpx.Response:
            await self._limiter.acquire(key, rates)
            if on_send is not None:
                on_send()
            try:
                response = await self._http.request(
                    method, url, json=json, params=params, headers=all_headers
                )
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                # The request never left: repeating it cannot duplicate anything.
                raise HordeUnavailable(f"{what}: {type(exc).__name__}") from exc
            except httpx.TransportError as exc:
                if replay_safe:
                    raise HordeUnavailable(f"{what}: {type(exc).__name__}") from exc
                raise SubmissionUncertain(f"{what}: {type(exc).__name__} after sending") from exc
            log.debug("%s -> %d", what, response.status_code)
            if response.status_code in ok:
                return response
            error = _error_from(response)
            if isinstance(error, RateLimited) and error.retry_after:
                self._limiter.block(key, error.retry_after)
            if not replay_safe and response.status_code in _AMBIGUOUS:
                raise SubmissionUncertain(
                    f"{what}: {response.status_code} after sending", status=response.status_code
                ) from error
            raise error

        retryable = _RETRY_REPLAYABLE if replay_safe else _RETRY_NOT_ACCEPTED

        def decide(exc: Exception) -> RetryDecision | None:
            if isinstance(exc, HordeUnavailable):
                return RetryDecision()
            if (
                isinstance(exc, HordeError)
                and exc.status in retryable
                and (exc.status != 429 or isinstance(exc, RateLimited))
            ):
                return RetryDecision(exc.retry_after or 0.0)
            return None

        return await run_with_retries(
            attempt, policy=self._retry, decide=decide, sleep=self._sleep, rng=self._rng, what=what
        )


def _retry_transient(exc: Exception) -> RetryDecision | None:
    if isinstance(exc, HordeUnavailable | ServerError):
        return RetryDecision(exc.retry_after or 0.0)
    return None


def _segment(value: str) -> str:
    """A path segment: an id from outside must not be able to reach another route."""
    return quote(value, safe="")


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise InvalidResponse(
            f"{response.request.method} {response.request.url.path}: body is not JSON",
            status=response.status_code,
        ) from exc


def _parse(model: type[M], response: httpx.Response) -> M:
    body = _json(response)
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise InvalidResponse(
            f"{response.request.method} {response.request.url.path}: body does not fit "
            f"{model.__name__}: {exc.error_count()} errors, first {exc.errors()[0]['msg']}",
            status=response.status_code,
        ) from exc


def _error_from(response: httpx.Response) -> HordeError:
    status = response.status_code
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    detail = response.reason_phrase or "error"
    body: ErrorBody | None = None
    try:
        body = ErrorBody.model_validate(response.json())
    except ValueError:
        text = response.text.strip()
        if text:
            detail = text[:200]
    if body is not None:
        detail = body.message
        if body.errors and not body.rc:
            return ValidationFailed(body.message, errors=body.errors, status=status)
    rc = body.rc if body is not None else None
    cls = error_class_for(status, rc)
    return cls(detail, status=status, rc=rc, retry_after=retry_after)
