"""What an entry must use (a style or category, words, a model), checked before it is drawn."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.errors import UserError
from core.request import RequestSpec


@dataclass(frozen=True, slots=True)
class Rules:
    """A challenge's constraints; empty means anything goes."""

    style: str | None = None
    model: str | None = None
    words: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Rules:
        """From the stored JSON."""
        style, model = value.get("style"), value.get("model")
        return cls(
            style=str(style) if style else None,
            model=str(model) if model else None,
            words=tuple(str(w) for w in value.get("words") or ()),
        )

    def to_json(self) -> dict[str, Any]:
        """Plain data for the store."""
        return {"style": self.style, "model": self.model, "words": list(self.words)}

    def describe(self) -> str:
        """The rules in words for announcements, or ""."""
        parts = []
        if self.style:
            parts.append(f"style {self.style}")
        if self.model:
            parts.append(f"model {self.model}")
        if self.words:
            parts.append("words " + ", ".join(f"“{w}”" for w in self.words))
        return "use " + "; ".join(parts) if parts else ""


def check_entry(rules: Rules, spec: RequestSpec) -> None:
    """Raise a one-line ``UserError`` naming the first rule ``spec`` breaks."""
    if rules.style and (
        not isinstance(spec.style, str) or spec.style.casefold() != rules.style.casefold()
    ):
        raise UserError(
            f"this challenge needs the style {rules.style}", hint=f"add --style {rules.style}"
        )
    if rules.model and (
        not isinstance(spec.model, str) or spec.model.casefold() != rules.model.casefold()
    ):
        raise UserError(
            f"this challenge needs the model {rules.model}", hint=f"add --model {rules.model}"
        )
    missing = [w for w in rules.words if not _has_word(spec.prompt, w)]
    if missing:
        raise UserError(
            "this challenge's prompt must contain " + ", ".join(f"“{w}”" for w in missing),
            hint="add them to your prompt",
        )


def _has_word(prompt: str, word: str) -> bool:
    pattern = r"(?<!\w)" + re.escape(word.strip()) + r"(?!\w)"
    return re.search(pattern, prompt, flags=re.IGNORECASE) is not None
