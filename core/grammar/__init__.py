"""The command grammar: text and structured input turned into one request (being built)."""
