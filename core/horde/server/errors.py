"""The horde's two error bodies: ``{"message", "rc"}`` for rule errors, ``{"message", "errors"}``
for schema errors, and the mapping from a wire-model validation error to the horde's ``rc``.

The wire models already check limits such as the LoRA count; the horde reports some of those with a
specific ``rc`` instead of the generic schema body, so this module turns the first into the second.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

VALIDATION_MESSAGE = "Input payload validation failed"


class HordeError(Exception):
    """A request broke one of the horde's rules: an HTTP status, a return code and a message."""

    def __init__(self, status: int, rc: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.rc = rc
        self.message = message

    def body(self) -> dict[str, str]:
        """The JSON body the horde answers with."""
        return {"message": self.message, "rc": self.rc}


class PayloadInvalid(Exception):
    """A body or parameter failed the schema: each field named with what is wrong with it."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors

    def body(self) -> dict[str, Any]:
        """The JSON body the horde answers with (no ``rc``, like flask-restx)."""
        return {"message": VALIDATION_MESSAGE, "errors": self.errors}


def _field(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "payload"


def _rule_for(error: Any) -> HordeError | None:
    loc = tuple(error["loc"])
    kind = error["type"]
    message = str(error.get("msg", ""))
    if loc == ("prompt",) and kind == "string_too_short":
        return HordeError(400, "MissingPrompt", "The prompt is empty; send some text in prompt.")
    if loc == ("params", "loras") and kind == "too_long":
        return HordeError(400, "TooManyLoras", "At most 5 LoRAs per request.")
    if loc == ("params", "tis") and kind == "too_long":
        return HordeError(400, "TooManyTIs", "At most 20 textual inversions per request.")
    if loc == ("params", "cfg_scale"):
        if "BadCFGDecimals" in message:
            return HordeError(400, "BadCFGDecimals", "cfg_scale takes at most 2 decimals.")
        if kind in ("greater_than_equal", "less_than_equal"):
            return HordeError(400, "BadCFGNumber", "cfg_scale must be between 0 and 100.")
    if loc[:2] == ("params", "loras") and loc[-1:] == ("is_version",) and kind == "value_error":
        return HordeError(400, "BadLoraVersion", "A LoRA with is_version needs a numeric name.")
    return None


def from_validation(exc: ValidationError, *, prefix: str = "") -> Exception:
    """The error to answer with for a failed wire-model validation.

    When every failure is one the horde reports with its own ``rc``, the first such error is
    returned; otherwise the schema body naming every failing field.
    """
    errors = exc.errors()
    rules = [rule for rule in map(_rule_for, errors) if rule is not None]
    if rules and len(rules) == len(errors):
        return rules[0]
    fields: dict[str, str] = {}
    for error in errors:
        key = _field(tuple(error["loc"]))
        fields[f"{prefix}{key}" if prefix else key] = str(error["msg"])
    return PayloadInvalid(fields)
