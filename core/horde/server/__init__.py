"""The embedded, horde-compatible local horde: the AI Horde's v2 image API, offline and in tests.

It serves the same paths, shapes and status codes as aihorde.net under ``/api/v2/`` (a client's
base URL is ``http://HOST:PORT/api``), keeps its state in SQLite (or any SQLAlchemy URL), stores
images in a folder next to the database and hands out signed upload/download links in place of R2.
"""

from __future__ import annotations

from core.horde.server.database import add_user
from core.horde.server.embedded import EmbeddedHorde
from core.horde.server.horde import Horde
from core.horde.server.routes import create_app
from core.horde.server.settings import HordeSettings, HordeSettingsError

__all__ = [
    "EmbeddedHorde",
    "Horde",
    "HordeSettings",
    "HordeSettingsError",
    "add_user",
    "create_app",
]
