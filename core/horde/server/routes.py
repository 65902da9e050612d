"""The HTTP face of the embedded horde: the AI Horde's v2 paths under ``/api/v2/``.

Each handler parses its input with the shared wire models, calls ``Horde`` and answers with the
horde's shapes and status codes. Every failure a client can cause ends as a 4xx with either
``{"message", "rc"}`` or ``{"message", "errors"}``; a 500 would be a bug here.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from core.horde.server.errors import HordeError, PayloadInvalid, from_validation
from core.horde.server.horde import Horde
from core.horde.server.images import Links
from core.horde.wire import (
    GenerationInput,
    Heartbeat,
    KudosTransferInput,
    PopInput,
    PopResponse,
    SubmitInput,
)

M = TypeVar("M", bound=BaseModel)

VERSION = "hordebot-embedded-2.5"
BANNED_CLIENT_AGENT = "My-Project:v0.0.1:My-Contact"
MAX_IDEMPOTENCY_KEY = 255
_R2_FILE = re.compile(
    r"^(?P<id>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.webp$"
)
_MODEL_STATES = ("known", "custom", "all")

_log = logging.getLogger(__name__)


def _json(model: BaseModel, status: int = 200, *, exclude_none: bool = False) -> Response:
    return Response(
        model.model_dump_json(exclude_none=exclude_none),
        status_code=status,
        media_type="application/json",
    )


def _json_list(models: list[Any]) -> Response:
    body = json.dumps([model.model_dump(mode="json") for model in models])
    return Response(body, media_type="application/json")


def _check_strings(value: Any) -> None:
    """Reject NUL bytes (the horde's NulByteInPayload) and unpaired surrogates (not UTF-8)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise HordeError(400, "NulByteInPayload", "The payload contains a NUL byte.")
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise PayloadInvalid({"payload": "text must be valid UTF-8"}) from None
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


class _Api:
    """The route handlers, bound to one ``Horde``."""

    def __init__(self, horde: Horde) -> None:
        self.horde = horde

    # ---- input --------------------------------------------------------------------------

    async def _raw_body(self, request: Request) -> bytes:
        limit = self.horde.settings.max_body_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise HordeError(413, "PayloadTooLarge", f"The body is over {limit} bytes.")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise HordeError(413, "PayloadTooLarge", f"The body is over {limit} bytes.")
            chunks.append(chunk)
        return b"".join(chunks)

    async def _body(self, request: Request, model: type[M]) -> M:
        raw = await self._raw_body(request)
        try:
            data = json.loads(raw) if raw.strip() else {}
        except (ValueError, RecursionError):
            raise PayloadInvalid({"payload": "The body is not valid JSON."}) from None
        if not isinstance(data, dict):
            raise PayloadInvalid({"payload": "The body must be a JSON object."})
        _check_strings(data)
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise from_validation(exc) from None

    def _links(self, request: Request) -> Links:
        if self.horde.settings.public_url:
            return self.horde.links(self.horde.settings.public_url)
        # The bound address, not the Host header: a client cannot steer links elsewhere.
        server = request.scope.get("server") or ("127.0.0.1", 80)
        host, port = server[0], server[1]
        if ":" in host:
            host = f"[{host}]"
        return self.horde.links(f"http://{host}:{port}/api")

    async def _user(self, request: Request, *, unknown_rc: str = "") -> Any:
        return await self.horde.user_for_key(request.headers.get("apikey"), unknown_rc=unknown_rc)

    @staticmethod
    def _int_query(request: Request, name: str) -> int | None:
        value = request.query_params.get(name)
        if value is None or value == "":
            return None
        try:
            return int(value)
        except ValueError:
            raise PayloadInvalid({name: "must be a whole number"}) from None

    # ---- client side --------------------------------------------------------------------

    async def generate_async(self, request: Request) -> Response:
        if request.headers.get("client-agent") == BANNED_CLIENT_AGENT:
            raise HordeError(
                403, "BannedClientAgent", "Set your own Client-Agent (name:version:contact)."
            )
        user = await self._user(request)
        body = await self._body(request, GenerationInput)
        result = await self.horde.create_request(user, body)
        if body.dry_run:
            return _json(result)
        return _json(result, 202, exclude_none=True)

    async def check(self, request: Request) -> Response:
        return _json(self.horde.check(request.path_params["id"]))

    async def status(self, request: Request) -> Response:
        request_id = request.path_params["id"]
        links = self._links(request)
        # exclude_none: gen_metadata entries carry ``ref`` only when the worker gave one.
        if request.method == "DELETE":
            return _json(await self.horde.cancel(request_id, links), exclude_none=True)
        return _json(await self.horde.status(request_id, links), exclude_none=True)

    # ---- worker side --------------------------------------------------------------------

    async def pop(self, request: Request) -> Response:
        user = await self._user(request)
        body = await self._body(request, PopInput)
        answer: PopResponse = await self.horde.pop(user, body, self._links(request))
        data = answer.model_dump(mode="json")
        if answer.payload is not None:
            data["payload"] = answer.payload.model_dump(mode="json", exclude_none=True)
        return JSONResponse(data)

    async def submit(self, request: Request) -> Response:
        user = await self._user(request)
        body = await self._body(request, SubmitInput)
        return _json(await self.horde.submit(user, body))

    async def r2(self, request: Request) -> Response:
        match = _R2_FILE.match(request.path_params["file"])
        if match is None:
            raise HordeError(404, "InvalidJobID", "No such image.")
        job_id = match["id"]
        purpose = "put" if request.method == "PUT" else "get"
        if not self.horde.images.verify(purpose, job_id, request.query_params.get("sig", "")):
            raise HordeError(403, "WrongCredentials", "This link's signature is not valid.")
        if purpose == "put":
            await self.horde.upload(job_id, await self._raw_body(request))
            return Response(status_code=200)
        data = await self.horde.image(job_id)
        if data is None:
            raise HordeError(404, "InvalidJobID", "No finished image for this job.")
        return Response(data, media_type="image/webp")

    # ---- accounts and status ------------------------------------------------------------

    async def find_user(self, request: Request) -> Response:
        user = await self._user(request, unknown_rc="UserNotFound")
        return _json(self.horde.find_user(user))

    async def transfer(self, request: Request) -> Response:
        user = await self._user(request)
        key = request.headers.get("idempotency-key")
        if key is not None and not 0 < len(key) <= MAX_IDEMPOTENCY_KEY:
            raise PayloadInvalid(
                {"Idempotency-Key": f"must be 1 to {MAX_IDEMPOTENCY_KEY} characters"}
            )
        body = await self._body(request, KudosTransferInput)
        return _json(await self.horde.transfer(user, body, key))

    async def models(self, request: Request) -> Response:
        kind = request.query_params.get("type", "image")
        state = request.query_params.get("model_state", "all")
        if kind not in ("image", "text"):
            raise PayloadInvalid({"type": "must be image or text"})
        if state not in _MODEL_STATES:
            raise PayloadInvalid({"model_state": "must be known, custom or all"})
        min_count = self._int_query(request, "min_count")
        max_count = self._int_query(request, "max_count")
        rows = [] if kind == "text" else self.horde.models(min_count=min_count, max_count=max_count)
        name = request.path_params.get("name")
        if name is not None:
            rows = [row for row in rows if row.name == name]
        return _json_list(rows)

    async def heartbeat(self, request: Request) -> Response:
        return _json(Heartbeat(message="OK", version=VERSION))

    async def workers(self, request: Request) -> Response:
        kind = request.query_params.get("type", "image")
        if kind not in ("image", "text", "interrogation"):
            raise PayloadInvalid({"type": "must be image, text or interrogation"})
        if kind != "image":
            return _json_list([])
        return _json_list(self.horde.workers(name=request.query_params.get("name")))

    async def worker(self, request: Request) -> Response:
        return _json(self.horde.worker(request.path_params["id"]))

    async def worker_by_name(self, request: Request) -> Response:
        found = self.horde.workers(name=request.path_params["name"])
        if not found:
            raise HordeError(404, "WorkerNotFound", "No worker with this name.")
        return _json(found[0])


async def _on_horde_error(_request: Request, exc: Exception) -> Response:
    if isinstance(exc, HordeError):
        return JSONResponse(exc.body(), status_code=exc.status)
    raise exc


async def _on_payload_invalid(_request: Request, exc: Exception) -> Response:
    if isinstance(exc, PayloadInvalid):
        return JSONResponse(exc.body(), status_code=400)
    raise exc


async def _on_http_error(_request: Request, exc: Exception) -> Response:
    if isinstance(exc, HTTPException):
        return JSONResponse(
            {"message": exc.detail}, status_code=exc.status_code, headers=exc.headers
        )
    raise exc


async def _on_crash(request: Request, exc: Exception) -> Response:
    _log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"message": "Internal Server Error"}, status_code=500)


def create_app(horde: Horde) -> Starlette:
    """The ASGI app serving ``horde`` under ``/api/v2/``."""
    api = _Api(horde)
    v2 = "/api/v2"
    routes = [
        Route(f"{v2}/generate/async", api.generate_async, methods=["POST"]),
        Route(f"{v2}/generate/check/{{id}}", api.check, methods=["GET"]),
        Route(f"{v2}/generate/status/{{id}}", api.status, methods=["GET", "DELETE"]),
        Route(f"{v2}/generate/pop", api.pop, methods=["POST"]),
        Route(f"{v2}/generate/submit", api.submit, methods=["POST"]),
        Route(f"{v2}/_r2/{{file}}", api.r2, methods=["GET", "PUT"]),
        Route(f"{v2}/find_user", api.find_user, methods=["GET"]),
        Route(f"{v2}/kudos/transfer", api.transfer, methods=["POST"]),
        Route(f"{v2}/status/models", api.models, methods=["GET"]),
        Route(f"{v2}/status/models/{{name}}", api.models, methods=["GET"]),
        Route(f"{v2}/status/heartbeat", api.heartbeat, methods=["GET"]),
        Route(f"{v2}/workers", api.workers, methods=["GET"]),
        Route(f"{v2}/workers/name/{{name}}", api.worker_by_name, methods=["GET"]),
        Route(f"{v2}/workers/{{id}}", api.worker, methods=["GET"]),
    ]
    return Starlette(
        routes=routes,
        exception_handlers={
            HordeError: _on_horde_error,
            PayloadInvalid: _on_payload_invalid,
            HTTPException: _on_http_error,
            Exception: _on_crash,
        },
    )
