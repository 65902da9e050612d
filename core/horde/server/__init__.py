"""The embedded, horde-compatible local horde (being built)."""
