"""Load the one TOML config file and validate the sections core owns.

Each section is a pydantic model with ``extra="forbid"`` so a typo fails loudly. Adapter and worker
sections stay raw here; their owners validate them. Errors name the key and the file, all at once.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.errors import UserError

UPSTREAM_STYLES = "https://raw.githubusercontent.com/Haidra-Org/AI-Horde-Styles/main"
UPSTREAM_MODELS = (
    "https://raw.githubusercontent.com/Haidra-Org/AI-Horde-image-model-reference/main/"
    "stable_diffusion.json"
)
PUBLIC_HORDE = "https://aihorde.net/api"


class Section(BaseModel):
    """Base of every config section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class StylesConfig(Section):
    """Where the style library comes from: an URL base or a local folder."""

    source: str = UPSTREAM_STYLES
    cache_dir: str = "var/cache/styles"
    refresh_seconds: int = Field(default=3600, ge=0)


class ModelsConfig(Section):
    """Where the model reference comes from: an URL or a local file."""

    source: str = UPSTREAM_MODELS
    cache_dir: str = "var/cache/models"
    refresh_seconds: int = Field(default=86400, ge=0)


class HordeConfig(Section):
    """Which horde the bots talk to; ``embedded`` starts a local one."""

    url: str = PUBLIC_HORDE
    api_key_env: str = "HORDEBOT_HORDE_API_KEY"
    embedded: bool = False
    embedded_host: str = "127.0.0.1"
    embedded_port: int = Field(default=0, ge=0, le=65535)
    embedded_db: str = "sqlite:///var/horde.db"


class StoreConfig(Section):
    """Where the bot keeps its state; SQLite by default, PostgreSQL by URL for scale."""

    url: str = "sqlite:///var/hordebot.db"
    # The key that seals users' horde API keys: from this env var, else this 0600 file.
    key_env: str = "HORDEBOT_SECRET_KEY"
    key_file: str = "var/secret.key"
    images_dir: str = "var/images"


class PolicyConfig(Section):
    """What members may ask for, and how often."""

    cooldown_seconds: float = Field(default=10.0, ge=0)
    max_concurrent: int = Field(default=2, ge=1)
    keyed_cooldown_seconds: float = Field(default=0.0, ge=0)
    keyed_max_concurrent: int = Field(default=5, ge=1)
    blocked_words: tuple[str, ...] = ()
    blocked_patterns: tuple[str, ...] = ()
    blocked_styles: tuple[str, ...] = ()
    blocked_models: tuple[str, ...] = ()
    progress_interval_seconds: float = Field(default=5.0, ge=0)
    default_style: str | None = None
    default_model: str | None = None


class CommunityConfig(Section):
    """The community's own workers: requests go to them first, then to the whole horde."""

    workers: tuple[str, ...] = ()
    fallback_after_seconds: float = Field(default=120.0, ge=0)


class Config(BaseModel):
    """The whole file: core sections typed, the rest kept raw for their owners."""

    model_config = ConfigDict(extra="allow", frozen=True)

    horde: HordeConfig = HordeConfig()
    styles: StylesConfig = StylesConfig()
    models: ModelsConfig = ModelsConfig()
    store: StoreConfig = StoreConfig()
    policy: PolicyConfig = PolicyConfig()
    community: CommunityConfig = CommunityConfig()
    path: Path | None = None

    def raw_section(self, name: str) -> dict[str, Any]:
        """A section core does not own, as plain data for its owner to validate."""
        extra = self.model_extra or {}
        value = extra.get(name, {})
        if not isinstance(value, dict):
            raise UserError(f"{self.path}: [{name}] must be a table")
        return value


# Sections core validates, plus those their owners validate (adapters, the worker).
_KNOWN_SECTIONS = frozenset(
    {"horde", "styles", "models", "store", "policy", "community"}
    | {"console", "worker", "discord", "mastodon", "lemmy", "reddit", "challenges"}
)


def load_config(path: str | Path | None) -> Config:
    """Read and validate a config file; ``None`` gives the defaults."""
    if path is None:
        return Config()
    file = Path(path)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"config file {file} not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{file}: not valid TOML: {exc}") from None
    unknown = sorted(set(data) - _KNOWN_SECTIONS)
    if unknown:
        raise UserError(
            f"{file}: unknown section(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(_KNOWN_SECTIONS))}"
        )
    try:
        return Config.model_validate({**data, "path": file})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise UserError(f"{file}: {problems}") from None


_M = TypeVar("_M", bound=BaseModel)


def validate_section(
    name: str, section: Mapping[str, Any], model: type[_M], origin: str = "<config>"
) -> _M:
    """``section`` as ``model``; every problem is named by its key, in one line."""
    try:
        return model.model_validate(dict(section))
    except ValidationError as exc:
        problems = "; ".join(
            f"{name}.{'.'.join(str(p) for p in err['loc']) or '(section)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise UserError(f"{origin}: {problems}") from None
