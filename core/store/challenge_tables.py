"""The prompt-challenge tables: challenges, their entries and their prize payouts.

Kept apart from ``tables.py`` (same ``metadata``, so the migration drift test sees them) because
challenges are a feature on top of the store, not part of its core. The rows are what makes a
challenge restart-safe: its phase, every post it made, each entry's message and each prize's
payout state live here, so a step that already happened is never done twice.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from core.store.tables import Json, UTCDateTime, metadata

challenges = Table(
    "challenges",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("theme", Text, nullable=False),
    # {"style", "category", "model", "words": [...]}: what every entry must use.
    Column("rules", Json, nullable=False),
    # [{"platform", "channel"}]: where it is announced and where entries may come from.
    Column("venues", Json, nullable=False),
    # {"<phase>:<platform>:<channel>": message id}: every post made, so none is made twice.
    Column("posts", Json, nullable=False),
    Column("prizes", Json, nullable=False),
    # "bot" or "platform:user_id" of the person whose horde account pays.
    Column("sponsor", String(255), nullable=False),
    Column("entries_per_user", Integer, nullable=False),
    Column("opens_at", UTCDateTime(), nullable=False),
    Column("entries_close_at", UTCDateTime(), nullable=False),
    Column("voting_close_at", UTCDateTime(), nullable=False),
    Column("state", String(16), nullable=False),
    # Set for challenges made from a recurring spec: one per occurrence, whatever restarts.
    Column("recurring_key", String(255), nullable=True, unique=True),
    Column("created_by", String(255), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Index("ix_challenges_state", "state"),
)

challenge_entries = Table(
    "challenge_entries",
    metadata,
    # The generation id: one generation is one entry.
    Column("id", String(36), primary_key=True),
    Column(
        "challenge_id",
        String(36),
        ForeignKey("challenges.id", ondelete="CASCADE", name="fk_challenge_entries_challenge"),
        nullable=False,
    ),
    Column("user_id", String(36), nullable=False),
    Column("platform", String(32), nullable=False),
    Column("platform_user_id", String(255), nullable=False),
    Column("display_name", String(255), nullable=False),
    Column("prompt", Text, nullable=False),
    Column("reply_target", Json, nullable=False),
    Column("message_id", String(255), nullable=True),
    Column("image_path", Text, nullable=True),
    Column("votes", Integer, nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("posted_at", UTCDateTime(), nullable=True),
    Index("ix_challenge_entries_challenge_user", "challenge_id", "user_id"),
)

challenge_payouts = Table(
    "challenge_payouts",
    metadata,
    Column(
        "challenge_id",
        String(36),
        ForeignKey("challenges.id", ondelete="CASCADE", name="fk_challenge_payouts_challenge"),
        primary_key=True,
    ),
    Column("entry_id", String(36), primary_key=True),
    Column("place", Integer, nullable=False),
    Column("amount", Integer, nullable=False),
    Column("platform", String(32), nullable=False),
    Column("platform_user_id", String(255), nullable=False),
    # due → paid, or due → unclaimed (no linked key) → paid at /login, or → expired.
    Column("state", String(16), nullable=False),
    # Sent with the transfer: the same key on every retry and restart moves kudos once.
    Column("idempotency_key", String(128), nullable=False),
    Column("horde_username", String(255), nullable=True),
    Column("claim_until", UTCDateTime(), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("paid_at", UTCDateTime(), nullable=True),
    UniqueConstraint("idempotency_key", name="uq_challenge_payouts_key"),
    Index("ix_challenge_payouts_winner", "platform", "platform_user_id", "state"),
)
