"""Reading library files: fresh cache, network, stale cache, bundled fallback; local folders.

A real HTTP server on 127.0.0.1 stands in for upstream; cache age is set with ``os.utime``
instead of waiting, so nothing here depends on timing.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.model_reference import load_model_reference
from styles.library import load_library
from styles.source import fetch, fetch_cached, read, read_source, safe_url
from tests.styles.static_server import StaticServer, folder_files, serve
from tests.support.paths import SHARED_MODEL_REFERENCE, SHARED_STYLES

HOUR = 3600


@pytest.fixture
def upstream() -> Iterator[StaticServer]:
    """The shared style files and model reference, served as upstream lays them out."""
    files = folder_files(SHARED_STYLES, "/styles")
    files["/models/stable_diffusion.json"] = SHARED_MODEL_REFERENCE.read_bytes()
    with serve(files) as server:
        yield server


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_first_fetch_downloads_and_caches_the_bytes(upstream: StaticServer, tmp_path: Path) -> None:
    cache = tmp_path / "cache" / "styles.json"
    got = fetch(f"{upstream.url}/styles/styles.json", cache, HOUR)
    assert got is not None
    assert got.origin == "upstream"
    assert got.data == (SHARED_STYLES / "styles.json").read_bytes()
    assert cache.read_bytes() == got.data
    assert [p.name for p in cache.parent.iterdir()] == ["styles.json"]  # no temp file left


def test_fresh_cache_is_used_without_a_request(upstream: StaticServer, tmp_path: Path) -> None:
    cache = tmp_path / "styles.json"
    url = f"{upstream.url}/styles/styles.json"
    fetch(url, cache, HOUR)
    got = fetch(url, cache, HOUR)
    assert got is not None
    assert got.origin == "cache"
    assert upstream.hits["/styles/styles.json"] == 1


def test_cache_older_than_refresh_is_downloaded_again(
    upstream: StaticServer, tmp_path: Path
) -> None:
    cache = tmp_path / "styles.json"
    url = f"{upstream.url}/styles/styles.json"
    fetch(url, cache, HOUR)
    upstream.files["/styles/styles.json"] = b'{"new": {"prompt": "{p}"}}'
    _age(cache, HOUR + 1)
    got = fetch(url, cache, HOUR)
    assert got is not None
    assert got.origin == "upstream"
    assert upstream.hits["/styles/styles.json"] == 2
    assert cache.read_bytes() == b'{"new": {"prompt": "{p}"}}'


def test_refresh_zero_always_downloads(upstream: StaticServer, tmp_path: Path) -> None:
    cache = tmp_path / "styles.json"
    url = f"{upstream.url}/styles/styles.json"
    for _ in range(3):
        assert fetch_cached(url, cache, 0) is not None
    assert upstream.hits["/styles/styles.json"] == 3


@pytest.mark.parametrize("mode", ["error", "garbage"])
def test_failed_refresh_falls_back_to_the_stale_cache_and_keeps_it(
    upstream: StaticServer, tmp_path: Path, mode: str
) -> None:
    cache = tmp_path / "styles.json"
    url = f"{upstream.url}/styles/styles.json"
    fetch(url, cache, HOUR)
    before = cache.read_bytes()
    _age(cache, 2 * HOUR)
    upstream.mode = mode  # type: ignore[assignment]
    got = fetch(url, cache, HOUR)
    assert got is not None
    assert got.origin == "stale cache"
    assert got.data == before
    assert cache.read_bytes() == before  # a bad answer never overwrites the cache


def test_no_network_and_no_cache_gives_none(tmp_path: Path) -> None:
    with serve({}) as gone:
        url = f"{gone.url}/styles.json"
    # The server is closed now: the port refuses connections.
    assert fetch(url, tmp_path / "styles.json", HOUR, timeout=2) is None
    assert not (tmp_path / "styles.json").exists()


def test_a_corrupt_cache_file_is_not_served(upstream: StaticServer, tmp_path: Path) -> None:
    cache = tmp_path / "styles.json"
    cache.write_bytes(b"{truncated")
    got = fetch(f"{upstream.url}/styles/styles.json", cache, HOUR)
    assert got is not None
    assert got.origin == "upstream"


def test_secrets_in_the_url_never_reach_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with serve({}) as gone:
        port = gone.url.rsplit(":", 1)[1]
    url = f"http://user:hunter2@127.0.0.1:{port}/styles.json?token=hunter2"
    with caplog.at_level(logging.DEBUG):
        assert fetch(url, tmp_path / "styles.json", HOUR, timeout=2) is None
    assert caplog.records, "the failure should be logged"
    assert "hunter2" not in caplog.text
    assert safe_url(url) == f"http://127.0.0.1:{port}/styles.json"


def test_read_joins_an_url_base_and_takes_a_file_url_as_is(
    upstream: StaticServer, tmp_path: Path
) -> None:
    base = read(f"{upstream.url}/styles/", "categories.json", tmp_path, HOUR)
    whole = read(
        f"{upstream.url}/models/stable_diffusion.json", "stable_diffusion.json", tmp_path, 0
    )
    assert base is not None
    assert base.data == (SHARED_STYLES / "categories.json").read_bytes()
    assert whole is not None
    assert whole.data == SHARED_MODEL_REFERENCE.read_bytes()
    assert upstream.paths_seen == ["/styles/categories.json", "/models/stable_diffusion.json"]


def test_read_local_folder_and_file_without_caching(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    folder = read(str(SHARED_STYLES), "styles.json", cache, HOUR)
    file = read(str(SHARED_MODEL_REFERENCE), "stable_diffusion.json", cache, HOUR)
    assert folder is not None
    assert folder.origin == f"folder:{SHARED_STYLES}"
    assert file is not None
    assert file.origin == f"file:{SHARED_MODEL_REFERENCE}"
    assert read_source(str(tmp_path / "missing"), "styles.json", cache, HOUR) is None
    assert not cache.exists()


# --- the loaders on top ------------------------------------------------------------------------


def test_library_from_upstream_then_from_cache(upstream: StaticServer, tmp_path: Path) -> None:
    first = load_library(f"{upstream.url}/styles", tmp_path, HOUR)
    second = load_library(f"{upstream.url}/styles", tmp_path, HOUR)
    assert (first.origin, second.origin) == ("upstream", "cache")
    assert len(first.styles) == len(second.styles) == 404
    assert sum(upstream.hits.values()) == 3  # three files, fetched once each
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "categories.json",
        "enhancements.json",
        "styles.json",
    ]


def test_library_offline_with_a_stale_cache_uses_it(upstream: StaticServer, tmp_path: Path) -> None:
    load_library(f"{upstream.url}/styles", tmp_path, HOUR)
    for file in tmp_path.iterdir():
        _age(file, 2 * HOUR)
    upstream.mode = "error"
    library = load_library(f"{upstream.url}/styles", tmp_path, HOUR)
    assert library.origin == "stale cache"
    assert len(library.styles) == 404


def test_library_offline_without_cache_uses_our_fallback(tmp_path: Path) -> None:
    with serve({}) as gone:
        url = gone.url
    library = load_library(url, tmp_path, HOUR)
    assert library.origin == "fallback"
    assert library.style("lcm-fast") is not None


def test_library_from_a_folder_missing_files_uses_the_fallback(tmp_path: Path) -> None:
    (tmp_path / "styles.json").write_text('{"only": {"prompt": "{p}"}}')
    assert load_library(str(tmp_path), tmp_path / "cache", HOUR).origin == "fallback"


def test_library_without_enhancements_still_loads(upstream: StaticServer, tmp_path: Path) -> None:
    del upstream.files["/styles/enhancements.json"]
    library = load_library(f"{upstream.url}/styles", tmp_path, HOUR)
    assert library.origin == "upstream"
    assert library.enhancements == {}


def test_model_reference_from_upstream_url_cache_and_fallback(
    upstream: StaticServer, tmp_path: Path
) -> None:
    url = f"{upstream.url}/models/stable_diffusion.json"
    assert load_model_reference(url, tmp_path, HOUR).origin == "upstream"
    assert load_model_reference(url, tmp_path, HOUR).origin == "cache"
    assert (tmp_path / "stable_diffusion.json").is_file()
    upstream.mode = "garbage"
    assert load_model_reference(url, tmp_path / "empty", HOUR).origin == "fallback"
