"""Durable writes with group commit: everything queued while the loop is busy shares one commit.

The horde changes its in-memory state on the event loop and hands the matching SQL to a journal;
the handler awaits the commit before it answers, so an acknowledged change survives ``kill -9``.

Two journals, one interface:

- ``LoopJournal`` (SQLite) commits on the event loop itself, once per loop iteration, for every
  write queued during it. House style puts blocking libraries in threads; here measurement says
  otherwise: an SQLite commit in WAL mode with ``synchronous=NORMAL`` does no fsync and takes a
  fraction of a millisecond, while handing it to a thread cost more CPU than the write and added
  up to a GIL switch interval (5 ms) of latency to every pop and submit. The slow part of SQLite,
  the WAL checkpoint (it fsyncs), is moved off the loop: ``checkpoint()`` runs in a thread from
  the maintenance sweep.
- ``ThreadJournal`` (any other database, e.g. PostgreSQL, where a commit is a network round
  trip) runs the same batches in one writer thread.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection, Engine, Insert, text

T = TypeVar("T")
Op = Callable[[Connection], Any]

_log = logging.getLogger(__name__)
_STOP = object()
_RAW = "horde_raw_writer"
CHECKPOINT_EVERY_COMMITS = 1000
Rows = dict[str, Any] | list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Write:
    """One prebuilt DML statement and its parameters (a dict, or a list of rows).

    Through SQLAlchemy a small UPDATE costs several times what SQLite spends on it; on the
    ``LoopJournal``'s connection a ``Write`` runs the statement's compiled SQL straight on the
    driver instead (compiled once per statement, with SQLAlchemy's own type conversions).
    """

    statement: Any
    params: Rows

    def __call__(self, conn: Connection) -> None:
        raw = conn.info.get(_RAW)
        if raw is None:
            conn.execute(self.statement, self.params)
        else:
            raw.execute(self.statement, self.params)


class _RawWriter:
    """Runs ``Write`` statements on the DBAPI connection under SQLAlchemy's transaction."""

    def __init__(self, conn: Connection) -> None:
        self._driver = conn.connection.dbapi_connection
        self._dialect = conn.dialect
        self._plans: dict[tuple[int, tuple[str, ...]], tuple[str, list[Any]]] = {}

    def execute(self, statement: Any, params: Rows) -> None:
        rows = params if isinstance(params, list) else [params]
        if not rows or self._driver is None:
            return
        sql, binds = self._plan(statement, tuple(rows[0]))
        values = [
            tuple(row[key] if convert is None else convert(row[key]) for key, convert in binds)
            for row in rows
        ]
        if len(values) == 1:
            self._driver.execute(sql, values[0])
        else:
            self._driver.executemany(sql, values)

    def _plan(self, statement: Any, keys: tuple[str, ...]) -> tuple[str, list[Any]]:
        plan = self._plans.get((id(statement), keys))
        if plan is None:
            # Only a bare INSERT takes its columns from the rows; UPDATEs name theirs.
            columns = list(keys) if isinstance(statement, Insert) else None
            compiled = statement.compile(dialect=self._dialect, column_keys=columns)
            binds = []
            for name in compiled.positiontup or []:
                bind = compiled.binds[name]
                convert = bind.type.dialect_impl(self._dialect).bind_processor(self._dialect)
                binds.append((bind.key, convert))
            plan = (compiled.string, binds)
            self._plans[(id(statement), keys)] = plan
        return plan


class Journal(Protocol):
    """Where the horde sends its writes; ``run`` returns once the write is committed."""

    async def run(self, op: Callable[[Connection], T]) -> T:
        """Run one operation in a transaction (shared with others queued meanwhile)."""
        ...

    async def checkpoint(self) -> None:
        """Housekeeping the database needs now and then (SQLite: fold the WAL back)."""
        ...

    def close(self) -> None:
        """Finish what is queued and release the connection; blocking."""
        ...


async def write(journal: Journal, *ops: Op) -> None:
    """Run several operations in one transaction and wait until they are committed."""

    def together(conn: Connection) -> None:
        for op in ops:
            op(conn)

    await journal.run(together)


def _commit(conn: Connection, batch: list[tuple[Op, Any]], settle: Callable[..., None]) -> None:
    """Run a batch in one transaction; if it fails, each operation on its own."""
    try:
        with conn.begin():
            results = [op(conn) for op, _ in batch]
    except Exception:
        for op, future in batch:
            try:
                with conn.begin():
                    result = op(conn)
            except Exception as exc:
                _log.exception("database write failed")
                settle(future, error=exc)
            else:
                settle(future, result=result)
        return
    for (_, future), result in zip(batch, results, strict=True):
        settle(future, result=result)


class LoopJournal:
    """Group commit on the event loop: one short SQLite transaction per loop iteration."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._conn = engine.connect()
        # Checkpoints fsync; they run from checkpoint() in a thread, never inside a commit.
        self._conn.exec_driver_sql("PRAGMA wal_autocheckpoint=0")
        self._conn.commit()  # SQLAlchemy began a transaction for the pragma
        self._conn.info[_RAW] = _RawWriter(self._conn)
        self._pending: list[tuple[Op, asyncio.Future[Any]]] = []
        self._commits = 0
        self._checkpointing: asyncio.Future[None] | None = None

    async def run(self, op: Callable[[Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._flush)
        self._pending.append((op, future))
        return await future

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        if not batch:
            return
        _commit(self._conn, batch, self._settle)
        self._commits += 1
        # Keep the WAL short under load: fold it back every so many commits, off the loop.
        if self._commits >= CHECKPOINT_EVERY_COMMITS and self._checkpointing is None:
            self._commits = 0
            self._checkpointing = asyncio.get_running_loop().run_in_executor(None, self._checkpoint)
            self._checkpointing.add_done_callback(self._checkpointed)

    def _checkpointed(self, done: asyncio.Future[None]) -> None:
        self._checkpointing = None
        if not done.cancelled() and done.exception() is not None:
            _log.error("WAL checkpoint failed", exc_info=done.exception())

    @staticmethod
    def _settle(future: asyncio.Future[Any], *, result: Any = None, error: Any = None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    async def checkpoint(self) -> None:
        if self._checkpointing is not None:
            await asyncio.shield(self._checkpointing)
            return
        self._commits = 0
        await asyncio.to_thread(self._checkpoint)

    def _checkpoint(self) -> None:
        with self._engine.connect() as conn:
            conn.execute(text("PRAGMA wal_checkpoint(PASSIVE)"))

    def close(self) -> None:
        if self._pending:
            self._flush()
        self._conn.info.pop(_RAW, None)
        self._conn.close()


class ThreadJournal:
    """Group commit in one writer thread, in order, for databases reached over the network."""

    def __init__(self, engine: Engine, *, max_batch: int = 256) -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="horde-journal", daemon=True)
        self._thread.start()

    async def run(self, op: Callable[[Connection], T]) -> T:
        future: Future[T] = Future()
        self._queue.put((op, future))
        return await asyncio.wrap_future(future)

    async def checkpoint(self) -> None:
        return None

    def close(self) -> None:
        self._queue.put(_STOP)
        self._thread.join()

    def _loop(self) -> None:
        with self._engine.connect() as conn:
            while True:
                item = self._queue.get()
                if item is _STOP:
                    return
                batch = [item]
                stop = False
                while len(batch) < self._max_batch:
                    try:
                        extra = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if extra is _STOP:
                        stop = True
                        break
                    batch.append(extra)
                live = [(op, fut) for op, fut in batch if fut.set_running_or_notify_cancel()]
                _commit(conn, live, self._settle)
                if stop:
                    return

    @staticmethod
    def _settle(future: Future[Any], *, result: Any = None, error: Any = None) -> None:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)


def open_journal(engine: Engine) -> Journal:
    """The journal that suits the database behind ``engine``."""
    if engine.dialect.name == "sqlite":
        return LoopJournal(engine)
    return ThreadJournal(engine)
