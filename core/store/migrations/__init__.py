"""Alembic migration scripts for the store (run by ``core.store.migrate``, not imported)."""
