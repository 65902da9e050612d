"""The ``UNSET`` marker: tells "not given" from "given as empty", so precedence is explicit.

A value the user typed beats the style's, which beats the model reference's, then the default.
"""

from __future__ import annotations

from enum import Enum
from typing import Final, Literal, TypeVar


class _Unset(Enum):
    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Final = _Unset.UNSET
Unset = Literal[_Unset.UNSET]

T = TypeVar("T")


def is_set(value: T | Unset) -> bool:
    """Whether a value was given (possibly as something falsy)."""
    return value is not UNSET


def pick(*candidates: T | Unset, default: T) -> T:
    """The first candidate that was given, else ``default``; candidates are in precedence order."""
    for candidate in candidates:
        if candidate is not UNSET:
            return candidate
    return default
