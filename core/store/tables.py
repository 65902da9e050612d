"""The store's tables (SQLAlchemy Core): what the code reads and writes, checked against migrations.

The schema itself is created by the Alembic scripts in ``migrations/``; a test compares these tables
with the migrated database so the two never drift. Ids are UUID strings so rows can be referred to
from platform messages and from tables added later (prompt challenges will point at users and
generations by these ids).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator

VERSION_TABLE = "store_schema_version"

metadata = MetaData()


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware (SQLite keeps none)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("the store keeps timezone-aware datetimes only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime from the database, got {value!r}")
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# JSONB on PostgreSQL so later queries can look inside (challenge entries by prompt, say).
Json = JSON().with_variant(JSONB(), "postgresql")

users = Table(
    "users",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("created_at", UTCDateTime(), nullable=False),
    # The user's horde API key, sealed by SecretBox with the user id as context; never clear.
    Column("api_key_sealed", LargeBinary(), nullable=True),
    Column("api_key_set_at", UTCDateTime(), nullable=True),
)

identities = Table(
    "identities",
    metadata,
    Column("platform", String(32), primary_key=True),
    Column("platform_user_id", String(255), primary_key=True),
    Column(
        "user_id",
        String(36),
        ForeignKey("users.id", ondelete="CASCADE", name="fk_identities_user"),
        nullable=False,
    ),
    Column("display_name", String(255), nullable=False),
    Column("linked_at", UTCDateTime(), nullable=False),
    Index("ix_identities_user_id", "user_id"),
)

generations = Table(
    "generations",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("platform", String(32), nullable=False),
    Column("event_id", String(255), nullable=False),
    # Order within the event that asked for it (one command can ask for several).
    Column("position", Integer, nullable=False),
    Column(
        "user_id",
        String(36),
        ForeignKey("users.id", name="fk_generations_user"),
        nullable=False,
    ),
    Column("platform_user_id", String(255), nullable=False),
    Column("channel_id", String(255), nullable=False),
    Column("reply_target", Json, nullable=False),
    Column("spec", Json, nullable=False),
    Column("payload", Json, nullable=False),
    Column("state", String(16), nullable=False),
    Column("horde_id", String(64), nullable=True),
    Column("kudos", Float, nullable=True),
    Column("result", Json, nullable=True),
    Column("error", Text, nullable=True),
    Column("attempts", Integer, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("submitted_at", UTCDateTime(), nullable=True),
    Column("finished_at", UTCDateTime(), nullable=True),
    Column("delivered_at", UTCDateTime(), nullable=True),
    Column("delivered_message_id", String(255), nullable=True),
    UniqueConstraint("platform", "event_id", "position", name="uq_generations_event_position"),
    Index("ix_generations_state", "state"),
    Index("ix_generations_user_created", "user_id", "created_at"),
)

processed_events = Table(
    "processed_events",
    metadata,
    Column("platform", String(32), primary_key=True),
    Column("event_id", String(255), primary_key=True),
    Column("claimed_at", UTCDateTime(), nullable=False),
    Index("ix_processed_events_claimed_at", "claimed_at"),
)

cursors = Table(
    "cursors",
    metadata,
    Column("scope", String(64), primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

# The store's own facts about itself (the secret key check).
store_meta = Table(
    "store_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", LargeBinary(), nullable=False),
)
