"""Helpers for tests only."""
