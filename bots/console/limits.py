"""What the console can show: any number of images (saved as files), long text, no buttons."""

from __future__ import annotations

from core.contract import PlatformLimits

LIMITS = PlatformLimits(
    max_images=20,
    max_text=10_000,
    max_alt_text=10_000,
    edits_progress=False,
    buttons=False,
    max_upload_bytes=64 * 1024 * 1024,
)
