"""`hordebot run` offline: embedded horde, a worker process on the tiny model, the console bot."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.support.stack_config import write_stack_config

pytestmark = pytest.mark.slow

WORKER = """
[worker]
enabled = true
name = "e2e-local-worker"
horde_url = "embedded"
max_power = 8
cache_dir = "{var}/worker-cache"

[[worker.models]]
name = "stable_diffusion"
path = "{var}/tiny-model"
tiny = true
"""


def test_piped_dream_prints_the_path_of_a_valid_webp_and_console_commands_answer(
    tmp_path: Path,
) -> None:
    config = write_stack_config(tmp_path, worker=WORKER.format(var=tmp_path / "var"))
    lines = "/help\n/styles stylepunks\n/nosuch\ndraw me a lighthouse --steps 4\n"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "bots.app", "run", "--config", str(config)],
        input=lines,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout.splitlines()
    paths = [line for line in out if line.endswith(".webp")]
    assert len(paths) == 1, done.stdout
    with Image.open(paths[0]) as image:
        assert image.format == "WEBP"
        assert image.size == (512, 512)
    assert any("dream" in line for line in out), "help lists the dream command"
    assert any("stylepunks (51)" in line for line in out), "the stylepunks category is listed"
    assert any(line.startswith("error:") and "nosuch" in line for line in out)


def test_dream_command_generates_once_and_prints_the_image_path(tmp_path: Path) -> None:
    config = write_stack_config(tmp_path, worker=WORKER.format(var=tmp_path / "var"))
    out_dir = tmp_path / "pictures"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bots.app",
            "dream",
            "a lighthouse at dawn --steps 2 --n 2",
            "--config",
            str(config),
            "--out",
            str(out_dir),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    paths = [Path(line) for line in done.stdout.splitlines() if line.endswith(".webp")]
    assert len(paths) == 2
    assert all(path.parent == out_dir for path in paths)
    for path in paths:
        with Image.open(path) as image:
            assert image.format == "WEBP"
