"""A platform's config section, validated by its pydantic model, with problems as one line."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from core.config import Config
from core.errors import UserError

M = TypeVar("M", bound=BaseModel)


def validate_section(
    name: str, section: Mapping[str, Any], model: type[M], origin: str = "<config>"
) -> M:
    """``section`` as ``model``; every problem is named by its key, in one line."""
    try:
        return model.model_validate(dict(section))
    except ValidationError as exc:
        problems = "; ".join(
            f"{name}.{'.'.join(str(p) for p in err['loc']) or '(section)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise UserError(f"{origin}: {problems}") from None


def platform_section(config: Config, name: str, model: type[M]) -> M | None:
    """The validated ``[name]`` section, or ``None`` when it is absent or ``enabled = false``."""
    section = config.raw_section(name)
    if not section or section.get("enabled", True) is False:
        return None
    return validate_section(name, section, model, str(config.path or "<config>"))
