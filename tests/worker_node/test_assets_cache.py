"""The asset cache on disk, the safetensors header check, and CivitAI metadata rules (no HTTP)."""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save

from worker_node.asset_cache import (
    AssetCache,
    CacheEntry,
    CacheFull,
    NotSafetensors,
    check_safetensors,
)
from worker_node.civitai import (
    CivitaiError,
    CivitModel,
    CivitVersion,
    baselines_match,
    clean_triggers,
    horde_baseline,
    latest_version,
    pick_file,
)

# ---- safetensors header check ----------------------------------------------------------------


def valid_file() -> bytes:
    return save(
        {
            "a": np.arange(6, dtype=np.float32).reshape(2, 3),
            "b": np.ones((3,), dtype=np.float16),
            "c": np.array([True, False]),
            "d": np.arange(4, dtype=np.int64),
        },
        metadata={"format": "pt"},
    )


def handmade(header: object, data: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def written(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "file.safetensors"
    path.write_bytes(data)
    return path


def test_files_written_by_the_safetensors_package_pass(tmp_path: Path) -> None:
    check_safetensors(written(tmp_path, valid_file()))
    empty_tensor = save({"e": np.zeros((0, 4), dtype=np.float32), "x": np.ones(2, np.uint8)})
    check_safetensors(written(tmp_path, empty_tensor))


def _zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"w": [1.0, 2.0]}))
    return buffer.getvalue()


F32 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
BAD_FILES = {
    "empty": b"",
    "short": b"\x01\x00\x00",
    "pickle": pickle.dumps({"weights": [1, 2, 3]}),
    "torch-zip": _zip_bytes(),
    "html": b"<html><body>Please log in</body></html>",
    "header-longer-than-file": struct.pack("<Q", 1000) + b"{}",
    "header-not-json": struct.pack("<Q", 4) + b"{abc" + bytes(8),
    "header-a-list": handmade([1, 2], b""),
    "no-tensors": handmade({"__metadata__": {"a": "b"}}, b""),
    "metadata-not-strings": handmade({"__metadata__": {"a": 1}, "t": F32}, bytes(8)),
    "missing-dtype": handmade({"t": {"shape": [2], "data_offsets": [0, 8]}}, bytes(8)),
    "negative-shape": handmade({"t": {**F32, "shape": [-2]}}, bytes(8)),
    "bool-shape": handmade({"t": {**F32, "shape": [True, 2]}}, bytes(8)),
    "offsets-outside": handmade({"t": {**F32, "data_offsets": [0, 16]}}, bytes(8)),
    "offsets-reversed": handmade({"t": {**F32, "data_offsets": [8, 0]}}, bytes(8)),
    "size-not-shape": handmade({"t": {**F32, "shape": [3]}}, bytes(8)),
    "gap": handmade({"t": {**F32, "data_offsets": [4, 12]}}, bytes(12)),
    "overlap": handmade({"t": F32, "u": F32}, bytes(8)),
    "trailing-bytes": handmade({"t": F32}, bytes(12)),
}


@pytest.mark.parametrize("data", BAD_FILES.values(), ids=BAD_FILES.keys())
def test_anything_but_a_sound_safetensors_file_is_refused(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(NotSafetensors):
        check_safetensors(written(tmp_path, data))


def _load_with_the_package(path: Path) -> None:
    with safe_open(str(path), framework="numpy") as opened:
        for key in opened.keys():  # noqa: SIM118 - safe_open has no __iter__
            opened.get_tensor(key)


@pytest.mark.parametrize("name", sorted(set(BAD_FILES) - {"no-tensors"}))
def test_the_safetensors_package_agrees_these_are_broken(tmp_path: Path, name: str) -> None:
    # Our own stricter rule: a file without tensors is valid to the package but useless to us.
    with pytest.raises(SafetensorError):
        _load_with_the_package(written(tmp_path, BAD_FILES[name]))


def test_every_truncation_and_any_appended_byte_is_refused(tmp_path: Path) -> None:
    data = valid_file()
    for cut in range(len(data)):
        with pytest.raises(NotSafetensors):
            check_safetensors(written(tmp_path, data[:cut]))
    with pytest.raises(NotSafetensors):
        check_safetensors(written(tmp_path, data + b"\x00"))


# ---- CivitAI metadata rules ---------------------------------------------------------------------


def test_triggers_are_cleaned_and_deduplicated() -> None:
    words = ["<lora:foxy:0.8>", "  fox ears ", "fox ears", "", "<lora:bare>", "a, b"]
    assert clean_triggers(words) == ("foxy", "fox ears", "bare", "a, b")


@pytest.mark.parametrize(
    ("base_model", "baseline", "matches"),
    [
        ("SD 1.5", "stable diffusion 1", True),
        ("SD 1.5 LCM", "stable diffusion 1", True),
        ("SD 1.5", "stable_diffusion_xl", False),
        ("SDXL 1.0", "stable_diffusion_xl", True),
        ("Pony", "stable_diffusion_xl", True),
        ("Illustrious", "stable diffusion 1", False),
        ("SD 2.1 768", "stable_diffusion_2_768", True),
        ("SD 2.1", "stable diffusion 1", False),
        ("Flux.1 D", "flux_1", True),
        ("Flux.1 D", "stable_diffusion_xl", False),
        ("Other", "stable diffusion 1", True),  # unknown: cannot tell, so not a mismatch
    ],
)
def test_baselines_match(base_model: str, baseline: str, matches: bool) -> None:
    assert baselines_match(base_model, baseline) is matches


def test_unknown_base_model_has_no_horde_baseline() -> None:
    assert horde_baseline("Kolors") is None


def version(files: list[dict[str, object]], **extra: object) -> CivitVersion:
    return CivitVersion.model_validate({"id": 1, "files": files, **extra})


def test_pick_file_takes_the_primary_safetensors() -> None:
    files: list[dict[str, object]] = [
        {"name": "a.pt", "primary": True, "metadata": {"format": "PickleTensor"}},
        {"name": "b.safetensors", "metadata": {"format": "SafeTensor"}},
        {"name": "c.safetensors", "primary": True, "metadata": {"format": "SafeTensor"}},
    ]
    assert pick_file(version(files)).name == "c.safetensors"
    assert pick_file(version(files[:2])).name == "b.safetensors"
    with pytest.raises(CivitaiError, match="only PickleTensor"):
        pick_file(version(files[:1]))


def test_latest_version_skips_early_access() -> None:
    model = CivitModel.model_validate(
        {
            "id": 5,
            "modelVersions": [
                {"id": 3, "availability": "EarlyAccess"},
                {"id": 2, "availability": "Public"},
                {"id": 1},
            ],
        }
    )
    assert latest_version(model).id == 2
    early = {"id": 3, "availability": "EarlyAccess"}
    only_early = CivitModel.model_validate({"id": 5, "modelVersions": [early]})
    with pytest.raises(CivitaiError, match="no publicly available version"):
        latest_version(only_early)


def test_sha256_is_read_case_insensitively() -> None:
    file = version([{"hashes": {"sha256": "ABCDEF"}}]).files[0]
    assert file.sha256 == "abcdef"


# ---- the disk cache ---------------------------------------------------------------------------


def put(cache: AssetCache, version_id: int, size: int, kind: str = "lora") -> CacheEntry:
    assert kind in ("lora", "ti")
    data = bytes([version_id % 256]) * size
    entry = CacheEntry(
        kind="lora" if kind == "lora" else "ti",
        model_id=version_id,
        version_id=version_id,
        size=size,
        sha256=hashlib.sha256(data).hexdigest(),
        triggers=("t",),
        base_model="SD 1.5",
    )
    partial = cache.partial_path(entry.kind, version_id)
    partial.write_bytes(data)
    cache.admit(entry, partial)
    return entry


def test_cache_survives_a_restart_in_lru_order(tmp_path: Path) -> None:
    cache = AssetCache(tmp_path, max_bytes=300)
    put(cache, 1, 100)
    put(cache, 2, 100)
    assert cache.get("lora", 1) is not None  # 2 is now least recently used
    reopened = AssetCache(tmp_path, max_bytes=300)
    assert reopened.total_bytes == 200
    put(reopened, 3, 100)
    put(reopened, 4, 100)
    assert reopened.get("lora", 2) is None
    assert reopened.get("lora", 1) is not None


def test_a_smaller_budget_at_restart_evicts_the_least_recently_used(tmp_path: Path) -> None:
    cache = AssetCache(tmp_path, max_bytes=300)
    for version_id in (1, 2, 3):
        put(cache, version_id, 100)
    cache.get("lora", 1)
    smaller = AssetCache(tmp_path, max_bytes=200)
    assert smaller.get("lora", 2) is None
    assert smaller.get("lora", 1) is not None
    assert smaller.get("lora", 3) is not None
    assert not (tmp_path / "lora" / "2.safetensors").exists()


def test_restart_removes_partial_downloads_and_unindexed_files(tmp_path: Path) -> None:
    cache = AssetCache(tmp_path, max_bytes=1000)
    kept = put(cache, 1, 10)
    (tmp_path / "partial" / "lora-7.part").write_bytes(b"half")
    (tmp_path / "lora" / "8.safetensors").write_bytes(b"orphan")
    (tmp_path / "ti" / "notes.txt").write_text("not ours to delete")
    AssetCache(tmp_path, max_bytes=1000)
    assert not (tmp_path / "partial" / "lora-7.part").exists()
    assert not (tmp_path / "lora" / "8.safetensors").exists()
    assert (tmp_path / "ti" / "notes.txt").exists()
    assert cache.path_of("lora", kept.version_id).exists()


def test_a_corrupt_index_starts_an_empty_cache(tmp_path: Path) -> None:
    cache = AssetCache(tmp_path, max_bytes=1000)
    put(cache, 1, 10)
    (tmp_path / "index.json").write_text("{not json")
    fresh = AssetCache(tmp_path, max_bytes=1000)
    assert fresh.total_bytes == 0
    assert fresh.get("lora", 1) is None
    assert not (tmp_path / "lora" / "1.safetensors").exists()


def test_a_file_removed_behind_the_cache_is_a_miss(tmp_path: Path) -> None:
    cache = AssetCache(tmp_path, max_bytes=1000)
    put(cache, 1, 10)
    cache.set_alias("lora:model:1", 1)
    (tmp_path / "lora" / "1.safetensors").unlink()
    assert cache.get("lora", 1) is None
    assert cache.alias("lora:model:1") is None
    assert cache.total_bytes == 0


def test_eviction_spares_protected_entries(tmp_path: Path) -> None:
    cache = AssetCache(tmp_path, max_bytes=200)
    first = put(cache, 1, 100)
    put(cache, 2, 100)
    data = b"z" * 100
    entry = CacheEntry("lora", 3, 3, 100, hashlib.sha256(data).hexdigest(), (), "SD 1.5")
    partial = cache.partial_path("lora", 3)
    partial.write_bytes(data)
    cache.admit(entry, partial, protect={first.key})
    assert cache.get("lora", 1) is not None
    assert cache.get("lora", 2) is None
    partial.write_bytes(data)
    with pytest.raises(CacheFull):
        cache.admit(entry, partial, protect={first.key, entry.key})


def test_paths_come_from_ids_only(tmp_path: Path) -> None:
    cache = AssetCache(tmp_path, max_bytes=1000)
    assert cache.path_of("ti", 42) == tmp_path.resolve() / "ti" / "42.safetensors"
    with pytest.raises(ValueError, match="no cache path"):
        cache.path_of("ti", 0)
    with pytest.raises(ValueError, match="no cache path"):
        cache.path_of("../x", 1)  # type: ignore[arg-type]
