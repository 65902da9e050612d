"""Prompt challenges: challenges, entries and prize payouts.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _when() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "challenges",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("theme", sa.Text(), nullable=False),
        sa.Column("rules", _JSON, nullable=False),
        sa.Column("venues", _JSON, nullable=False),
        sa.Column("posts", _JSON, nullable=False),
        sa.Column("prizes", _JSON, nullable=False),
        sa.Column("sponsor", sa.String(255), nullable=False),
        sa.Column("entries_per_user", sa.Integer(), nullable=False),
        sa.Column("opens_at", _when(), nullable=False),
        sa.Column("entries_close_at", _when(), nullable=False),
        sa.Column("voting_close_at", _when(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("recurring_key", sa.String(255), nullable=True, unique=True),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("created_at", _when(), nullable=False),
        sa.Column("updated_at", _when(), nullable=False),
    )
    op.create_index("ix_challenges_state", "challenges", ["state"])
    op.create_table(
        "challenge_entries",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "challenge_id",
            sa.String(36),
            sa.ForeignKey(
                "challenges.id", ondelete="CASCADE", name="fk_challenge_entries_challenge"
            ),
            nullable=False,
        ),
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("platform", sa.String(32), nullable=False),
        sa.Column("platform_user_id", sa.String(255), nullable=False),
        sa.Column("display_name", sa.String(255), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("reply_target", _JSON, nullable=False),
        sa.Column("message_id", sa.String(255), nullable=True),
        sa.Column("image_path", sa.Text(), nullable=True),
        sa.Column("votes", sa.Integer(), nullable=True),
        sa.Column("created_at", _when(), nullable=False),
        sa.Column("posted_at", _when(), nullable=True),
    )
    op.create_index(
        "ix_challenge_entries_challenge_user", "challenge_entries", ["challenge_id", "user_id"]
    )
    op.create_table(
        "challenge_payouts",
        sa.Column(
            "challenge_id",
            sa.String(36),
            sa.ForeignKey(
                "challenges.id", ondelete="CASCADE", name="fk_challenge_payouts_challenge"
            ),
            primary_key=True,
        ),
        sa.Column("entry_id", sa.String(36), primary_key=True),
        sa.Column("place", sa.Integer(), nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(32), nullable=False),
        sa.Column("platform_user_id", sa.String(255), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("idempotency_key", sa.String(128), nullable=False),
        sa.Column("horde_username", sa.String(255), nullable=True),
        sa.Column("claim_until", _when(), nullable=True),
        sa.Column("created_at", _when(), nullable=False),
        sa.Column("paid_at", _when(), nullable=True),
        sa.UniqueConstraint("idempotency_key", name="uq_challenge_payouts_key"),
    )
    op.create_index(
        "ix_challenge_payouts_winner",
        "challenge_payouts",
        ["platform", "platform_user_id", "state"],
    )


def downgrade() -> None:
    op.drop_table("challenge_payouts")
    op.drop_table("challenge_entries")
    op.drop_table("challenges")
