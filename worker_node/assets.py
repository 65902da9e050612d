"""LoRAs and TIs for a job: resolved through a CivitAI-compatible API, downloaded, verified, cached.

``AssetStore`` is what the worker loop calls. ``lora(spec)`` / ``ti(spec)`` give a local
safetensors file together with what the prompt needs (trigger words, base model). ``prefetch``
starts the next job's downloads while the current job is inferring.

The rules, and why they exist:

- Only safetensors files are ever accepted, and nothing is ever unpickled. A file CivitAI labels
  SafeTensor is chosen, and its bytes must parse as a safetensors header before it is cached.
- The SHA256 is checked while streaming, against CivitAI's ``hashes.SHA256``.
- There are size caps (LoRA 400 MB, TI 20 MB). They are checked from ``sizeKB`` before a download
  starts and again on the bytes as they arrive.
- One download runs per file; any other caller waits for that download instead of starting its
  own.
- A failure is an ``AssetError`` whose ``reason`` is a horde ``gen_metadata`` value. The job goes
  on without that asset and says so; it does not fault.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal, TypeVar

import httpx

from core.horde.wire import GenMetadata, LoraSpec, TISpec
from worker_node.asset_cache import (
    AssetCache,
    CacheEntry,
    CacheFull,
    NotSafetensors,
    check_safetensors,
    entry_key,
)
from worker_node.civitai import (
    ACCEPTED_TYPES,
    DEFAULT_BASE_MODEL,
    AssetKind,
    CivitaiApi,
    CivitaiError,
    baselines_match,
    clean_triggers,
    format_size,
    latest_version,
    pick_file,
)

log = logging.getLogger(__name__)

LORA_CAP_BYTES = 400 * 1024**2
TI_CAP_BYTES = 20 * 1024**2
DEFAULT_CACHE_BYTES = 10 * 1024**3
AssetFailure = Literal["download_failed", "parse_failed", "baseline_mismatch"]
_LABELS: dict[AssetKind, str] = {"lora": "LoRA", "ti": "TI"}

T = TypeVar("T")


def cache_bytes_from_gb(gigabytes: float) -> int:
    """``max_lora_cache_size`` (GB, as reGen counts them: 1024**3 bytes) in bytes."""
    return int(gigabytes * 1024**3)


@dataclass(frozen=True, slots=True)
class Asset:
    """A verified safetensors LoRA or TI on local disk, with what CivitAI says about it."""

    kind: Literal["lora", "ti"]
    model_id: int
    version_id: int
    path: Path
    sha256: str
    triggers: tuple[str, ...]
    base_model: str


class AssetError(Exception):
    """An asset the job asked for cannot be used; the job runs without it and reports why.

    ``reason`` is the horde ``gen_metadata`` value. ``message`` is one line naming the asset.
    """

    def __init__(self, reason: AssetFailure, message: str, *, kind: AssetKind, ref: str) -> None:
        super().__init__(message)
        self.reason: AssetFailure = reason
        self.message = message
        self.kind: AssetKind = kind
        self.ref = ref

    def gen_metadata(self) -> GenMetadata:
        """The ``gen_metadata`` entry that tells the requester this asset was skipped."""
        return GenMetadata(type=self.kind, value=self.reason, ref=self.ref[:255])


class _Refused(Exception):
    """A reasoned refusal raised inside the store; ``_get`` turns it into an AssetError."""

    def __init__(self, reason: AssetFailure, message: str) -> None:
        super().__init__(message)
        self.reason: AssetFailure = reason


@dataclass(frozen=True, slots=True)
class _Request:
    kind: AssetKind
    by: Literal["version", "model", "name"]
    name: str

    @property
    def alias(self) -> str:
        value = self.name.strip().casefold() if self.by == "name" else str(int(self.name))
        return f"{self.kind}:{self.by}:{value}"

    @property
    def label(self) -> str:
        return f"{_LABELS[self.kind]} {self.name!r}"


@dataclass(frozen=True, slots=True)
class _Target:
    """A resolved version whose file is not cached yet."""

    kind: AssetKind
    model_id: int
    version_id: int
    base_model: str
    triggers: tuple[str, ...]
    url: str | None
    sha256: str | None
    size_kb: float | None


class AssetStore:
    """Resolves, downloads, verifies and caches LoRAs and TIs for the worker's jobs.

    Use one store per worker and call ``aclose`` when done. ``max_cache_bytes`` bounds the disk
    cache, which evicts the least recently used files first. ``resolve_ttl_s`` is how long "the
    latest version of model N" or a name search is trusted before CivitAI is asked again. If
    CivitAI is unreachable, an older answer whose file is cached is used instead.
    """

    def __init__(
        self,
        cache_dir: Path,
        civitai_url: str = "https://civitai.com",
        token: str | None = None,
        max_cache_bytes: int = DEFAULT_CACHE_BYTES,
        lora_cap: int = LORA_CAP_BYTES,
        ti_cap: int = TI_CAP_BYTES,
        client: httpx.AsyncClient | None = None,
        *,
        resolve_ttl_s: float = 24 * 3600,
        retries: int = 3,
        retry_delay_s: float = 2.0,
        timeout_s: float = 35.0,
        read_timeout_s: float = 30.0,
        parallel_downloads: int = 3,
    ) -> None:
        self._cache = AssetCache(cache_dir, max_cache_bytes)
        self._api = CivitaiApi(
            civitai_url,
            token,
            client,
            retries=retries,
            retry_delay_s=retry_delay_s,
            timeout_s=timeout_s,
            read_timeout_s=read_timeout_s,
        )
        self._caps: dict[AssetKind, int] = {"lora": lora_cap, "ti": ti_cap}
        self._resolve_ttl_s = resolve_ttl_s
        self._slots = asyncio.Semaphore(max(1, parallel_downloads))
        self._resolving: dict[str, asyncio.Task[CacheEntry | _Target]] = {}
        self._downloads: dict[str, asyncio.Task[CacheEntry]] = {}
        # Versions a running prefetch has resolved: its sibling downloads must not evict them.
        self._busy: Counter[str] = Counter()

    def __repr__(self) -> str:
        return f"AssetStore({self._cache.root}, {self._api!r})"

    @property
    def cache_dir(self) -> Path:
        """The cache root (resolved)."""
        return self._cache.root

    async def lora(self, spec: LoraSpec, *, baseline: str | None = None) -> Asset:
        """The LoRA a job asked for: by version id, by model id (latest version) or by name.

        With ``baseline`` (the job model's horde baseline), a LoRA made for another baseline is
        refused with ``baseline_mismatch`` before it is downloaded.
        """
        return await self._get(_lora_request(spec), baseline)

    async def ti(self, spec: TISpec, *, baseline: str | None = None) -> Asset:
        """The TI a job asked for: by model id (latest version; TIs have no version ids) or name."""
        return await self._get(_ti_request(spec), baseline)

    async def prefetch(
        self,
        loras: Sequence[LoraSpec],
        tis: Sequence[TISpec],
        *,
        baseline: str | None = None,
    ) -> list[Asset | AssetError]:
        """Fetch a job's assets concurrently: LoRAs then TIs, in order, each an Asset or error.

        The loop calls this for the next job while the current one infers. Its later ``lora()``
        and ``ti()`` calls then hit the cache, or join the download already running.
        """
        held: list[str] = []

        async def one(request: _Request) -> Asset | AssetError:
            try:
                return await self._get(request, baseline, held)
            except AssetError as err:
                return err

        requests = [_lora_request(s) for s in loras] + [_ti_request(s) for s in tis]
        try:
            return list(await asyncio.gather(*(one(r) for r in requests)))
        finally:
            for key in held:
                self._busy[key] -= 1
            self._busy = +self._busy

    async def aclose(self) -> None:
        """Cancel downloads in flight and close the HTTP client if the store made it."""
        tasks = [*self._resolving.values(), *self._downloads.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._api.aclose()

    async def _get(
        self, request: _Request, baseline: str | None, hold: list[str] | None = None
    ) -> Asset:
        """Resolve and fetch; with ``hold``, pin the version so sibling downloads keep it."""
        try:
            found = await self._shared(
                self._resolving, request.alias, lambda: self._resolve(request)
            )
            _check_baseline(found.base_model, baseline)
            key = entry_key(found.kind, found.version_id)
            if hold is not None:
                self._busy[key] += 1
                hold.append(key)
            if isinstance(found, _Target):
                entry = await self._shared(self._downloads, key, lambda: self._fetch(found))
            else:
                entry = found
        except CivitaiError as exc:
            raise AssetError(
                "download_failed", f"{request.label}: {exc}", kind=request.kind, ref=request.name
            ) from None
        except _Refused as exc:
            raise AssetError(
                exc.reason, f"{request.label}: {exc}", kind=request.kind, ref=request.name
            ) from None
        return Asset(
            kind=entry.kind,
            model_id=entry.model_id,
            version_id=entry.version_id,
            path=self._cache.path_of(entry.kind, entry.version_id),
            sha256=entry.sha256,
            triggers=entry.triggers,
            base_model=entry.base_model,
        )

    async def _shared(
        self,
        table: dict[str, asyncio.Task[T]],
        key: str,
        start: Callable[[], Coroutine[Any, Any, T]],
    ) -> T:
        """Join the task running for ``key``, or start it; one caller's cancel stops no other."""
        task = table.get(key)
        if task is None:
            task = asyncio.create_task(start(), name=f"asset {key}")
            table[key] = task
            task.add_done_callback(partial(_forget, table, key))
        return await asyncio.shield(task)

    async def _resolve(self, request: _Request) -> CacheEntry | _Target:
        kind = request.kind
        if request.by == "version":
            version_id = int(request.name)
            cached = self._cache.get(kind, version_id)
            if cached is not None:
                return cached
            version = await self._api.version(version_id)
            model_type = version.model.type if version.model else None
            model_id = version.model_id or 0
        else:
            known = self._cache.alias(request.alias)
            if known is not None and time.time() - known[1] < self._resolve_ttl_s:
                cached = self._cache.get(kind, known[0])
                if cached is not None:
                    return cached
            try:
                if request.by == "model":
                    model = await self._api.model(int(request.name))
                else:
                    found = await self._api.search(request.name, kind)
                    if found is None:
                        raise _Refused("download_failed", "no match on CivitAI")
                    model = found
            except CivitaiError:
                cached = None if known is None else self._cache.get(kind, known[0])
                if cached is None:
                    raise
                log.warning("CivitAI unavailable; using the cached %s", request.label)
                return cached
            version = latest_version(model)
            model_type, model_id = model.type, model.id
            self._cache.set_alias(request.alias, version.id)
        if model_type and model_type.lower() not in ACCEPTED_TYPES[kind]:
            raise _Refused("download_failed", f"is a {model_type}, not a {_LABELS[kind]}")
        cached = self._cache.get(kind, version.id)
        if cached is not None:
            return cached
        file = pick_file(version)
        return _Target(
            kind=kind,
            model_id=model_id,
            version_id=version.id,
            base_model=version.base_model or DEFAULT_BASE_MODEL,
            triggers=clean_triggers(version.trained_words),
            url=file.download_url or version.download_url,
            sha256=file.sha256,
            size_kb=file.size_kb,
        )

    async def _fetch(self, target: _Target) -> CacheEntry:
        kind, version_id = target.kind, target.version_id
        # A caller holding an older resolution may arrive after the file landed.
        cached = self._cache.get(kind, version_id)
        if cached is not None:
            return cached
        cap = self._caps[kind]
        if target.size_kb is not None:
            announced = int(target.size_kb * 1024)
            if announced > cap:
                raise _Refused(
                    "download_failed",
                    f"is {format_size(announced)}, over the {format_size(cap)} {_LABELS[kind]} cap",
                )
            if not self._cache.fits(announced):
                raise _Refused("download_failed", "is larger than the whole asset cache")
        if not target.sha256:
            raise _Refused("download_failed", "CivitAI gives no SHA256 for it; refused")
        if not target.url:
            raise _Refused("download_failed", "CivitAI gives no download URL for it")
        part = self._cache.partial_path(kind, version_id)
        try:
            async with self._slots:
                size = await self._api.download(
                    target.url, part, sha256=target.sha256, cap_bytes=cap
                )
            try:
                await asyncio.to_thread(check_safetensors, part)
            except NotSafetensors as exc:
                raise _Refused("parse_failed", f"the file is not safetensors ({exc})") from None
            entry = CacheEntry(
                kind=kind,
                model_id=target.model_id,
                version_id=version_id,
                size=size,
                sha256=target.sha256,
                triggers=target.triggers,
                base_model=target.base_model,
            )
            try:
                self._cache.admit(entry, part, protect=set(self._busy))
            except CacheFull as exc:
                raise _Refused("download_failed", str(exc)) from None
            log.info("cached %s %d (%s)", _LABELS[kind], version_id, format_size(size))
            return entry
        except OSError as exc:
            log.warning("writing %s %d failed", _LABELS[kind], version_id, exc_info=True)
            raise _Refused("download_failed", f"could not be written to disk ({exc})") from None
        finally:
            part.unlink(missing_ok=True)


def _lora_request(spec: LoraSpec) -> _Request:
    if spec.is_version:
        return _Request("lora", "version", spec.name)
    return _Request("lora", "model" if spec.name.isdigit() else "name", spec.name)


def _ti_request(spec: TISpec) -> _Request:
    return _Request("ti", "model" if spec.name.isdigit() else "name", spec.name)


def _check_baseline(base_model: str, baseline: str | None) -> None:
    if baseline is not None and not baselines_match(base_model, baseline):
        raise _Refused("baseline_mismatch", f"is made for {base_model}, not {baseline}")


def _forget(table: dict[str, asyncio.Task[T]], key: str, task: asyncio.Task[T]) -> None:
    if table.get(key) is task:
        del table[key]
    # Mark a failure as seen: every caller may have been cancelled, which is not an error here.
    if not task.cancelled():
        task.exception()
