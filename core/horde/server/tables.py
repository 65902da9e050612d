"""The embedded horde's database tables (SQLAlchemy Core), portable beyond SQLite.

The tables are the durable copy; the running horde answers from memory and writes here before it
answers anything that changes state, so a killed process loses nothing it acknowledged.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
)

metadata = MetaData()

meta = Table(
    "horde_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", String(255), nullable=False),
)

users = Table(
    "horde_users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False),
    # sha256 of the API key: the clear key is shown once and never stored.
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("kudos", Float, nullable=False),
    Column("trusted", Boolean, nullable=False),
    Column("created", Float, nullable=False),
)

workers = Table(
    "horde_workers",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("user_id", Integer, nullable=False),
    Column("created", Float, nullable=False),
    Column("last_pop", Float, nullable=False),
    Column("kudos_earned", Float, nullable=False),
    Column("requests_fulfilled", Integer, nullable=False),
    # The worker's last pop body (models, limits, allow_* flags), as sent.
    Column("settings", JSON, nullable=False),
)

requests = Table(
    "horde_requests",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("user_id", Integer, nullable=False),
    # The validated generate/async body, effective defaults filled in.
    Column("body", JSON, nullable=False),
    Column("seeds", JSON, nullable=False),
    Column("created", Float, nullable=False),
    Column("expiry", Float, nullable=False, index=True),
    Column("priority", Float, nullable=False),
    Column("kudos_per_image", Float, nullable=False),
    Column("consumed", Float, nullable=False),
    Column("cancelled", Boolean, nullable=False),
    Column("faulted", Boolean, nullable=False),
)

jobs = Table(
    "horde_jobs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("request_id", String(36), nullable=False, index=True),
    Column("idx", Integer, nullable=False),
    Column("worker_id", String(36), nullable=False),
    Column("model", String(255), nullable=False),
    Column("state", String(16), nullable=False),
    Column("popped", Float, nullable=False),
    Column("deadline", Float, nullable=False),
    Column("seed", String(32), nullable=False),
    Column("finished", Float, nullable=True),
    Column("censored", Boolean, nullable=False),
    Column("gen_metadata", JSON, nullable=False),
    Column("reward", Float, nullable=False),
)

transfers = Table(
    "horde_idempotency",
    metadata,
    Column("user_id", Integer, primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("body_hash", String(64), nullable=False),
    Column("transferred", Float, nullable=False),
    Column("created", Float, nullable=False),
)
