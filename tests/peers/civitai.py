"""A small stateful fake of the CivitAI REST API, on 127.0.0.1 port 0 in a background thread.

It serves ``/api/v1/models/{id}``, ``/api/v1/model-versions/{id}``, ``/api/v1/models?query=&types=``
and downloads. A download goes through a redirect, ``/api/download/models/{version}?file={id}``
-> ``/cdn/{version}/{file}``, as CivitAI redirects to its CDN. Tests add models with
``add_version`` and shape each file with ``FakeFile``: a real payload, a lying ``sha256`` or
``size_kb``, a pickle labelled SafeTensor, and so on. Switches on the server cover the rest:
``fail_next`` (5xx answers), ``chunk_delay_s`` (a slow download), ``send_length`` (no
Content-Length header) and ``require_auth`` (login-gated downloads). Every request is recorded in
``seen`` so a test can count API calls and downloads and read the headers that were sent.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.peers.loopback import LoopbackPeer

CHUNK = 4096


@dataclass
class FakeFile:
    """One file of a fake model version; ``sha256``/``size_kb`` override the true values."""

    payload: bytes
    name: str = "model.safetensors"
    format: str = "SafeTensor"
    primary: bool = True
    sha256: str | None = None
    size_kb: float | None = None
    id: int = 0

    def _hashes(self) -> dict[str, str]:
        if self.sha256 == "":  # a file CivitAI has not hashed
            return {"AutoV2": "0123456789"}
        true = hashlib.sha256(self.payload).hexdigest()
        return {"SHA256": (self.sha256 or true).upper(), "AutoV2": "0123456789"}

    def describe(self, base: str, version_id: int) -> dict[str, object]:
        """The file as CivitAI lists it in ``files[]``; ``sha256=""`` leaves the hash out."""
        return {
            "id": self.id,
            "name": self.name,
            "sizeKB": self.size_kb if self.size_kb is not None else len(self.payload) / 1024,
            "type": "Model",
            "primary": self.primary,
            "metadata": {"format": self.format, "size": "pruned", "fp": "fp16"},
            "hashes": self._hashes(),
            "downloadUrl": f"{base}/api/download/models/{version_id}?file={self.id}",
        }


@dataclass
class FakeVersion:
    """One model version."""

    id: int
    model_id: int
    files: list[FakeFile]
    trained_words: list[str] = field(default_factory=list)
    base_model: str = "SD 1.5"
    availability: str = "Public"

    def describe(self, files_base: str) -> dict[str, object]:
        """The version as it appears inside a model's ``modelVersions``."""
        return {
            "id": self.id,
            "name": f"v{self.id}",
            "baseModel": self.base_model,
            "trainedWords": list(self.trained_words),
            "availability": self.availability,
            "files": [f.describe(files_base, self.id) for f in self.files],
            "downloadUrl": f"{files_base}/api/download/models/{self.id}",
        }


@dataclass
class FakeModel:
    """One model and its versions."""

    id: int
    name: str
    type: str
    nsfw: bool = False
    versions: list[FakeVersion] = field(default_factory=list)

    def describe(self, files_base: str) -> dict[str, object]:
        """The model as ``/models/{id}`` answers it, versions newest first."""
        newest_first = sorted(self.versions, key=lambda v: v.id, reverse=True)
        return {
            "id": self.id,
            "name": self.name,
            "type": self.type,
            "nsfw": self.nsfw,
            "modelVersions": [v.describe(files_base) for v in newest_first],
        }


@dataclass(frozen=True)
class Seen:
    """One request the fake received."""

    path: str
    query: str
    authorization: str | None


class FakeCivitai(LoopbackPeer):
    """The fake server and its state; ``start()``/``stop()`` or use as a context manager."""

    label = "fake CivitAI"

    def __init__(self) -> None:
        super().__init__()
        self.models: dict[int, FakeModel] = {}
        self.versions: dict[int, FakeVersion] = {}
        self.seen: list[Seen] = []
        self.chunk_delay_s = 0.0
        self.send_length = True
        self.require_auth = False
        # Another host name for download URLs (e.g. "localhost"), as if files lived elsewhere.
        self.file_host: str | None = None
        self._fail_left = 0
        self._fail_status = 503
        self._next_file_id = 1
        self._lock = threading.Lock()

    # ---- state ---------------------------------------------------------------------------

    def add_version(
        self,
        model_id: int,
        version_id: int,
        files: Sequence[FakeFile],
        *,
        name: str = "Test LoRA",
        type: str = "LORA",
        trained_words: Sequence[str] = (),
        base_model: str = "SD 1.5",
        availability: str = "Public",
    ) -> FakeVersion:
        """Add a version (and its model the first time); file ids are assigned here."""
        with self._lock:
            model = self.models.setdefault(model_id, FakeModel(model_id, name, type))
            for file in files:
                file.id = self._next_file_id
                self._next_file_id += 1
            version = FakeVersion(
                version_id, model_id, list(files), list(trained_words), base_model, availability
            )
            model.versions.append(version)
            self.versions[version_id] = version
            return version

    def fail_next(self, count: int, status: int = 503) -> None:
        """Answer the next ``count`` requests (of any kind) with ``status``."""
        with self._lock:
            self._fail_left, self._fail_status = count, status

    def count(self, prefix: str) -> int:
        """How many requests had a path starting with ``prefix``."""
        with self._lock:
            return sum(1 for s in self.seen if s.path.startswith(prefix))

    @property
    def files_base(self) -> str:
        """Where download URLs point: this server, or ``file_host`` on the same port."""
        if self.file_host is None:
            return self.base_url
        return self.base_url.replace("127.0.0.1", self.file_host)

    @property
    def api_calls(self) -> int:
        """Metadata requests (``/api/v1/...``)."""
        return self.count("/api/v1/")

    @property
    def downloads(self) -> int:
        """File bodies served or attempted (``/cdn/...``)."""
        return self.count("/cdn/")

    # ---- HTTP ----------------------------------------------------------------------------

    def _record(self, request: Request) -> Response | None:
        with self._lock:
            self.seen.append(
                Seen(request.url.path, request.url.query, request.headers.get("authorization"))
            )
            if self._fail_left > 0:
                self._fail_left -= 1
                return JSONResponse({"error": "fake outage"}, status_code=self._fail_status)
        return None

    async def _model(self, request: Request) -> Response:
        failed = self._record(request)
        if failed is not None:
            return failed
        model = self.models.get(int(request.path_params["model_id"]))
        if model is None:
            return JSONResponse({"error": "No model with id"}, status_code=404)
        return JSONResponse(model.describe(self.files_base))

    async def _version(self, request: Request) -> Response:
        failed = self._record(request)
        if failed is not None:
            return failed
        version = self.versions.get(int(request.path_params["version_id"]))
        if version is None:
            return JSONResponse({"error": "Model not found"}, status_code=404)
        model = self.models[version.model_id]
        body = version.describe(self.files_base)
        body["modelId"] = model.id
        body["model"] = {"name": model.name, "type": model.type, "nsfw": model.nsfw}
        return JSONResponse(body)

    async def _search(self, request: Request) -> Response:
        failed = self._record(request)
        if failed is not None:
            return failed
        query = request.query_params.get("query", "").casefold()
        types = set(request.query_params.getlist("types"))
        items = [
            m.describe(self.files_base)
            for m in self.models.values()
            if query in m.name.casefold() and (not types or m.type in types)
        ]
        return JSONResponse({"items": items, "metadata": {"totalItems": len(items)}})

    async def _download(self, request: Request) -> Response:
        failed = self._record(request)
        if failed is not None:
            return failed
        version_id = int(request.path_params["version_id"])
        if self.require_auth and request.headers.get("authorization") is None:
            return RedirectResponse("/login?returnUrl=/x&reason=download-auth", status_code=307)
        version = self.versions.get(version_id)
        if version is None:
            return JSONResponse({"error": "not found"}, status_code=404)
        file_id = int(request.query_params.get("file", version.files[0].id))
        return RedirectResponse(f"/cdn/{version_id}/{file_id}", status_code=307)

    async def _cdn(self, request: Request) -> Response:
        failed = self._record(request)
        if failed is not None:
            return failed
        version = self.versions.get(int(request.path_params["version_id"]))
        file_id = int(request.path_params["file_id"])
        file = next((f for f in version.files if f.id == file_id), None) if version else None
        if file is None:
            return JSONResponse({"error": "not found"}, status_code=404)
        delay = self.chunk_delay_s

        async def body() -> AsyncIterator[bytes]:
            for start in range(0, len(file.payload), CHUNK):
                if delay:
                    await asyncio.sleep(delay)
                yield file.payload[start : start + CHUNK]

        headers = {"content-length": str(len(file.payload))} if self.send_length else {}
        return StreamingResponse(body(), media_type="application/octet-stream", headers=headers)

    async def _login(self, request: Request) -> Response:
        self._record(request)
        return Response("<html>please log in</html>", media_type="text/html")

    def app(self) -> Starlette:
        """The Starlette app serving the fake."""
        return Starlette(
            routes=[
                Route("/api/v1/models", self._search),
                Route("/api/v1/models/{model_id:int}", self._model),
                Route("/api/v1/model-versions/{version_id:int}", self._version),
                Route("/api/download/models/{version_id:int}", self._download),
                Route("/cdn/{version_id:int}/{file_id:int}", self._cdn),
                Route("/login", self._login),
            ]
        )


def serve() -> Iterator[FakeCivitai]:
    """Generator body for a pytest fixture: a started fake, stopped afterwards."""
    with FakeCivitai() as fake:
        yield fake
