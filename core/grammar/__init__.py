"""The command grammar: text and structured input turned into one request.

Pure functions over values (no I/O), driven by the command table in ``core.commands``:

* ``parse_line(text, vocabulary, bare_is_dream=...)``: any line a user sent, as a
  ``CommandRequest`` (or ``None`` when it is not addressed to the bot);
* ``parse_dream(text, vocabulary)``: a dream's text (after ``draw me`` / ``/dream``);
* ``parse_options(command, mapping, vocabulary)``: structured input, e.g. Discord options;
* ``Vocabulary`` / ``NameIndex``: the style and model names matched longest-first.

Bad input raises ``core.errors.UserError`` with one line that says what to change.
"""

from core.grammar.dream import inline_tis, parse_dream
from core.grammar.flags import EMPTY_VOCABULARY, Vocabulary
from core.grammar.lines import parse_command, parse_line, split_line, strip_trigger
from core.grammar.names import NameIndex
from core.grammar.structured import parse_options

__all__ = [
    "EMPTY_VOCABULARY",
    "NameIndex",
    "Vocabulary",
    "inline_tis",
    "parse_command",
    "parse_dream",
    "parse_line",
    "parse_options",
    "split_line",
    "strip_trigger",
]
