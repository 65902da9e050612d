"""Structured input (a mapping of option name to value, as Discord sends) to the same request.

A form's prompt field goes through the text grammar too, so ``###`` and flags typed into it
work; the other fields are checked by the same converters as text flags. The same option given
both as a field and as a flag in the prompt is an error, as it is twice in text.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from core.commands import DREAM, Command, Kind, Option, find_command
from core.errors import UserError
from core.grammar.dream import spec_from_walk
from core.grammar.flags import Vocabulary, Walked, clean, resolve_name, store_value, walk
from core.grammar.values import Value, convert_typed
from core.request import ArgValue, CommandRequest


def _option(command: Command, key: str) -> Option:
    for option in command.options:
        if option.name == key:
            return option
    names = [o.name for o in command.options]
    close = difflib.get_close_matches(key, names, n=3, cutoff=0.5)
    hint = f"closest: {', '.join(close)}" if close else f"options: {', '.join(names)}"
    raise UserError(f"unknown option {key!r} for /{command.name}", hint=hint)


def _repeated(option: Option, value: Any) -> Iterable[Any]:
    """The items of a repeatable option: a list, or one text with commas or spaces between."""
    if isinstance(value, list | tuple):
        return value
    if isinstance(value, str):
        return value.replace(",", " ").split()
    return [value]


def _convert(option: Option, value: Any, vocabulary: Vocabulary) -> Value:
    label = option.name
    if option.kind in (Kind.STYLE, Kind.MODEL):
        if not isinstance(value, str):
            raise UserError(f"{label} takes a name")
        name, _ = resolve_name(option, label, clean(value), vocabulary, exact=True)
        return name
    if option.kind is Kind.TEXT:
        if not isinstance(value, str):
            raise UserError(f"{label} takes text")
        text = " ".join(clean(value).split())
        if not text:
            raise UserError(f"{label} needs a value")
        return text
    return convert_typed(option, label, clean(value) if isinstance(value, str) else value)


def _fill(
    command: Command, walked: Walked, options: Mapping[str, Any], vocabulary: Vocabulary
) -> None:
    for key, value in options.items():
        if value is None or (command is DREAM and key == "prompt"):
            continue
        option = _option(command, key)
        if option.repeatable:
            for item in _repeated(option, value):
                store_value(walked, option, option.name, _convert(option, item, vocabulary))
        else:
            store_value(walked, option, option.name, _convert(option, value, vocabulary))


def parse_options(
    command_name: str, options: Mapping[str, Any], vocabulary: Vocabulary
) -> CommandRequest:
    """The request a command's structured options ask for; ``None`` values mean "not given"."""
    command = find_command(command_name)
    if command is None:
        raise UserError(f"unknown command /{command_name}", hint="see /help")
    if command is DREAM:
        prompt = options.get("prompt")
        if not isinstance(prompt, str):
            raise UserError("prompt is required: say what to draw")
        walked = walk(DREAM, prompt, vocabulary)
        _fill(command, walked, options, vocabulary)
        return CommandRequest(command=DREAM.name, spec=spec_from_walk(walked, vocabulary))
    walked = Walked()
    _fill(command, walked, options, vocabulary)
    args: dict[str, ArgValue] = {}
    for option in command.options:
        value = walked.values.get(option.name)
        if isinstance(value, str | int) and not isinstance(value, bool):
            args[option.name] = value
        elif option.required:
            raise UserError(f"/{command.name} needs {option.name}")
    return CommandRequest(command=command.name, args=args)
