"""Where the read-only reference data lives: ``../shared`` beside the repository."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
SHARED_STYLES = SHARED / "data" / "horde-styles"
SHARED_MODEL_REFERENCE = SHARED / "data" / "model-reference" / "stable_diffusion.json"
