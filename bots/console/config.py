"""The ``[console]`` config section."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ConsoleConfig(BaseModel):
    """Where images go and who the console user is."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    out_dir: str = "out"
    user: str = "console"
    nsfw_allowed: bool = False
    progress: bool = True
    history_file: str = "var/console_history"
    max_ignored_lines: int = Field(default=0, ge=0)
