"""``hordebot payload``: the body that would be sent, warnings on stderr, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bots.app import main
from core.horde.wire import GenerationInput
from tests.support.paths import REPO, SHARED_MODEL_REFERENCE, SHARED_STYLES


@pytest.fixture
def config(tmp_path: Path) -> str:
    path = tmp_path / "hordebot.toml"
    path.write_text(
        f'[styles]\nsource = "{SHARED_STYLES}"\ncache_dir = "{tmp_path / "styles"}"\n'
        f'[models]\nsource = "{SHARED_MODEL_REFERENCE}"\ncache_dir = "{tmp_path / "models"}"\n',
        encoding="utf-8",
    )
    return str(path)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["payload", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_prints_the_exact_body(config: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys, "draw me a fox ### dogs --model Dreamshaper --steps 20", "--config", config
    )
    assert code == 0
    body = json.loads(out)
    GenerationInput.model_validate(body)
    assert body["prompt"] == "a fox###dogs"
    assert body["models"] == ["Dreamshaper"]
    assert body["params"]["steps"] == 20
    assert err == ""


def test_a_category_prints_a_list_and_names_the_drawn_styles(
    config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        capsys, "a fox style: featured --n 4", "--config", config, "--seed-rng", "5"
    )
    assert code == 0
    bodies = json.loads(out)
    assert isinstance(bodies, list)
    assert len(bodies) == 4
    assert err.count("(from category featured)") == 4
    again = run(capsys, "a fox style: featured --n 4", "--config", config, "--seed-rng", "5")
    assert again[1] == out


def test_warnings_go_to_stderr(config: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "a fox --nsfw", "--config", config, "--sfw")
    assert code == 0
    assert json.loads(out)["nsfw"] is False
    assert "warning: --nsfw ignored" in err


def test_an_nsfw_channel_is_the_default(config: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "a fox --nsfw", "--config", config)
    assert code == 0
    assert (json.loads(out)["nsfw"], json.loads(out)["censor_nsfw"]) == (True, False)


@pytest.mark.parametrize(
    "text",
    ["a fox --stpes 3", "a fox --style anmie", "a fox --model nope", "/help", "### only"],
)
def test_bad_input_is_one_error_line_and_exit_2(
    text: str, config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, text, "--config", config)
    assert code == 2
    assert out == ""
    assert err.startswith("error: ")
    assert err.count("\n") == 1


def test_mention_platforms_need_the_trigger(
    config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "a fox", "--config", config, "--platform", "mastodon")
    assert code == 2
    assert "draw me" in err
    code, out, _ = run(capsys, "draw for us a fox", "--config", config, "--platform", "lemmy")
    assert code == 0
    assert json.loads(out)["prompt"] == "a fox"


def test_a_missing_config_file_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "a fox", "--config", str(tmp_path / "nope.toml"))
    assert code == 2
    assert err.startswith("error: ")
    assert err.count("\n") == 1


def test_the_real_command_keeps_stderr_to_one_line(config: str) -> None:
    """In a real process the root logger writes to stderr: loading chatter must stay out."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "bots.app", "payload", "a fox --steps 0", "--config", config],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("error: --steps")
    assert done.stderr.count("\n") == 1
