"""Fixtures that run the embedded horde for real: 127.0.0.1, port 0, its own thread and loop.

``embedded_horde`` yields a ``RunningHorde`` with ``.url`` (ending in ``/api``),
``.add_user(name, kudos) -> api_key``, ``.db_url``, ``.images_dir``, and ``.stop()``,
``.start()`` / ``.restart()`` (same database and port). ``make_embedded_horde(**settings)`` builds
one with other ``HordeSettings`` (short TTLs, lifetimes). Both work from sync and async tests.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import pytest

from core.horde.server import EmbeddedHorde, HordeSettings

T = TypeVar("T")
_TIMEOUT_S = 30.0


class RunningHorde:
    """An embedded horde served from a background thread; stops itself at the end of the test."""

    def __init__(self, settings: HordeSettings) -> None:
        self.settings = settings
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._embedded: EmbeddedHorde | None = None

    @property
    def url(self) -> str:
        """Base URL for a horde client: ``http://127.0.0.1:PORT/api``."""
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def db_url(self) -> str:
        """The SQLAlchemy URL of its database."""
        return self.settings.db_url

    @property
    def images_dir(self) -> Path:
        """Where it keeps finished images."""
        return self.settings.resolved_images_dir()

    @property
    def embedded(self) -> EmbeddedHorde:
        """The running server object (its ``horde`` holds the live state)."""
        if self._embedded is None:
            raise RuntimeError("the embedded horde is stopped")
        return self._embedded

    def call(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run a coroutine on the server's loop and wait for its result."""
        if self._loop is None:
            raise RuntimeError("the embedded horde is stopped")
        return asyncio.run_coroutine_threadsafe(make(), self._loop).result(_TIMEOUT_S)

    def start(self) -> None:
        """Start serving (again on the same port after a stop)."""
        if self._thread is not None:
            raise RuntimeError("already running")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="embedded-horde")
        self._thread.start()
        self._embedded = EmbeddedHorde(self.settings, port=self.port)
        try:
            self.call(self._embedded.start)
        except BaseException:
            self._embedded = None
            self._halt()
            raise
        self.port = self._embedded.port

    def stop(self) -> None:
        """Stop serving and close the database (idempotent)."""
        if self._thread is None:
            return
        if self._embedded is not None:
            self.call(self._embedded.stop)
            self._embedded = None
        self._halt()

    def _halt(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(_TIMEOUT_S)
            loop.close()
        self._loop = None
        self._thread = None

    def restart(self) -> None:
        """Stop and start again on the same database, images and port."""
        self.stop()
        self.start()

    def add_user(self, name: str, kudos: float = 0.0, *, trusted: bool = False) -> str:
        """Create an account and return its API key."""
        embedded = self.embedded
        return self.call(lambda: embedded.add_user(name, kudos=kudos, trusted=trusted))


@pytest.fixture
def make_embedded_horde(tmp_path: Path) -> Iterator[Callable[..., RunningHorde]]:
    """Start embedded hordes with given ``HordeSettings`` fields; all stop after the test."""
    started: list[RunningHorde] = []

    def make(**overrides: Any) -> RunningHorde:
        base = HordeSettings(
            db_url=f"sqlite:///{tmp_path / f'horde-{len(started)}.db'}",
            maintenance_interval_s=0.1,
        )
        horde = RunningHorde(replace(base, **overrides))
        started.append(horde)
        horde.start()
        return horde

    yield make
    for horde in started:
        horde.stop()


@pytest.fixture
def embedded_horde(make_embedded_horde: Callable[..., RunningHorde]) -> RunningHorde:
    """A running embedded horde with the contract's defaults (sweeping every 0.1 s)."""
    return make_embedded_horde()
