"""The ``dream`` request from its words: the legacy form, ``###``, inline TIs and the flags.

The Horde bots' legacy form is ``<prompt> style: <name> ### <negative>``; Midjourney-style flags
(``--style``, ``--no`` ...) may be mixed in anywhere. Both end in the same ``RequestSpec``.
"""

from __future__ import annotations

import re
from typing import Any

from core.commands import DREAM, STRENGTH_RANGE, Kind
from core.errors import UserError
from core.grammar.flags import Vocabulary, Walked, resolve_name, walk
from core.grammar.values import MAX_NAME
from core.request import LoraRef, RequestSpec, TIRef

SPLIT = "###"
_LATER_SPLITS = re.compile(r"\s*###+\s*")
_STYLE_MARK = re.compile(r"(?:^|(?<=\s))style:", re.IGNORECASE)
# "embedding:12345" and "(embedding:12345:0.5)": the worker finds them in the prompt; the horde
# needs them listed in ``tis`` too so that the worker downloads them.
_INLINE_TI = re.compile(
    r"\(?\bembedding:([A-Za-z0-9_.-]+?)(?::([+-]?(?:\d+(?:\.\d*)?|\.\d+)))?\)?(?=$|[\s,;)(])",
    re.IGNORECASE | re.ASCII,
)
EXAMPLE = "draw me a lighthouse at dusk --style anime"


def inline_tis(text: str) -> list[TIRef]:
    """The textual inversions ``text`` references as ``embedding:ID[:strength]``, in order."""
    found: list[TIRef] = []
    for match in _INLINE_TI.finditer(text):
        name = match[1].rstrip(".")
        if not name or len(name) > MAX_NAME:
            continue
        strength = 1.0 if match[2] is None else float(match[2])
        low, high = STRENGTH_RANGE
        if not low <= strength <= high:
            raise UserError(f"embedding:{name}:{match[2]} takes strengths from {low:g} to {high:g}")
        found.append(TIRef(name=name, strength=strength, inject=None))
    return found


def _unique(tis: list[TIRef]) -> tuple[TIRef, ...]:
    seen: dict[str, TIRef] = {}
    for ti in tis:
        seen.setdefault(ti.name, ti)
    return tuple(seen.values())


def _legacy_style(text: str, walked: Walked, vocabulary: Vocabulary) -> str:
    """``text`` without its ``style: NAME`` part; the name is stored as the style option."""
    mark = _STYLE_MARK.search(text)
    if mark is None:
        return text
    option = DREAM.option("style")
    if option.name in walked.values:
        raise UserError(
            f"the style is given twice (as style: and {walked.labels[option.name]}); give it once"
        )
    before, after = text[: mark.start()], text[mark.end() :]
    region, sep, rest = after.partition(SPLIT)
    if not region.split():
        raise UserError("style: needs a style name, such as style: anime")
    name, leftover = resolve_name(option, "style:", region, vocabulary, exact=False)
    walked.values[option.name] = name
    walked.labels[option.name] = "style:"
    return " ".join([before, *leftover]) + (f" {SPLIT}{rest}" if sep else "")


def spec_from_walk(walked: Walked, vocabulary: Vocabulary) -> RequestSpec:
    """The ``RequestSpec`` for walked dream words: the free words are prompt and negative."""
    text = _legacy_style(" ".join(walked.free), walked, vocabulary)
    positive, _, negative = text.partition(SPLIT)
    # Only the first ### splits (as on the horde); later ones are just separators.
    negatives = [" ".join(_LATER_SPLITS.sub(", ", negative).split())]
    typed_negative = walked.values.get("negative")
    if isinstance(typed_negative, str):
        negatives.append(typed_negative)
    negative_text = ", ".join(n.strip(" ,") for n in negatives if n.strip(" ,"))
    prompt = " ".join(positive.split())
    if not prompt:
        raise UserError("the prompt is empty: say what to draw", hint=f"e.g. {EXAMPLE}")

    fields: dict[str, Any] = {"prompt": prompt}
    if negative_text:
        fields["negative"] = negative_text
    user_tis: list[TIRef] = [*inline_tis(prompt), *inline_tis(negative_text)]
    for option in DREAM.options:
        if option.positional or option.name == "negative":
            continue
        if option.kind is Kind.LORA:
            loras = walked.repeated.get(option.name, [])
            if loras:
                fields[option.target] = tuple(v for v in loras if isinstance(v, LoraRef))
        elif option.kind is Kind.TI:
            user_tis += [v for v in walked.repeated.get(option.name, []) if isinstance(v, TIRef)]
        elif option.name in walked.values:
            fields[option.target] = walked.values[option.name]
    if user_tis:
        fields["tis"] = _unique(user_tis)
    return RequestSpec(**fields)


def parse_dream(text: str, vocabulary: Vocabulary) -> RequestSpec:
    """The ``RequestSpec`` a dream command's text (without its trigger) asks for."""
    return spec_from_walk(walk(DREAM, text, vocabulary), vocabulary)
