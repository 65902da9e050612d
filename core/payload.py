"""core.payload (being built)."""
