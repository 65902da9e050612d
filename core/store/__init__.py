"""Persistence: users with linked identities, encrypted horde API keys, generations, event claims.

SQLAlchemy 2 (async) on SQLite (aiosqlite) by default or PostgreSQL (asyncpg) by URL; the schema is
kept by Alembic migrations that run when a ``Store`` opens. Values that leave the package are frozen
dataclasses. Start with ``Store.open(url, secret_box=SecretBox.from_env_or_file(path))``.
"""

# Registers the challenge tables on the shared metadata (migrations compare against it).
from core.store import challenge_tables as challenge_tables
from core.store.generations import Generation, GenerationState, NewGeneration
from core.store.secret_box import SecretBox, SecretKeyMismatch
from core.store.store import Store
from core.store.users import Identity, User

__all__ = [
    "Generation",
    "GenerationState",
    "Identity",
    "NewGeneration",
    "SecretBox",
    "SecretKeyMismatch",
    "Store",
    "User",
]
