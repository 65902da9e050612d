"""Config files for whole-stack tests: everything under one temporary folder, data from shared/."""

from __future__ import annotations

from pathlib import Path

from tests.support.paths import SHARED_MODEL_REFERENCE, SHARED_STYLES


def write_stack_config(folder: Path, *, worker: str = "", policy: str = "") -> Path:
    """A config with the embedded horde, the console, and the pinned style and model data."""
    var = folder / "var"
    text = f"""
[horde]
embedded = true
embedded_db = "sqlite:///{var}/horde.db"

[styles]
source = "{SHARED_STYLES}"
cache_dir = "{var}/cache/styles"

[models]
source = "{SHARED_MODEL_REFERENCE}"
cache_dir = "{var}/cache/models"

[store]
url = "sqlite:///{var}/hordebot.db"
key_file = "{var}/secret.key"
images_dir = "{var}/images"

[policy]
cooldown_seconds = 0
max_concurrent = 100
progress_interval_seconds = 3600
default_model = "stable_diffusion"
{policy}

[console]
out_dir = "{folder}/out"
progress = false
{worker}
"""
    path = folder / "hordebot.toml"
    path.write_text(text, encoding="utf-8")
    return path
