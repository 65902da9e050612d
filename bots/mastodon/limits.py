"""What one Mastodon status can carry (the defaults of a stock Mastodon 4 instance)."""

from __future__ import annotations

from core.contract import PlatformLimits

LIMITS = PlatformLimits(
    max_images=4,
    max_text=500,
    max_alt_text=1500,
    edits_progress=False,
    buttons=False,
    max_upload_bytes=16 * 1024 * 1024,
)
