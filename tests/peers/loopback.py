"""Serving a test peer's ASGI app on 127.0.0.1, a free port, from a daemon thread."""

from __future__ import annotations

import threading
import time
from typing import Any, Self

import uvicorn


def loopback_server(app: Any, **extra: Any) -> uvicorn.Server:
    """A quiet uvicorn server for ``app`` on 127.0.0.1 port 0 (``extra`` adds Config options)."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        log_level="warning",
        access_log=False,
        lifespan="off",
        ws="none",
        http="h11",
        **extra,
    )
    return uvicorn.Server(config)


def wait_started(
    server: uvicorn.Server, thread: threading.Thread, what: str, timeout: float
) -> int:
    """Block until ``server`` (run by ``thread``) accepts connections; return its port."""
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the {what} did not start")
        time.sleep(0.01)
    port: int = server.servers[0].sockets[0].getsockname()[1]
    return port


class LoopbackPeer:
    """A fake server's lifecycle: ``app()`` served on 127.0.0.1 by ``start``, or as a context."""

    label = "test peer"

    def __init__(self) -> None:
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""

    def app(self) -> Any:
        """The ASGI app to serve."""
        raise NotImplementedError

    def start(self) -> Self:
        """Serve on a free port in a daemon thread; returns once accepting."""
        self._server = loopback_server(self.app())
        name = self.label.replace(" ", "-")
        self._thread = threading.Thread(target=self._server.run, name=name, daemon=True)
        self._thread.start()
        port = wait_started(self._server, self._thread, self.label, timeout=10)
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread."""
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
