"""The first schema: users and identities, generations, processed events, cursors, store meta.

Written out in full rather than taken from ``tables.py``: a migration is history and must not change
when the tables do.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _when() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("created_at", _when(), nullable=False),
        sa.Column("api_key_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("api_key_set_at", _when(), nullable=True),
    )
    op.create_table(
        "identities",
        sa.Column("platform", sa.String(32), primary_key=True),
        sa.Column("platform_user_id", sa.String(255), primary_key=True),
        sa.Column(
            "user_id",
            sa.String(36),
            sa.ForeignKey("users.id", ondelete="CASCADE", name="fk_identities_user"),
            nullable=False,
        ),
        sa.Column("display_name", sa.String(255), nullable=False),
        sa.Column("linked_at", _when(), nullable=False),
    )
    op.create_index("ix_identities_user_id", "identities", ["user_id"])
    op.create_table(
        "generations",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("platform", sa.String(32), nullable=False),
        sa.Column("event_id", sa.String(255), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column(
            "user_id",
            sa.String(36),
            sa.ForeignKey("users.id", name="fk_generations_user"),
            nullable=False,
        ),
        sa.Column("platform_user_id", sa.String(255), nullable=False),
        sa.Column("channel_id", sa.String(255), nullable=False),
        sa.Column("reply_target", _JSON, nullable=False),
        sa.Column("spec", _JSON, nullable=False),
        sa.Column("payload", _JSON, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("horde_id", sa.String(64), nullable=True),
        sa.Column("kudos", sa.Float(), nullable=True),
        sa.Column("result", _JSON, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", _when(), nullable=False),
        sa.Column("updated_at", _when(), nullable=False),
        sa.Column("submitted_at", _when(), nullable=True),
        sa.Column("finished_at", _when(), nullable=True),
        sa.Column("delivered_at", _when(), nullable=True),
        sa.Column("delivered_message_id", sa.String(255), nullable=True),
        sa.UniqueConstraint(
            "platform", "event_id", "position", name="uq_generations_event_position"
        ),
    )
    op.create_index("ix_generations_state", "generations", ["state"])
    op.create_index("ix_generations_user_created", "generations", ["user_id", "created_at"])
    op.create_table(
        "processed_events",
        sa.Column("platform", sa.String(32), primary_key=True),
        sa.Column("event_id", sa.String(255), primary_key=True),
        sa.Column("claimed_at", _when(), nullable=False),
    )
    op.create_index("ix_processed_events_claimed_at", "processed_events", ["claimed_at"])
    op.create_table(
        "cursors",
        sa.Column("scope", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", _when(), nullable=False),
    )
    op.create_table(
        "store_meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.LargeBinary(), nullable=False),
    )


def downgrade() -> None:
    for table in ("store_meta", "cursors", "processed_events", "generations", "identities"):
        op.drop_table(table)
    op.drop_table("users")
