"""What one Discord message can carry: 10 attachments, 2000 characters, buttons."""

from __future__ import annotations

from core.contract import PlatformLimits

# Embed descriptions hold 4096 characters, but captions stay readable under 2000 (message size).
LIMITS = PlatformLimits(
    max_images=10,
    max_text=2000,
    max_alt_text=1024,
    edits_progress=True,
    buttons=True,
    max_upload_bytes=10 * 1024 * 1024,
)
