"""Persistence: users, identities, encrypted keys, generations, processed events (being built)."""
