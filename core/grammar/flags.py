"""Walking a command's words: flags and their values out, everything else kept in order.

No argparse and no shlex: both raise on chat text (an unbalanced quote, ``-1`` after a flag)
or exit the process. The rules here are small and forgiving:

* a word ``--name`` (or ``--name=value``) is a flag; long flags ignore case, so a phone's
  capitalisation does no harm, and ``—name`` / ``–name`` (the dashes phones put in for ``--``)
  count when ``name`` is a known flag, and are plain text otherwise;
* ``--no-NAME`` turns an on/off option off, and ``--no-TEXT`` for any other word means
  ``--no TEXT`` (what to avoid);
* single-word values take the next word; text, style and model values take the words up to the
  next flag, ``###`` or ``style:``; style and model names are matched longest-first against the
  known names and the words after the name go back to the prompt;
* a value may be put in double quotes to hold spaces; a quote that is never closed is text;
* an unknown ``--word`` is an error naming the closest flags.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from types import MappingProxyType

from core.commands import COMMANDS, Command, Kind, Option
from core.errors import UserError
from core.grammar.names import NameIndex
from core.grammar.values import Value, convert_text

_LONG = re.compile(r"(?:--|—|–)([A-Za-z][A-Za-z0-9_-]*)(?:=(.*))?", re.DOTALL)
_SHORT = re.compile(r"-([A-Za-z])(?:=(.*))?", re.DOTALL)
# Double quotes as keyboards and phones type them; single quotes are apostrophes in names.
_QUOTES = frozenset('"“«„')
_CLOSERS = frozenset('"”»“')
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """The names the grammar matches longest-first; ``None`` takes a value's words as they are."""

    styles: NameIndex | None = None
    models: NameIndex | None = None


EMPTY_VOCABULARY = Vocabulary()


@dataclass(frozen=True, slots=True)
class FlagSpelling:
    """What a text flag stands for: an option, and whether it is the ``--no-`` form."""

    option: Option
    negated: bool = False


@dataclass(slots=True)
class Walked:
    """The result of walking one command's words (a working value, not shared)."""

    free: list[str] = field(default_factory=list)
    values: dict[str, Value] = field(default_factory=dict)
    repeated: dict[str, list[Value]] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)


def clean(text: str) -> str:
    """``text`` with control characters (NUL included: the horde rejects it) made spaces."""
    return _CONTROL.sub(" ", text)


@cache
def flag_table(command_name: str) -> Mapping[str, FlagSpelling]:
    """Every text spelling of a command's flags, case-folded, to what it stands for.

    ``--clip-skip`` may also be written ``--clip_skip``; on/off options get ``--no-NAME``.
    """
    command = COMMANDS[command_name]
    table: dict[str, FlagSpelling] = {}

    def add(spelling: str, entry: FlagSpelling) -> None:
        spelling = spelling.casefold()
        table[spelling] = entry
        if spelling.startswith("--"):
            table["--" + spelling[2:].replace("-", "_")] = entry

    for option in command.options:
        for spelling in option.flags:
            add(spelling, FlagSpelling(option))
        if option.kind is Kind.FLAG and not option.positional:
            add("--no-" + option.name.replace("_", "-"), FlagSpelling(option, negated=True))
    return MappingProxyType(table)


@dataclass(frozen=True, slots=True)
class _Hit:
    spelling: FlagSpelling
    inline: str | None  # the value after "=", or after "--no-" for "--no-TEXT"
    label: str  # how to name the flag in errors


def _looks_like_flag(word: str) -> bool:
    return word.startswith("--") and _LONG.fullmatch(word) is not None


def _known_flag(word: str, table: Mapping[str, FlagSpelling]) -> _Hit | None:
    long = _LONG.fullmatch(word)
    if long is not None:
        spelled, inline = "--" + long[1].casefold(), long[2]
    else:
        short = _SHORT.fullmatch(word)
        if short is None:
            return None
        spelled, inline = "-" + short[1].casefold(), short[2]
    found = table.get(spelled)
    if found is not None:
        return _Hit(found, inline, spelled)
    if long is not None and word.startswith("--no-") and len(spelled) > len("--no-"):
        # "--no-text": the user means "--no text" (what to avoid), not an unknown flag.
        negative = table.get("--no")
        if negative is not None and negative.option.kind is Kind.TEXT:
            rest = long[1][3:]
            return _Hit(negative, rest if inline is None else f"{rest}={inline}", "--no")
    return None


def _is_stop(word: str, table: Mapping[str, FlagSpelling]) -> bool:
    """Whether a multi-word value ends before ``word``."""
    if word.startswith("###") or word.casefold().startswith("style:"):
        return True
    return _looks_like_flag(word) or _known_flag(word, table) is not None


def _unknown_flag(word: str, command: Command, table: Mapping[str, FlagSpelling]) -> UserError:
    name = word.split("=", 1)[0]
    spellings = sorted(k for k in table if "_" not in k)  # not the --clip_skip twins
    close = difflib.get_close_matches(name.casefold(), spellings, n=3, cutoff=0.5)
    hint = f"closest: {', '.join(close)}" if close else f"see /help {command.name}"
    return UserError(f"unknown option {name} for /{command.name}", hint=hint)


def _quoted(words: list[str], start: int) -> tuple[str, int] | None:
    """The text inside a quote that opens ``words[start]``, and the index after its close."""
    first = words[start]
    if first[:1] not in _QUOTES:
        return None
    if len(first) > 1 and first[-1] in _CLOSERS:
        return first[1:-1].strip(), start + 1
    for end in range(start + 1, len(words)):
        if words[end][-1:] in _CLOSERS:
            inner = " ".join([first[1:], *words[start + 1 : end + 1]])[:-1]
            return inner.strip(), end + 1
    return None


def _resolve_name(
    option: Option, words: list[str], index: NameIndex | None, quoted: bool
) -> tuple[str, list[str]]:
    """A style or model name from ``words`` and the words left over after it."""
    if index is None:
        return " ".join(words), []
    if quoted:
        found = index.get(" ".join(words))
        if found is not None:
            return found, []
    else:
        hit = index.match_prefix(words)
        if hit is not None:
            name, count = hit
            return name, words[count:]
    what = "style or category" if option.kind is Kind.STYLE else "model"
    close = index.closest(" ".join(words))
    listing = "/styles" if option.kind is Kind.STYLE else "/models"
    hint = f"closest: {', '.join(close)}" if close else f"see {listing}"
    shown = " ".join(words)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    raise UserError(f"unknown {what} {shown!r}", hint=hint)


def resolve_name(
    option: Option, label: str, text: str, vocabulary: Vocabulary, *, exact: bool
) -> tuple[str, list[str]]:
    """A style or model name at the start of ``text``, and the words after it.

    ``exact`` asks for the whole text to be the name (a form field, a quoted value).
    """
    index = vocabulary.styles if option.kind is Kind.STYLE else vocabulary.models
    words = text.split()
    if not words:
        raise UserError(f"{label} needs a name")
    return _resolve_name(option, words, index, exact)


def store_value(walked: Walked, option: Option, label: str, value: Value) -> None:
    """Record ``value`` for ``option``; a second value for a single option is an error."""
    if option.repeatable:
        walked.repeated.setdefault(option.name, []).append(value)
        return
    if option.name in walked.values:
        first = walked.labels[option.name]
        again = "" if first == label else f" (as {first} and {label})"
        raise UserError(f"{label} given twice{again}; give it once")
    walked.values[option.name] = value
    walked.labels[option.name] = label


def walk(command: Command, text: str, vocabulary: Vocabulary) -> Walked:
    """Split ``text`` into ``command``'s flag values and the remaining words, in order."""
    table = flag_table(command.name)
    words = clean(text).split()
    walked = Walked()
    i = 0
    while i < len(words):
        word = words[i]
        hit = _known_flag(word, table)
        if hit is None:
            if _looks_like_flag(word):
                raise _unknown_flag(word, command, table)
            walked.free.append(word)
            i += 1
            continue
        option, label = hit.spelling.option, hit.label
        i += 1
        if option.kind is Kind.FLAG:
            value = True if hit.inline is None else convert_text(option, label, hit.inline)
            store_value(walked, option, label, (not value) if hit.spelling.negated else value)
            continue
        multi = option.kind in (Kind.TEXT, Kind.STYLE, Kind.MODEL)
        value_words: list[str] = [hit.inline] if hit.inline else []
        quoted = False
        if not value_words and i < len(words) and not _is_stop(words[i], table):
            got = _quoted(words, i)
            if got is not None:
                inner, i = got
                value_words, quoted = inner.split(), True
            elif words[i][:1] in _QUOTES:
                # A quote never closed is just a stray character: drop it and read on.
                words[i] = words[i][1:]
                i += 0 if words[i] else 1
        if not quoted and (multi or not value_words):
            while i < len(words) and not _is_stop(words[i], table):
                value_words.append(words[i])
                i += 1
                if not multi:
                    break
        if not value_words:
            example = f" {option.metavar}" if option.metavar else ""
            raise UserError(f"{label} needs a value, such as {label}{example}")
        if option.kind in (Kind.STYLE, Kind.MODEL):
            name, rest = resolve_name(
                option, label, " ".join(value_words), vocabulary, exact=quoted
            )
            store_value(walked, option, label, name)
            walked.free.extend(rest)
            continue
        store_value(walked, option, label, convert_text(option, label, " ".join(value_words)))
    return walked
