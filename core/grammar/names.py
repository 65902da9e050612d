"""Known names (styles and categories, or models) matched longest-first on word boundaries.

Style names hold spaces, digits and ``- _ . ' ( ) + –`` (``a midsummer night's dream``,
``faetastic (flux)``) and model names hold spaces and brackets (``AlbedoBase XL (SDXL)``), so no
character class can say where a name ends. Instead the words after ``style:`` or ``--model`` are
compared with every known name, longest first; what is left over goes back to the prompt.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

# Punctuation that may trail a name in running text ("style: anime, a cat").
_TRAILING = ",;!?"


def normalise(text: str) -> str:
    """The lookup key of a name: case-folded, whitespace collapsed."""
    return " ".join(text.casefold().split())


class NameIndex:
    """An immutable set of names looked up ignoring case and spacing, longest match first."""

    __slots__ = ("_by_key", "_keys", "_max_words")

    def __init__(self, names: Iterable[str]) -> None:
        by_key: dict[str, str] = {}
        for name in names:
            key = normalise(name)
            if key:
                by_key.setdefault(key, name)
        self._by_key = by_key
        self._keys = tuple(sorted(by_key))
        self._max_words = max((len(k.split()) for k in by_key), default=0)

    def __len__(self) -> int:
        return len(self._by_key)

    def get(self, text: str) -> str | None:
        """The known name ``text`` spells (any case or spacing), or ``None``."""
        return self._by_key.get(normalise(text))

    def match_prefix(self, words: Sequence[str]) -> tuple[str, int] | None:
        """The longest known name the first words spell, and how many words it took.

        A trailing comma (or ``;!?``) on the last word of the name is tolerated and dropped.
        """
        for count in range(min(self._max_words, len(words)), 0, -1):
            candidate = " ".join(words[:count])
            found = self.get(candidate)
            if found is None and candidate[-1:] in _TRAILING:
                found = self.get(candidate.rstrip(_TRAILING))
            if found is not None:
                return found, count
        return None

    def closest(self, text: str, n: int = 3) -> list[str]:
        """Up to ``n`` known names that look like ``text`` (or like its first few words)."""
        words = normalise(text).split()
        if not words:
            return []
        longest = min(len(words), self._max_words + 1)
        queries = {" ".join(words[:count]) for count in range(1, longest + 1)}
        scored: dict[str, float] = {}
        for query in queries:
            for key in difflib.get_close_matches(query, self._keys, n=n, cutoff=0.6):
                ratio = difflib.SequenceMatcher(None, query, key).ratio()
                scored[key] = max(scored.get(key, 0.0), ratio)
        found = sorted(scored, key=lambda k: (-scored[k], k))[:n]
        first = words[0]
        if len(found) < n and len(first) >= 3:
            # "punk" should still suggest "steampunk": names holding the first word come next.
            found += [k for k in self._keys if first in k and k not in found][: n - len(found)]
        return [self._by_key[k] for k in found]
