"""A platform's config section as its pydantic model, or None when it is off."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel

from core.config import Config, validate_section

M = TypeVar("M", bound=BaseModel)


def platform_section(config: Config, name: str, model: type[M]) -> M | None:
    """The validated ``[name]`` section, or ``None`` when it is absent or ``enabled = false``."""
    section = config.raw_section(name)
    if not section or section.get("enabled", True) is False:
        return None
    return validate_section(name, section, model, str(config.path or "<config>"))
