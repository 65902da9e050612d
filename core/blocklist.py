"""Community block lists: words, regular expressions, styles and models an admin refuses."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from core.errors import UserError


@dataclass(frozen=True)
class Blocklist:
    """What a community does not generate; matching is case-insensitive."""

    words: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    styles: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    _compiled: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        compiled = tuple(re.compile(p, re.IGNORECASE) for p in self.patterns)
        object.__setattr__(self, "_compiled", compiled)

    def check(self, prompt: str, *, style: str | None, models: list[str]) -> None:
        """Raise a ``UserError`` when a request touches the block list."""
        lowered = prompt.lower()
        tokens = set(re.findall(r"[\w']+", lowered))
        for word in self.words:
            w = word.lower()
            if (" " in w and w in lowered) or w in tokens:
                raise UserError("this community does not allow that prompt; rephrase it")
        if any(p.search(prompt) for p in self._compiled):
            raise UserError("this community does not allow that prompt; rephrase it")
        if style and style.lower() in {s.lower() for s in self.styles}:
            raise UserError(f"the style '{style}' is not allowed here; pick another")
        blocked = {m.lower() for m in self.models}
        for model in models:
            if model.lower() in blocked:
                raise UserError(f"the model '{model}' is not allowed here; pick another")
