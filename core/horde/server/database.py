"""Opening the horde's database: the engine (SQLite in WAL mode), the schema, and loading it back.

SQLite runs with ``journal_mode=WAL`` and ``synchronous=NORMAL``: a committed transaction survives
the process being killed (``kill -9``), though not a power cut, and commits need no fsync, so the
horde can afford to commit before every answer.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, insert, select
from sqlalchemy.pool import StaticPool

from core.horde.server import tables
from core.horde.server.records import HordeRequest, Job, User, Worker, anonymous_user, key_hash
from core.horde.server.settings import HordeSettings
from core.horde.wire import GenerationInput, PopInput

MAX_NAME = 100


def make_engine(settings: HordeSettings) -> Engine:
    """An engine for the settings' URL, with the schema created."""
    db_path = settings.sqlite_path()
    if db_path is not None:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(settings.db_url)
    elif settings.db_url.startswith("sqlite"):
        # An in-memory database exists once per connection: share one across threads.
        engine = create_engine(
            settings.db_url,
            poolclass=StaticPool,
            connect_args={"check_same_thread": False},
        )
    else:
        engine = create_engine(settings.db_url, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    tables.metadata.create_all(engine)
    return engine


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def new_api_key() -> str:
    """A fresh random API key (22 URL-safe characters, like the horde's)."""
    return secrets.token_urlsafe(16)


def ensure_anonymous(conn: Connection, now: float) -> None:
    """Create the anonymous account (id 0) once."""
    if conn.execute(select(tables.users.c.id).where(tables.users.c.id == 0)).first() is None:
        anon = anonymous_user(now)
        conn.execute(
            insert(tables.users).values(
                id=0,
                name=anon.name,
                key_hash=anon.key_hash,
                kudos=0.0,
                trusted=False,
                created=now,
            )
        )


def check_user_name(name: str) -> str:
    """A user name as the horde stores it; raises ValueError with what to change."""
    cleaned = name.strip()
    if not cleaned or len(cleaned) > MAX_NAME or "#" in cleaned:
        raise ValueError(f"user name must be 1 to {MAX_NAME} characters without '#'")
    return cleaned


def insert_user(
    conn: Connection, name: str, kudos: float, trusted: bool, now: float
) -> tuple[User, str]:
    """Add an account and return it with its clear API key (shown once, stored hashed)."""
    key = new_api_key()
    hashed = key_hash(key)
    result = conn.execute(
        insert(tables.users).values(
            name=name, key_hash=hashed, kudos=kudos, trusted=trusted, created=now
        )
    )
    primary_key = result.inserted_primary_key
    if primary_key is None:
        raise RuntimeError("the database returned no id for the new user")
    user_id = int(primary_key[0])
    return User(user_id, name, hashed, kudos, trusted, now), key


def add_user(
    db_url: str, name: str, *, kudos: float = 0.0, trusted: bool = False
) -> tuple[User, str]:
    """Add an account straight to a horde database (a running horde finds it on first use)."""
    cleaned = check_user_name(name)
    engine = make_engine(HordeSettings(db_url=db_url))
    try:
        with engine.begin() as conn:
            now = time.time()
            ensure_anonymous(conn, now)
            return insert_user(conn, cleaned, kudos, trusted, now)
    finally:
        engine.dispose()


def user_from_row(row: Any) -> User:
    """A ``User`` from a row of ``horde_users``."""
    return User(row.id, row.name, row.key_hash, row.kudos, row.trusted, row.created)


@dataclass(slots=True)
class Snapshot:
    """Everything the horde keeps in memory, as loaded at start."""

    secret: bytes
    users: list[User]
    workers: list[Worker]
    requests: list[HordeRequest]
    # (user id, Idempotency-Key) -> (hash of the transfer body, kudos transferred, when)
    transfers: dict[tuple[int, str], tuple[str, float, float]]


def load(conn: Connection, now: float) -> Snapshot:
    """Read the horde's state back (after a restart or a crash)."""
    ensure_anonymous(conn, now)
    secret_row = conn.execute(
        select(tables.meta.c.value).where(tables.meta.c.key == "link_secret")
    ).first()
    if secret_row is None:
        secret_hex = secrets.token_hex(32)
        conn.execute(insert(tables.meta).values(key="link_secret", value=secret_hex))
    else:
        secret_hex = secret_row.value
    users = [user_from_row(row) for row in conn.execute(select(tables.users))]
    workers = [
        Worker(
            id=row.id,
            name=row.name,
            user_id=row.user_id,
            created=row.created,
            last_pop=row.last_pop,
            kudos_earned=row.kudos_earned,
            requests_fulfilled=row.requests_fulfilled,
            settings=PopInput.model_validate(row.settings),
            saved_pop=row.last_pop,
        )
        for row in conn.execute(select(tables.workers))
    ]
    requests: dict[str, HordeRequest] = {}
    for row in conn.execute(select(tables.requests).order_by(tables.requests.c.created)):
        requests[row.id] = HordeRequest(
            id=row.id,
            user_id=row.user_id,
            input=GenerationInput.model_validate(row.body),
            seeds=list(row.seeds),
            created=row.created,
            expiry=row.expiry,
            priority=row.priority,
            kudos_per_image=row.kudos_per_image,
            consumed=row.consumed,
            cancelled=row.cancelled,
            faulted=row.faulted,
        )
    for row in conn.execute(select(tables.jobs).order_by(tables.jobs.c.popped)):
        owner = requests.get(row.request_id)
        if owner is None:
            continue
        owner.jobs.append(
            Job(
                id=row.id,
                request_id=row.request_id,
                idx=row.idx,
                worker_id=row.worker_id,
                model=row.model,
                # A submit cut short by the crash never finished: the job is still out.
                state="processing" if row.state == "finishing" else row.state,
                popped=row.popped,
                deadline=row.deadline,
                seed=row.seed,
                finished=row.finished,
                censored=row.censored,
                gen_metadata=list(row.gen_metadata),
                reward=row.reward,
            )
        )
    transfers = {
        (row.user_id, row.key): (row.body_hash, row.transferred, row.created)
        for row in conn.execute(select(tables.transfers))
    }
    return Snapshot(bytes.fromhex(secret_hex), users, workers, list(requests.values()), transfers)
