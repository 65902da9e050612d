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


def test_the_example_config_sections_are_valid_and_switched_off() -> None:
    import importlib

    from pydantic import BaseModel

    from bots.platforms import PLATFORMS
    from core.challenges.config import parse_challenges_config
    from tests.support.paths import REPO

    config = load_config(str(REPO / "config.example.toml"))
    assert configured_platforms(config) == []
    for name in PLATFORMS:
        module = importlib.import_module(f"bots.{name}.config")
        (model,) = [
            value
            for key, value in vars(module).items()
            if key.lower() == f"{name}config" and isinstance(value, type)
        ]
        assert issubclass(model, BaseModel)
        section = config.raw_section(name)
        assert section, f"config.example.toml has no [{name}] section"
        assert model.model_validate(section).enabled is False  # type: ignore[attr-defined]
    challenges = parse_challenges_config(config.raw_section("challenges"), "example")
    assert challenges.recurring


def test_a_bad_key_in_a_platform_section_is_one_line_naming_it(tmp_path: Path) -> None:
    import pytest

    from bots.platforms import build_adapters
    from core.errors import UserError

    path = tmp_path / "bot.toml"
    path.write_text(
        '[lemmy]\ninstance_url = "http://127.0.0.1:1"\nusername = "b"\npasword_env = "X"\n'
    )
    with pytest.raises(UserError) as caught:
        build_adapters(load_config(str(path)), None)  # type: ignore[arg-type]
    message = str(caught.value)
    assert "lemmy.pasword_env" in message
    assert "\n" not in message
