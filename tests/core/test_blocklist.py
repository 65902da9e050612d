"""Block lists refuse what a community does not generate, and nothing else."""

from __future__ import annotations

import pytest

from core.blocklist import Blocklist
from core.errors import UserError


def test_word_matches_whole_words_case_insensitively() -> None:
    blocklist = Blocklist(words=("gore",))
    with pytest.raises(UserError, match="rephrase"):
        blocklist.check("A lot of GORE", style=None, models=[])
    blocklist.check("a gorgeous gorge", style=None, models=[])


def test_regex_style_and_model_rules() -> None:
    blocklist = Blocklist(patterns=(r"\bcelebrity\s+\w+",), styles=("horrors",), models=("Pony",))
    with pytest.raises(UserError):
        blocklist.check("celebrity name here", style=None, models=[])
    with pytest.raises(UserError, match="style 'Horrors'"):
        blocklist.check("a cat", style="Horrors", models=[])
    with pytest.raises(UserError, match="model 'pony'"):
        blocklist.check("a cat", style=None, models=["pony"])
    blocklist.check("a cat", style="anime", models=["Deliberate"])
