"""Which command a line of text is, and its request.

A line is a command when it starts with ``/name`` or ``!name`` (any command or alias of the
table), with the Horde bots' trigger ``draw me``, ``draw us``, ``draw for me`` or
``draw for us`` (a dream), or, on platforms where the bot was addressed directly (a mention),
with a bare command word (``help``, ``styles``). Where the caller already knows the text is a
dream (the console, ``hordebot payload``), a bare prompt is a dream too. Mentions (``@bot``) are
stripped by the adapters before this runs.
"""

from __future__ import annotations

import difflib
import re

from core.commands import DREAM, Command, Kind, command_names, find_command
from core.errors import UserError
from core.grammar.dream import parse_dream
from core.grammar.flags import Vocabulary, clean, resolve_name, walk
from core.grammar.values import convert_text
from core.request import ArgValue, CommandRequest

_TRIGGER = re.compile(r"\bdraw\s+(?:for\s+)?(?:me|us)\b[\s:,]*", re.IGNORECASE)
_SLASH = re.compile(r"\s*[/!]([A-Za-z_][A-Za-z0-9_-]*)(?=\s|$)(.*)", re.DOTALL)


def strip_trigger(text: str, *, anywhere: bool = False) -> str | None:
    """The text after ``draw me|us|for me|for us``, or ``None`` when there is no trigger.

    By default the trigger must open the text; ``anywhere`` finds it further in, as the
    fediverse bots do with "@bot could you draw me ...".
    """
    text = clean(text)
    match = _TRIGGER.search(text) if anywhere else _TRIGGER.match(text.lstrip())
    if match is None:
        return None
    rest = text[match.end() :] if anywhere else text.lstrip()[match.end() :]
    return rest


def _parse_other(command: Command, text: str, vocabulary: Vocabulary) -> CommandRequest:
    walked = walk(command, text, vocabulary)
    args: dict[str, ArgValue] = {}
    for key, value in walked.values.items():
        if isinstance(value, str | int) and not isinstance(value, bool):
            args[key] = value
    free = list(walked.free)
    for option in command.positionals():
        if not free:
            if option.required:
                usage = " ".join(f"<{o.name}>" for o in command.positionals() if o.required)
                raise UserError(
                    f"/{command.name} needs {option.name}", hint=f"/{command.name} {usage}"
                )
            continue
        label = f"/{command.name} {option.name}"
        if option.kind in (Kind.TEXT, Kind.STYLE):
            taken, free = " ".join(free), []
            if option.kind is Kind.STYLE:
                taken, _ = resolve_name(option, label, taken, vocabulary, exact=True)
            args[option.name] = taken
        else:
            value = convert_text(option, label, free.pop(0))
            if isinstance(value, str | int) and not isinstance(value, bool):
                args[option.name] = value
    if free:
        raise UserError(
            f"/{command.name} got unexpected words: {' '.join(free)[:60]!r}",
            hint=f"see /help {command.name}",
        )
    return CommandRequest(command=command.name, args=args)


def parse_command(command: Command, text: str, vocabulary: Vocabulary) -> CommandRequest:
    """``text`` (the words after the command name) as a request of ``command``."""
    if command is DREAM:
        return CommandRequest(command=DREAM.name, spec=parse_dream(text, vocabulary))
    return _parse_other(command, text, vocabulary)


def split_line(
    text: str, *, bare_is_dream: bool = False, trigger_anywhere: bool = False
) -> tuple[str, str] | None:
    """Which command ``text`` names and the text of its arguments, unparsed; ``None`` when the
    text is not addressed to the bot.

    Adapters use it to build an ``Invocation`` (the inbox parses the rest); ``parse_line`` uses
    it to parse at once. ``trigger_anywhere``: ``draw me`` may come after other words, as in
    "@bot could you draw me a cat" on the fediverse. An unknown ``/name`` raises ``UserError``.
    """
    slash = _SLASH.match(clean(text))
    if slash is not None:
        command = find_command(slash[1])
        if command is None:
            close = difflib.get_close_matches(slash[1].casefold(), command_names(), n=3)
            hint = f"closest: {', '.join('/' + c for c in close)}" if close else "see /help"
            raise UserError(f"unknown command /{slash[1]}", hint=hint)
        return command.name, slash[2].strip()
    words = clean(text).split(maxsplit=1)
    named = find_command(words[0]) if words else None
    if named is not None and named is not DREAM:
        return named.name, words[1] if len(words) > 1 else ""
    rest = strip_trigger(text, anywhere=trigger_anywhere)
    if rest is not None:
        return DREAM.name, rest.strip()
    if named is DREAM:
        return DREAM.name, words[1] if len(words) > 1 else ""
    if bare_is_dream:
        return DREAM.name, text.strip()
    return None


def parse_line(
    text: str, vocabulary: Vocabulary, *, bare_is_dream: bool = False
) -> CommandRequest | None:
    """The command ``text`` asks for, or ``None`` when it is not addressed to the bot.

    ``bare_is_dream``: a line that is neither ``/command`` nor ``draw me ...`` is a prompt
    (console, payload CLI, a Discord prompt field). Without it such a line is a command only
    when its first word names one (``help``, ``styles``), and otherwise ``None`` (a mention
    without a trigger is ignored silently, as the Horde bots do).
    """
    split = split_line(text, bare_is_dream=bare_is_dream)
    if split is None:
        return None
    name, rest = split
    command = find_command(name)
    if command is None:  # pragma: no cover - split_line only names commands of the table
        raise RuntimeError(f"split_line named an unknown command {name!r}")
    return parse_command(command, rest, vocabulary)
