"""Where library files come from: an http(s) URL with an on-disk cache, or a local file or folder.

Bots must keep working offline, and upstream (raw.githubusercontent.com) should not be hit on
every start, so an URL is read in this order: a fresh cache file, the network, a stale cache
file. Only bytes that decode as JSON are ever cached, and the cache is written atomically (a
temporary file renamed over the old one), so a crash or a half-served page never poisons it.
The style library and the model reference (``core.model_reference``) both read through here.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx

log = logging.getLogger(__name__)

USER_AGENT = "hordebot (+https://github.com/hordebot/hordebot)"


@dataclass(frozen=True, slots=True)
class Fetched:
    """Bytes of one library file and where they came from.

    ``origin`` is ``upstream`` (just downloaded), ``cache`` (fresh cache file), ``stale cache``
    (the download failed; an older copy was used), or ``file:<path>`` / ``folder:<path>``.
    """

    data: bytes
    origin: str


def is_url(source: str) -> bool:
    """Whether ``source`` names an http(s) URL rather than a local path."""
    return urlsplit(source.strip()).scheme in ("http", "https")


def safe_url(url: str) -> str:
    """``url`` without credentials, query or fragment: fit for a log line."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _is_json(data: bytes) -> bool:
    try:
        json.loads(data)
    except ValueError:
        return False
    return True


def _read_cache(cache_file: Path) -> bytes | None:
    try:
        data = cache_file.read_bytes()
    except OSError:
        return None
    return data if _is_json(data) else None


def _write_atomically(cache_file: Path, data: bytes) -> None:
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{cache_file.name}.", dir=cache_file.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, cache_file)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        # Not being able to cache is worth a warning, not a failure: the data is in hand.
        log.warning("cannot write cache %s: %s", cache_file, exc)


def fetch(
    url: str, cache_file: Path, refresh_seconds: int, *, timeout: float = 10.0
) -> Fetched | None:
    """``url`` through ``cache_file``: fresh cache, else download, else stale cache, else None.

    The cache is fresh while younger than ``refresh_seconds`` (0 always downloads). A download
    counts only when it answers 200 with valid JSON; anything else leaves the cache untouched.
    """
    shown = safe_url(url)
    cached = _read_cache(cache_file)
    if cached is not None:
        age = time.time() - cache_file.stat().st_mtime
        if age < refresh_seconds:
            log.debug("%s: using cache %s (%.0f s old)", shown, cache_file, age)
            return Fetched(cached, "cache")
    problem: str
    try:
        with httpx.Client(
            timeout=timeout, follow_redirects=True, headers={"User-Agent": USER_AGENT}
        ) as client:
            response = client.get(url)
    except httpx.HTTPError as exc:
        # httpx may quote the URL in its message; keep the query (a possible token) out of logs.
        problem = f"{type(exc).__name__}: {exc}".replace(url, shown)
    else:
        if response.status_code != httpx.codes.OK:
            problem = f"HTTP {response.status_code}"
        elif not _is_json(response.content):
            problem = "the answer is not JSON"
        else:
            _write_atomically(cache_file, response.content)
            log.info("%s: downloaded %d bytes", shown, len(response.content))
            return Fetched(response.content, "upstream")
    if cached is not None:
        log.warning("%s: %s; using the stale cache %s", shown, problem, cache_file)
        return Fetched(cached, "stale cache")
    log.warning("%s: %s; no cache to fall back on", shown, problem)
    return None


def fetch_cached(
    url: str, cache_file: Path, refresh_seconds: int, *, timeout: float = 10.0
) -> bytes | None:
    """The bytes of ``fetch``: fresh cache, download, stale cache, or None."""
    got = fetch(url, cache_file, refresh_seconds, timeout=timeout)
    return got.data if got else None


def _names_a_file(source: str, filename: str) -> bool:
    last = source.rstrip("/").rsplit("/", 1)[-1]
    return last == filename or last.endswith(".json")


def read(
    source: str, filename: str, cache_dir: Path, refresh_seconds: int, *, timeout: float = 10.0
) -> Fetched | None:
    """One library file from ``source``, or None (the reason is logged).

    ``source`` is one of:

    * an http(s) URL *base*: the file is ``{source}/{filename}``;
    * an http(s) URL of the file itself (its last path part is ``filename`` or ends in
      ``.json``), as the model reference is configured;
    * a local folder holding ``filename``;
    * a local file, read as it is (``filename`` is then only the expected name).

    URLs go through ``fetch`` with the cache file ``cache_dir/filename``; local files are
    read fresh each time and never cached.
    """
    source = source.strip()
    if is_url(source):
        if _names_a_file(urlsplit(source).path, filename):
            url = source
        else:
            url = f"{source.rstrip('/')}/{filename}"
        return fetch(url, cache_dir / filename, refresh_seconds, timeout=timeout)
    path = Path(source).expanduser()
    if path.is_dir():
        target, origin = path / filename, f"folder:{path}"
    else:
        target, origin = path, f"file:{path}"
    try:
        return Fetched(target.read_bytes(), origin)
    except OSError as exc:
        log.warning("cannot read %s: %s", target, exc.strerror or exc)
        return None


def read_source(source: str, filename: str, cache_dir: Path, refresh_seconds: int) -> bytes | None:
    """The bytes of ``read``: see there for what ``source`` may be."""
    got = read(source, filename, cache_dir, refresh_seconds)
    return got.data if got else None
