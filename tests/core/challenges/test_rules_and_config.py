"""Entry rules, the ``[challenges]`` config and recurring schedules."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.challenges.config import RecurringSpec, parse_challenges_config
from core.challenges.rules import Rules, check_entry
from core.errors import UserError
from core.request import RequestSpec


def test_missing_required_word_is_a_one_line_error_naming_it() -> None:
    rules = Rules(words=("lighthouse", "storm"))
    check_entry(rules, RequestSpec(prompt="A Lighthouse in a storm, oil"))
    with pytest.raises(UserError, match="“storm”") as caught:
        check_entry(rules, RequestSpec(prompt="a lighthouse at dawn"))
    assert "\n" not in str(caught.value)


def test_word_must_be_whole() -> None:
    with pytest.raises(UserError):
        check_entry(Rules(words=("cat",)), RequestSpec(prompt="a catapult"))


def test_style_and_model_rules() -> None:
    with pytest.raises(UserError, match="--style anime"):
        check_entry(Rules(style="anime"), RequestSpec(prompt="x"))
    check_entry(Rules(style="anime"), RequestSpec(prompt="x", style="Anime"))
    with pytest.raises(UserError, match="--model"):
        check_entry(Rules(model="AlbedoBase XL"), RequestSpec(prompt="x", model="other"))


def test_config_checks_venues_and_prizes_and_names_the_key() -> None:
    with pytest.raises(UserError, match=r"challenges\.venues"):
        parse_challenges_config({"venues": ["discord"]}, "bot.toml")
    with pytest.raises(UserError, match=r"challenges\.prizes"):
        parse_challenges_config({"prizes": [0]}, "bot.toml")
    with pytest.raises(UserError, match=r"challenges\.recurring\.0\.cron"):
        parse_challenges_config(
            {"recurring": [{"name": "w", "cron": "nope", "themes": ["a"]}]}, "f"
        )
    config = parse_challenges_config({"admins": ["console:*"]}, "f")
    assert config.is_admin("console", "anyone")
    assert not config.is_admin("discord", "1")


def test_recurring_next_occurrence_and_stable_theme() -> None:
    spec = RecurringSpec(name="weekly", cron="0 18 * * mon", themes=("a", "b", "c", "d"))
    tuesday = datetime(2025, 6, 3, 12, 0, tzinfo=UTC)
    monday = spec.next_after(tuesday)
    assert monday == datetime(2025, 6, 9, 18, 0, tzinfo=UTC)
    assert spec.next_after(monday) == datetime(2025, 6, 16, 18, 0, tzinfo=UTC)
    assert spec.theme_for(monday) == spec.theme_for(monday)
    assert len({spec.theme_for(datetime(2025, 1, d, tzinfo=UTC)) for d in range(1, 29)}) > 1
