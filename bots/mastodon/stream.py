"""The user stream (SSE) kept alive: connect, watch its heartbeat, reconnect with backoff.

Mastodon.py reads the stream in a thread of its own and calls a ``StreamListener`` there; the
listener hands each notification to the event loop with ``call_soon_threadsafe`` and notes the
time of every heartbeat. The supervisor here, on the loop, judges the stream by those times and
replaces a dead or silent connection, waiting longer after each failure. While it is not
healthy the adapter polls instead, so no mention waits on the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from mastodon.streaming import StreamListener

from core.retrying import Backoff

log = logging.getLogger(__name__)

CHECK_EVERY_S = 0.25
# A new connection that shows no sign of life within this long counts as failed.
CONNECT_TIMEOUT_S = 15.0


class _Listener(StreamListener):
    """Runs in Mastodon.py's stream thread; touches only thread-safe state."""

    def __init__(self, stream: MentionStream) -> None:
        super().__init__()
        self._stream = stream

    def on_notification(self, notification: Mapping[str, Any]) -> None:
        self._stream.received(notification)

    def handle_heartbeat(self) -> None:
        self._stream.touch()

    def on_any_event(self, name: str, data: Any = None, for_stream: str | None = None) -> None:
        self._stream.touch()

    def on_unknown_event(self, name: str, unknown_event: Any = None) -> None:
        """New event kinds of newer servers are not ours to read."""

    def handle_stream(self, response: Any) -> None:
        # A dropped or garbled stream must end this thread quietly: the supervisor notices and
        # reconnects, whereas an exception would die in a thread nobody joins.
        try:
            super().handle_stream(response)  # type: ignore[no-untyped-call]
        except Exception as exc:
            log.info("mastodon stream ended: %s", exc)


class MentionStream:
    """One live ``stream_user`` connection at a time, judged healthy by its heartbeats."""

    def __init__(
        self,
        client: Any,
        *,
        loop: asyncio.AbstractEventLoop,
        on_notification: Callable[[Mapping[str, Any]], None],
        stale_s: float,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._loop = loop
        self._on_notification = on_notification
        self._stale_s = stale_s
        self._backoff = backoff or Backoff(first_s=1.0, max_s=60.0)
        self._clock = clock
        self._listener = _Listener(self)
        self._handle: Any = None
        self._connected_at = 0.0
        # Written by the stream thread, read on the loop; a float assignment is atomic.
        self._last_activity: float | None = None
        self._failures = 0
        self._task: asyncio.Task[None] | None = None
        self.connections = 0

    # ---- called from the stream thread ---------------------------------------------------

    def touch(self) -> None:
        """Any sign of life: a heartbeat or an event."""
        self._last_activity = self._clock()

    def received(self, notification: Mapping[str, Any]) -> None:
        """A notification arrived: pass it to the loop."""
        self.touch()
        with contextlib.suppress(RuntimeError):  # the loop is closing; polling catches it up
            self._loop.call_soon_threadsafe(self._on_notification, notification)

    # ---- on the loop -----------------------------------------------------------------------

    @property
    def healthy(self) -> bool:
        """Connected, and heard from within ``stale_s``."""
        handle = self._handle
        if handle is None or not handle.is_receiving() or self._last_activity is None:
            return False
        return self._clock() - self._last_activity < self._stale_s

    def start(self) -> None:
        """Start the supervisor task."""
        if self._task is None:
            self._task = asyncio.create_task(self._supervise(), name="mastodon-stream")

    async def stop(self) -> None:
        """Stop the supervisor and close the connection; idempotent."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._close()

    async def _supervise(self) -> None:
        while True:
            if self._needs_new_connection():
                await self._close()
                if self._failures:
                    await asyncio.sleep(self._backoff.delay(self._failures - 1))
                await self._connect()
            elif self.healthy:
                self._failures = 0
            await asyncio.sleep(CHECK_EVERY_S)

    def _needs_new_connection(self) -> bool:
        handle = self._handle
        if handle is None or not handle.is_alive():
            return True
        now = self._clock()
        if self._last_activity is None or self._last_activity < self._connected_at:
            return now - self._connected_at > min(CONNECT_TIMEOUT_S, self._stale_s)
        return now - self._last_activity > self._stale_s

    async def _connect(self) -> None:
        self._failures += 1
        self._connected_at = self._clock()
        self._last_activity = None
        try:
            self._handle = await asyncio.to_thread(
                self._client.stream_user, self._listener, run_async=True, reconnect_async=False
            )
            self.connections += 1
        except Exception as exc:
            log.warning("mastodon stream could not start: %s", exc)
            self._handle = None

    async def _close(self) -> None:
        handle, self._handle = self._handle, None
        if handle is None:
            return
        with contextlib.suppress(Exception):
            handle.close()
        await asyncio.to_thread(handle.join, 5.0)
