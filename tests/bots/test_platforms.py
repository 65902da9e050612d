"""Which platform adapters a config asks for."""

from __future__ import annotations

from pathlib import Path

from bots.platforms import configured_platforms
from core.config import load_config


def test_present_sections_count_unless_switched_off(tmp_path: Path) -> None:
    path = tmp_path / "bot.toml"
    path.write_text(
        '[reddit]\nenabled = false\n\n[mastodon]\napi_base_url = "http://127.0.0.1:1"\n',
        encoding="utf-8",
    )
    assert configured_platforms(load_config(str(path))) == ["mastodon"]


def test_no_sections_no_platforms(tmp_path: Path) -> None:
    path = tmp_path / "bot.toml"
    path.write_text("[console]\nenabled = true\n", encoding="utf-8")
    assert configured_platforms(load_config(str(path))) == []
