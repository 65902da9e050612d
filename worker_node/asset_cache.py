"""The disk cache of downloaded LoRAs and TIs: names from ids only, a byte budget, LRU eviction.

Layout under the cache root::

    lora/<version id>.safetensors    verified LoRA files
    ti/<version id>.safetensors      verified TI files
    partial/                         downloads in progress, wiped at start
    index.json                       entries, least recently used first, and name/model aliases

File names come from integer ids and never from anything CivitAI sends, so a hostile file name
cannot escape the cache. A file enters the cache only after its hash and its safetensors header
have been checked. ``check_safetensors`` reads the header by hand and never unpickles anything.
An alias maps a request ("the latest version of model 55", "the LoRA named foo") to a version id,
so a repeat request is answered from disk without asking CivitAI.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import time
from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from worker_node.civitai import AssetKind

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 100 * 1024**2
# Bytes per element for the dtypes whose size we can check; newer sub-byte dtypes only get their
# offsets checked.
_DTYPE_BYTES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E5M2": 1,
    "F8_E4M3": 1,
    "F8_E8M0": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "C64": 8,
    "I64": 8,
    "U64": 8,
    "F64": 8,
}
_CACHED_NAME = re.compile(r"^[0-9]+\.safetensors$")
_KINDS: tuple[AssetKind, ...] = ("lora", "ti")


class NotSafetensors(ValueError):
    """The bytes are not a well-formed safetensors file."""


class CacheFull(Exception):
    """The file cannot fit in the cache budget, even after evicting everything evictable."""


def check_safetensors(path: Path) -> None:
    """Raise NotSafetensors unless ``path`` has a sound safetensors header.

    The checks: an 8-byte little-endian header length, a JSON object header, and a
    dtype/shape/offsets entry per tensor. The tensors must cover the data area exactly, with no
    gap and no overlap. Only the header is read. A pickle or a zip fails at the first check.
    """
    size = path.stat().st_size
    with path.open("rb") as file:
        prefix = file.read(8)
        if len(prefix) < 8:
            raise NotSafetensors("shorter than a safetensors header")
        length = int.from_bytes(prefix, "little")
        if length < 2 or length > min(MAX_HEADER_BYTES, size - 8):
            raise NotSafetensors("header length out of range: not a safetensors file")
        raw = file.read(length)
    if not raw.startswith(b"{"):
        raise NotSafetensors("header is not a JSON object")
    try:
        header = json.loads(raw)
    except ValueError:
        raise NotSafetensors("header is not valid JSON") from None
    if not isinstance(header, dict):
        raise NotSafetensors("header is not a JSON object")
    data_len = size - 8 - length
    found = (_tensor_span(name, info, data_len) for name, info in header.items())
    spans = sorted(span for span in found if span is not None)
    if not spans:
        raise NotSafetensors("holds no tensors")
    position = 0
    for begin, end in spans:
        if begin != position:
            raise NotSafetensors("tensor data overlaps or leaves a gap")
        position = end
    if position != data_len:
        raise NotSafetensors("tensor data does not fill the file")


def _tensor_span(name: str, info: object, data_len: int) -> tuple[int, int] | None:
    if name == "__metadata__":
        if not isinstance(info, dict) or not all(isinstance(v, str) for v in info.values()):
            raise NotSafetensors("__metadata__ must map strings to strings")
        return None
    if not isinstance(info, dict):
        raise NotSafetensors(f"tensor {name!r} has no description")
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if not isinstance(dtype, str) or not isinstance(shape, list) or not isinstance(offsets, list):
        raise NotSafetensors(f"tensor {name!r} lacks dtype, shape or data_offsets")
    if not all(type(d) is int and d >= 0 for d in shape):
        raise NotSafetensors(f"tensor {name!r} has a bad shape")
    if len(offsets) != 2 or not all(type(o) is int for o in offsets):
        raise NotSafetensors(f"tensor {name!r} has bad data_offsets")
    begin, end = offsets
    if not 0 <= begin <= end <= data_len:
        raise NotSafetensors(f"tensor {name!r} points outside the file")
    width = _DTYPE_BYTES.get(dtype)
    if width is not None and end - begin != math.prod(shape) * width:
        raise NotSafetensors(f"tensor {name!r} size does not match its shape")
    return begin, end


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """One verified file in the cache and what CivitAI said about it."""

    kind: AssetKind
    model_id: int
    version_id: int
    size: int
    sha256: str
    triggers: tuple[str, ...]
    base_model: str

    @property
    def key(self) -> str:
        """The cache key: kind and version id."""
        return entry_key(self.kind, self.version_id)


def entry_key(kind: AssetKind, version_id: int) -> str:
    """The cache key of a version's file."""
    return f"{kind}:{version_id}"


class _EntryRecord(BaseModel):
    model_config = ConfigDict(extra="ignore")

    kind: Literal["lora", "ti"]
    model_id: int = Field(ge=0)
    version_id: int = Field(gt=0)
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    triggers: tuple[str, ...] = ()
    base_model: str = ""
    last_used: float = 0.0


class _AliasRecord(BaseModel):
    model_config = ConfigDict(extra="ignore")

    version_id: int = Field(gt=0)
    resolved_at: float


class _IndexFile(BaseModel):
    model_config = ConfigDict(extra="ignore")

    entries: list[_EntryRecord] = Field(default_factory=list)
    aliases: dict[str, _AliasRecord] = Field(default_factory=dict)


class AssetCache:
    """Verified asset files on disk, kept within ``max_bytes`` by evicting the least recently used.

    Its methods do small, quick file operations (stat, rename, a short JSON index) and run on the
    event loop. That keeps the in-memory index single-threaded.
    """

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root.resolve()
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, CacheEntry] = OrderedDict()
        self._last_used: dict[str, float] = {}
        self._aliases: dict[str, _AliasRecord] = {}
        for sub in (*_KINDS, "partial"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self._load()

    @property
    def total_bytes(self) -> int:
        """Bytes held by cached files."""
        return sum(entry.size for entry in self._entries.values())

    def path_of(self, kind: AssetKind, version_id: int) -> Path:
        """Where a version's file lives; built from the id alone."""
        if kind not in _KINDS or version_id <= 0:
            raise ValueError(f"no cache path for {kind}:{version_id}")
        return self.root / kind / f"{int(version_id)}.safetensors"

    def partial_path(self, kind: AssetKind, version_id: int) -> Path:
        """Where a download in progress is written before it is verified."""
        return self.root / "partial" / f"{kind}-{int(version_id)}.part"

    def get(self, kind: AssetKind, version_id: int) -> CacheEntry | None:
        """The cached entry, marked as just used; None if absent or its file has gone."""
        key = entry_key(kind, version_id)
        entry = self._entries.get(key)
        if entry is None:
            return None
        if not self._file_intact(entry):
            log.warning("cached %s is missing or changed on disk; it will be downloaded again", key)
            self._drop(key)
            self._save()
            return None
        self._entries.move_to_end(key)
        self._last_used[key] = time.time()
        self._save()
        return entry

    def alias(self, name: str) -> tuple[int, float] | None:
        """The version id an alias points at and when it was resolved."""
        record = self._aliases.get(name)
        return None if record is None else (record.version_id, record.resolved_at)

    def set_alias(self, name: str, version_id: int) -> None:
        """Remember that a request resolved to this version (now)."""
        self._aliases[name] = _AliasRecord(version_id=version_id, resolved_at=time.time())
        self._save()

    def fits(self, size: int) -> bool:
        """Whether a file of this size could ever be kept."""
        return size <= self.max_bytes

    def admit(self, entry: CacheEntry, partial: Path, protect: Collection[str] = ()) -> Path:
        """Move a verified download into the cache, evicting LRU entries not in ``protect``."""
        self._make_room(entry.size, protect)
        final = self.path_of(entry.kind, entry.version_id)
        os.replace(partial, final)
        self._entries[entry.key] = entry
        self._entries.move_to_end(entry.key)
        self._last_used[entry.key] = time.time()
        self._save()
        return final

    def _make_room(self, size: int, protect: Collection[str]) -> None:
        if size > self.max_bytes:
            raise CacheFull(f"{size} bytes is more than the whole cache ({self.max_bytes} bytes)")
        total = self.total_bytes
        for key in [k for k in self._entries if k not in protect]:
            if total + size <= self.max_bytes:
                break
            total -= self._entries[key].size
            log.info("evicting %s from the asset cache to make room", key)
            self._drop(key)
        if total + size > self.max_bytes:
            raise CacheFull("the cache is full of assets the current jobs need")

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key)
        self._last_used.pop(key, None)
        self.path_of(entry.kind, entry.version_id).unlink(missing_ok=True)
        for name in [n for n, a in self._aliases.items() if a.version_id == entry.version_id]:
            del self._aliases[name]

    def _file_intact(self, entry: CacheEntry) -> bool:
        try:
            return self.path_of(entry.kind, entry.version_id).stat().st_size == entry.size
        except FileNotFoundError:
            return False

    def _load(self) -> None:
        index = self.root / "index.json"
        try:
            loaded = _IndexFile.model_validate_json(index.read_bytes())
        except FileNotFoundError:
            loaded = _IndexFile()
        except (ValidationError, ValueError, OSError) as exc:
            log.warning("asset cache index %s is unreadable (%s); starting empty", index, exc)
            loaded = _IndexFile()
        # The index is saved least recently used first; its order is the LRU order.
        for record in loaded.entries:
            entry = CacheEntry(
                kind=record.kind,
                model_id=record.model_id,
                version_id=record.version_id,
                size=record.size,
                sha256=record.sha256,
                triggers=record.triggers,
                base_model=record.base_model,
            )
            if self._file_intact(entry):
                self._entries[entry.key] = entry
                self._last_used[entry.key] = record.last_used
        known = {e.version_id for e in self._entries.values()}
        self._aliases = {n: a for n, a in loaded.aliases.items() if a.version_id in known}
        self._sweep()
        self._make_room(0, ())
        self._save()

    def _sweep(self) -> None:
        # Leftovers of a crash: partial downloads, and files that never made it into the index.
        for leftover in (self.root / "partial").iterdir():
            if leftover.is_file():
                leftover.unlink()
        for kind in _KINDS:
            for path in (self.root / kind).iterdir():
                if not _CACHED_NAME.match(path.name) or not path.is_file():
                    continue
                if entry_key(kind, int(path.stem)) not in self._entries:
                    path.unlink()

    def _save(self) -> None:
        records = [
            _EntryRecord(
                kind=e.kind,
                model_id=e.model_id,
                version_id=e.version_id,
                size=e.size,
                sha256=e.sha256,
                triggers=e.triggers,
                base_model=e.base_model,
                last_used=self._last_used.get(e.key, 0.0),
            )
            for e in self._entries.values()
        ]
        body = _IndexFile(entries=records, aliases=self._aliases).model_dump_json(indent=1)
        temporary = self.root / "index.json.tmp"
        temporary.write_text(body, encoding="utf-8")
        os.replace(temporary, self.root / "index.json")
