"""Errors a user can cause, as values with a one-line message that says what to change.

Errors the program causes are ordinary exceptions: they are logged with context, never shown raw.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with what the user asked for: one line, safe to show, with a hint."""

    def __init__(self, message: str, *, hint: str = "") -> None:
        text = " ".join(message.split())
        if hint:
            text = f"{text} ({' '.join(hint.split())})"
        super().__init__(text)
        self.message = text

    def __str__(self) -> str:
        return self.message
