"""core.policy (being built)."""
