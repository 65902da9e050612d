"""Serving a test peer's ASGI app on 127.0.0.1, a free port, from a daemon thread."""

from __future__ import annotations

import threading
import time
from typing import Any

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
