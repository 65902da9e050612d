"""``hordebot styles`` through the real CLI entry point, on the shared library copy."""

from __future__ import annotations

from pathlib import Path

import pytest

from bots.app import main
from tests.support.paths import SHARED_MODEL_REFERENCE, SHARED_STYLES


@pytest.fixture
def config(tmp_path: Path) -> str:
    path = tmp_path / "hordebot.toml"
    path.write_text(
        f"""
[styles]
source = "{SHARED_STYLES}"
cache_dir = "{tmp_path / "cache" / "styles"}"

[models]
source = "{SHARED_MODEL_REFERENCE}"
cache_dir = "{tmp_path / "cache" / "models"}"
""",
        encoding="utf-8",
    )
    return str(path)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str], list[str]]:
    code = main(["styles", *argv])
    out, err = capsys.readouterr()
    return code, out.splitlines(), [line for line in err.splitlines() if line]


def test_list_prints_every_style_with_its_model(
    capsys: pytest.CaptureFixture[str], config: str
) -> None:
    code, out, err = _run(capsys, "list", "--config", config)
    assert code == 0
    assert len(out) == 404
    steampunk = next(line for line in out if line.startswith("steampunk "))
    assert steampunk.split()[-2:] == ["DreamShaper", "XL"]
    assert any("404 styles, 43 categories" in line for line in err)


def test_show_prints_the_style_its_baseline_and_an_example(
    capsys: pytest.CaptureFixture[str], config: str
) -> None:
    code, out, _ = _run(capsys, "show", "SteamPunk", "--config", config)
    assert code == 0
    assert "style: steampunk" in out
    assert "model: DreamShaper XL (stable_diffusion_xl)" in out
    assert "example: a lighthouse on a cliff, DonMSt34mPXL" in out
    assert "categories: stylepunks" in out
    assert any(line.startswith("loras: 1076692 (version) model 0.6") for line in out)


def test_show_a_name_that_is_style_and_category(
    capsys: pytest.CaptureFixture[str], config: str
) -> None:
    code, out, _ = _run(capsys, "show", "animation", "--config", config)
    assert code == 0
    assert out[0] == "style: animation"
    assert "also a category: see `hordebot styles categories animation`" in out


def test_show_a_category_lists_its_styles(capsys: pytest.CaptureFixture[str], config: str) -> None:
    code, out, _ = _run(capsys, "show", "stylepunks", "--config", config)
    assert code == 0
    assert out[0] == "category: stylepunks (51 styles)"
    assert len(out) == 2 + 51


def test_categories_lists_all_43_with_counts(
    capsys: pytest.CaptureFixture[str], config: str
) -> None:
    code, out, _ = _run(capsys, "categories", "--config", config)
    assert code == 0
    assert len(out) == 43
    assert any(line.startswith("stylepunks") and line.endswith("51 styles") for line in out)


def test_categories_name_shows_members_and_expansion(
    capsys: pytest.CaptureFixture[str], config: str
) -> None:
    code, out, _ = _run(capsys, "categories", "Featured", "--config", config)
    assert code == 0
    assert out[0] == "category: featured (13 styles)"
    assert out[1] == "lists: flux, flux-aspect-ratio, cascade+"
    assert [line.strip() for line in out[2:]].count("flux") == 1


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ("show", "stylepunk"),
            "error: unknown style or category 'stylepunk'; closest: stylepunks",
        ),
        (
            ("categories", "featurd"),
            "error: unknown style or category 'featurd'; closest: featured",
        ),
        (("categories", "steampunk"), "error: 'steampunk' is a style, not a category"),
    ],
)
def test_unknown_names_give_one_error_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], config: str, argv: tuple[str, ...], expected: str
) -> None:
    code, out, err = _run(capsys, *argv, "--config", config)
    assert code == 2
    assert out == []
    errors = [line for line in err if line.startswith("error:")]
    assert len(errors) == 1
    assert errors[0].startswith(expected)
    assert not any("Traceback" in line for line in err)


def test_a_missing_config_file_is_one_error_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = _run(capsys, "list", "--config", str(tmp_path / "nope.toml"))
    assert code == 2
    assert out == []
    assert [line for line in err if line.startswith("error:")] == [
        f"error: config file {tmp_path / 'nope.toml'} not found"
    ]
