"""The config file: typed sections, one-line errors naming the key and the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import load_config
from core.errors import UserError
from tests.support.paths import REPO


def test_the_example_config_loads() -> None:
    config = load_config(REPO / "config.example.toml")
    assert config.horde.embedded is True
    assert config.store.url.startswith("sqlite")


def test_a_misspelt_key_names_the_key_and_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[policy]\ncooldown_secs = 3\n", encoding="utf-8")
    with pytest.raises(UserError) as caught:
        load_config(path)
    message = str(caught.value)
    assert "policy.cooldown_secs" in message
    assert str(path) in message
    assert "\n" not in message


def test_an_unknown_section_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[polcy]\ncooldown_seconds = 3\n", encoding="utf-8")
    with pytest.raises(UserError, match="unknown section"):
        load_config(path)
