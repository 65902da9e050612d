"""core.model_reference (being built)."""
