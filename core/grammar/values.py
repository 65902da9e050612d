"""Option values from text (or from typed structured input) to checked values.

One converter per ``commands.Kind``; ranges come from the command table. Numbers are ASCII only
(``int()`` would take ``"١٢"`` and ``float()`` would take ``"nan"``), and every failure is a
one-line ``UserError`` that names the option and says what it takes.
"""

from __future__ import annotations

import difflib
import math
import re
from typing import Any

from core.commands import MAX_RATIO, Kind, Option, command_names, find_command
from core.errors import UserError
from core.request import InjectTI, LoraRef, TIRef

_INT = re.compile(r"[+-]?\d+", re.ASCII)
_FLOAT = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)", re.ASCII)
_SIZE = re.compile(r"(\d{1,6})\s*[xX×*]\s*(\d{1,6})", re.ASCII)
_RATIO = re.compile(r"(\d{1,5})\s*[:/]\s*(\d{1,5})", re.ASCII)
_TRUE = frozenset({"1", "true", "yes", "on", "y"})
_FALSE = frozenset({"0", "false", "no", "off", "n"})
MAX_NAME = 255  # the horde's limit on LoRA and TI names
MAX_SEED = 255

Value = str | int | float | bool | tuple[int, int] | LoraRef | TIRef


def _shown(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _check_range(option: Option, label: str, value: float, what: str) -> None:
    low, high = option.minimum, option.maximum
    if (low is not None and value < low) or (high is not None and value > high):
        raise UserError(f"{label} takes {what} from {option.range_text}, not {_number(value)}")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def parse_int(option: Option, label: str, text: str) -> int:
    """A whole number within the option's range."""
    if not _INT.fullmatch(text.strip()):
        raise UserError(
            f"{label} takes a whole number from {option.range_text}, not {_shown(text)}"
        )
    value = int(text)
    _check_range(option, label, value, "a whole number")
    return value


def parse_float(option: Option, label: str, text: str) -> float:
    """A finite decimal number within the option's range."""
    if not _FLOAT.fullmatch(text.strip()):
        raise UserError(f"{label} takes a number from {option.range_text}, not {_shown(text)}")
    value = float(text)
    _check_range(option, label, value, "a number")
    return value


def parse_bool(label: str, text: str) -> bool:
    """``on``/``off``, ``yes``/``no``, ``true``/``false`` or ``1``/``0``."""
    word = text.strip().casefold()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise UserError(f"{label} takes on or off, not {_shown(text)}")


def parse_choice(option: Option, label: str, text: str) -> str:
    """One of the option's choices, any case; samplers may drop their ``k_`` prefix."""
    word = text.strip().casefold()
    by_key = {c.casefold(): c for c in option.choices}
    found = by_key.get(word) or by_key.get(f"k_{word}")
    if found is None:
        close = difflib.get_close_matches(word, list(by_key), n=3, cutoff=0.5)
        hint = f"closest: {', '.join(by_key[c] for c in close)}" if close else ""
        raise UserError(
            f"{label} takes one of {', '.join(option.choices)}, not {_shown(text)}", hint=hint
        )
    return found


def parse_size(option: Option, label: str, text: str) -> tuple[int, int]:
    """WIDTHxHEIGHT, each side within the option's range."""
    match = _SIZE.fullmatch(text.strip())
    if not match:
        raise UserError(f"{label} takes WIDTHxHEIGHT such as 1024x768, not {_shown(text)}")
    width, height = int(match[1]), int(match[2])
    for side in (width, height):
        _check_range(option, label, side, "sides")
    return width, height


def parse_ratio(label: str, text: str) -> tuple[int, int]:
    """W:H with positive whole numbers and no side more than ``MAX_RATIO`` times the other."""
    match = _RATIO.fullmatch(text.strip())
    if not match:
        raise UserError(f"{label} takes a ratio W:H such as 16:9, not {_shown(text)}")
    width, height = int(match[1]), int(match[2])
    if width < 1 or height < 1:
        raise UserError(f"{label} takes two whole numbers above 0, such as 16:9")
    if max(width, height) > MAX_RATIO * min(width, height):
        raise UserError(f"{label} takes ratios from 1:{MAX_RATIO} to {MAX_RATIO}:1, not {text}")
    return width, height


def _name_and_strength(option: Option, label: str, text: str) -> tuple[str, float]:
    """``NAME[:strength]``; a colon must be followed by a strength."""
    name, colon, tail = text.rpartition(":")
    if not colon:
        return text.strip(), 1.0
    if not _FLOAT.fullmatch(tail.strip()):
        raise UserError(
            f"{label} takes NAME:STRENGTH with a strength from {option.range_text}, "
            f"not {_shown(text)}"
        )
    strength = float(tail)
    _check_range(option, label, strength, "strengths")
    return name.strip(), strength


def _check_name(label: str, name: str, what: str) -> str:
    if not name:
        raise UserError(f"{label} needs {what}")
    if len(name) > MAX_NAME:
        raise UserError(f"{label}: names are at most {MAX_NAME} characters")
    return name


def parse_lora(option: Option, label: str, text: str) -> LoraRef:
    """``ID_OR_NAME[:strength]``, or ``v:VERSIONID[:strength]`` for one version of a LoRA."""
    body = text.strip()
    is_version = body[:2].casefold() == "v:"
    if is_version:
        body = body[2:]
    name, strength = _name_and_strength(option, label, body)
    _check_name(label, name, "a CivitAI id or a LoRA name, such as --lora 12345:0.8")
    if is_version and not (name.isascii() and name.isdigit()):
        raise UserError(f"{label} v:ID needs a numeric CivitAI version id, not {_shown(name)}")
    return LoraRef(name=name, strength=strength, is_version=is_version)


def parse_ti(option: Option, label: str, text: str) -> TIRef:
    """``ID[:strength]`` injected in the prompt, ``neg:ID[:strength]`` in the negative."""
    body = text.strip()
    inject: InjectTI = "prompt"
    if body[:4].casefold() == "neg:":
        inject, body = "negprompt", body[4:]
    name, strength = _name_and_strength(option, label, body)
    _check_name(label, name, "a CivitAI id, such as --ti 12345:0.8")
    return TIRef(name=name, strength=strength, inject=inject)


def parse_word(label: str, text: str, limit: int = MAX_SEED) -> str:
    """One non-empty word of at most ``limit`` characters."""
    word = text.strip()
    if not word:
        raise UserError(f"{label} needs a value")
    if len(word) > limit:
        raise UserError(f"{label} takes at most {limit} characters")
    return word


def parse_command_name(label: str, text: str) -> str:
    """A command name or alias (a leading ``/`` is fine), as the command's own name."""
    word = text.strip().lstrip("/!")
    found = find_command(word)
    if found is None:
        close = difflib.get_close_matches(word.casefold(), command_names(), n=3)
        hint = f"closest: {', '.join(close)}" if close else "see /help"
        raise UserError(f"{label}: no command {_shown(word)}", hint=hint)
    return found.name


def convert_text(option: Option, label: str, text: str) -> Value:
    """The value of ``option`` written as ``text``; ``label`` names it in errors.

    ``STYLE``, ``MODEL`` and ``TEXT`` values come back as stripped text: names are matched
    against the known ones by the parser, which knows where the words came from.
    """
    kind = option.kind
    if kind is Kind.INT:
        return parse_int(option, label, text)
    if kind is Kind.FLOAT:
        return parse_float(option, label, text)
    if kind is Kind.FLAG:
        return parse_bool(label, text)
    if kind is Kind.CHOICE:
        return parse_choice(option, label, text)
    if kind is Kind.SIZE:
        return parse_size(option, label, text)
    if kind is Kind.RATIO:
        return parse_ratio(label, text)
    if kind is Kind.LORA:
        return parse_lora(option, label, text)
    if kind is Kind.TI:
        return parse_ti(option, label, text)
    if kind is Kind.WORD:
        return parse_word(label, text)
    if kind is Kind.COMMAND:
        return parse_command_name(label, text)
    return " ".join(text.split())


def convert_typed(option: Option, label: str, value: Any) -> Value:
    """A structured value (already an int, float or bool, or text) checked like text is.

    Text goes through ``convert_text``, so ``"1024x768"`` and ``"16:9"`` work from a form too.
    """
    if isinstance(value, str):
        return convert_text(option, label, value)
    kind = option.kind
    if kind is Kind.FLAG and isinstance(value, bool):
        return value
    if isinstance(value, bool):
        raise UserError(f"{label} takes {_what(option)}, not on/off")
    if kind is Kind.INT and isinstance(value, int):
        _check_range(option, label, value, "a whole number")
        return value
    if kind is Kind.FLOAT and isinstance(value, int | float):
        if not math.isfinite(value):
            raise UserError(f"{label} takes a number from {option.range_text}")
        _check_range(option, label, value, "a number")
        return float(value)
    if kind is Kind.WORD and isinstance(value, int):
        return convert_text(option, label, str(value))
    if kind in (Kind.SIZE, Kind.RATIO) and isinstance(value, tuple | list) and len(value) == 2:
        sep = "x" if kind is Kind.SIZE else ":"
        return convert_text(option, label, f"{value[0]}{sep}{value[1]}")
    raise UserError(f"{label} takes {_what(option)}")


def _what(option: Option) -> str:
    return {
        Kind.INT: f"a whole number from {option.range_text}",
        Kind.FLOAT: f"a number from {option.range_text}",
        Kind.FLAG: "on or off",
        Kind.SIZE: "WIDTHxHEIGHT",
        Kind.RATIO: "a ratio W:H",
    }.get(option.kind, "text")
