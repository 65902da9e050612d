"""A tiny static JSON server on 127.0.0.1 port 0, standing in for raw.githubusercontent.com.

It serves files from a dict (path -> bytes) in a background thread and keeps state a test can
steer and read: ``mode`` makes every answer a 500 or a 200 that is not JSON, and ``hits``
counts requests per path, so a test can tell a cache hit from a download.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Literal

Mode = Literal["ok", "error", "garbage"]


@dataclass
class StaticServer:
    """The server's state; ``url`` is its base, without a trailing slash."""

    files: dict[str, bytes]
    url: str = ""
    mode: Mode = "ok"
    hits: Counter[str] = field(default_factory=Counter)
    paths_seen: list[str] = field(default_factory=list)


@contextmanager
def serve(files: dict[str, bytes]) -> Iterator[StaticServer]:
    """Serve ``files`` (``/name`` -> bytes) until the block ends."""
    state = StaticServer(files=files)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            state.hits[path] += 1
            state.paths_seen.append(self.path)
            body = state.files.get(path)
            if state.mode == "error":
                status, body = 500, b"upstream is having a bad day"
            elif state.mode == "garbage":
                status, body = 200, b"<html>not json</html>"
            elif body is None:
                status, body = 404, b"not found"
            else:
                status = 200
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep test output quiet

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    # A short poll interval makes shutdown quick; the default 0.5 s adds up over many tests.
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def folder_files(folder: Path, prefix: str = "") -> dict[str, bytes]:
    """Every ``*.json`` in ``folder`` as server files under ``prefix``."""
    return {f"{prefix}/{p.name}": p.read_bytes() for p in sorted(folder.glob("*.json"))}
