"""Running the embedded horde inside an asyncio program: uvicorn as a task on the current loop.

``EmbeddedHorde`` is what the composition root and the CLI use::

    async with EmbeddedHorde(HordeSettings(db_url="sqlite:///horde.db"), port=0) as horde:
        print(horde.url)  # http://127.0.0.1:PORT/api

It binds its socket itself (so the port is known at once, also with port 0), runs the maintenance
sweep beside the server, and leaves signal handling to its caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from types import TracebackType

import uvicorn

from core.horde.server.horde import Horde
from core.horde.server.routes import create_app
from core.horde.server.settings import HordeSettings

_log = logging.getLogger(__name__)
_START_TIMEOUT_S = 30.0


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: the program embedding the horde owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class EmbeddedHorde:
    """A horde-compatible server on ``host:port`` (port 0 picks a free one) in the running loop."""

    def __init__(
        self, settings: HordeSettings | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.settings = settings or HordeSettings()
        self.host = host
        self.port = port
        self._horde: Horde | None = None
        self._server: _Server | None = None
        self._serving: asyncio.Task[None] | None = None
        self._maintenance: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        """The base URL a horde client takes (ends in ``/api``)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/api"

    @property
    def horde(self) -> Horde:
        """The running horde (for adding users in-process)."""
        if self._horde is None:
            raise RuntimeError("the embedded horde is not running")
        return self._horde

    async def add_user(self, name: str, *, kudos: float = 0.0, trusted: bool = False) -> str:
        """Create an account on the running horde and return its API key."""
        return await self.horde.add_user(name, kudos=kudos, trusted=trusted)

    async def issue_key(self, name: str, *, kudos: float = 0.0, trusted: bool = False) -> str:
        """A fresh key for the named account, created with ``kudos`` when missing."""
        return await self.horde.issue_key(name, kudos=kudos, trusted=trusted)

    async def start(self) -> None:
        """Open the database, bind, and serve; returns once connections are accepted."""
        if self._serving is not None:
            raise RuntimeError("the embedded horde is already running")
        self._horde = await asyncio.to_thread(Horde.open, self.settings)
        try:
            sock = self._bind()
        except OSError:
            await asyncio.to_thread(self._horde.close)
            self._horde = None
            raise
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            create_app(self._horde),
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="off",
            ws="none",
            timeout_graceful_shutdown=2,
        )
        self._server = _Server(config)
        self._serving = asyncio.create_task(self._server.serve(sockets=[sock]))
        async with asyncio.timeout(_START_TIMEOUT_S):
            while not self._server.started:
                if self._serving.done():
                    await self._serving
                    raise RuntimeError("the embedded horde stopped while starting")
                await asyncio.sleep(0.005)
        self._maintenance = asyncio.create_task(self._horde.maintain())
        _log.info("horde listening on %s", self.url)

    def _bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # proto=IPPROTO_TCP: asyncio sets TCP_NODELAY on accepted sockets only when the listening
        # socket names its protocol; without it every answer waits ~40 ms for a delayed ACK.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            # Lets a restarted horde take its port back while old connections linger.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.listen(2048)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        return sock

    async def stop(self) -> None:
        """Stop serving, finish pending writes and close the database."""
        if self._maintenance is not None:
            self._maintenance.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._maintenance
            self._maintenance = None
        if self._server is not None and self._serving is not None:
            self._server.should_exit = True
            await self._serving
        self._server = None
        self._serving = None
        if self._horde is not None:
            await self._horde.settle()
            await asyncio.to_thread(self._horde.close)
            self._horde = None

    async def serve_forever(self) -> None:
        """Wait until the server stops (for the CLI)."""
        if self._serving is not None:
            await asyncio.shield(self._serving)

    async def __aenter__(self) -> EmbeddedHorde:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()
