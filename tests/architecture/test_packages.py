"""Top-level packages must be ours: PyPI also has packages named ``bots`` and ``styles``."""

from __future__ import annotations

import importlib

import pytest

from tests.support.paths import REPO


@pytest.mark.parametrize("name", ["core", "bots", "styles", "worker_node"])
def test_top_level_package_resolves_inside_repo(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__file__ is not None
    assert str(module.__file__).startswith(str(REPO) + "/")


def test_core_import_pulls_no_heavy_library() -> None:
    import subprocess
    import sys

    code = (
        "import sys, core.config, core.horde.wire, styles;"
        "bad=[m for m in ('torch','diffusers','discord','mastodon','praw') if m in sys.modules];"
        "print(','.join(bad))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert out.stdout.strip() == ""
