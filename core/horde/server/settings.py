"""Settings of the embedded horde: where it keeps things and how fast its clocks run.

Tests and the ``hordebot horde serve`` flags shorten the clocks (job TTL, maintenance interval); the
defaults follow the AI Horde's contract (20-minute request lifetime, 150 s minimum job TTL, 60 s
maintenance, 300 s worker staleness).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

DEFAULT_DB_URL = "sqlite:///horde.db"


class HordeSettingsError(ValueError):
    """A setting the operator gave cannot work; the message says which and what to change."""


@dataclass(frozen=True, slots=True)
class HordeSettings:
    """Everything the embedded horde needs to start; values, no behaviour."""

    db_url: str = DEFAULT_DB_URL
    # None: a folder next to the SQLite file (``<stem>-images``), else ``./horde-images``.
    images_dir: Path | None = None
    request_lifetime_s: float = 20 * 60
    # None: the contract's formula (30 s + 2 s per accurate step at 512², at least 150 s).
    job_ttl_s: float | None = None
    min_job_ttl_s: float = 150.0
    maintenance_interval_s: float = 60.0
    worker_stale_s: float = 300.0
    # Base of the links the horde hands out (r2 uploads and downloads); None: from the request.
    public_url: str | None = None
    user_concurrency: int = 30
    max_body_bytes: int = 32 * 1024 * 1024

    def __post_init__(self) -> None:
        try:
            make_url(self.db_url)
        except ArgumentError as exc:
            raise HordeSettingsError(
                f"database URL {self.db_url!r} is not a URL; use e.g. sqlite:///path/horde.db"
            ) from exc
        for name in ("request_lifetime_s", "maintenance_interval_s", "worker_stale_s"):
            if getattr(self, name) <= 0:
                raise HordeSettingsError(f"{name} must be above 0 seconds")
        if self.job_ttl_s is not None and self.job_ttl_s <= 0:
            raise HordeSettingsError("the job TTL must be above 0 seconds")

    def sqlite_path(self) -> Path | None:
        """The SQLite file behind ``db_url``, or None for another database or an in-memory one."""
        url = make_url(self.db_url)
        if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
            return None
        return Path(url.database)

    def resolved_images_dir(self) -> Path:
        """Where finished images live."""
        if self.images_dir is not None:
            return self.images_dir
        db_path = self.sqlite_path()
        if db_path is None:
            return Path("horde-images")
        return db_path.with_name(f"{db_path.stem}-images")
