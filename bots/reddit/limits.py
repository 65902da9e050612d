"""What one Reddit reply can carry: a gallery of 20 images, a 10 000-character comment."""

from __future__ import annotations

from core.contract import PlatformLimits

# Gallery captions are at most 180 characters; they carry the alt text.
GALLERY_CAPTION = 180
TITLE = 300

LIMITS = PlatformLimits(
    max_images=20,
    max_text=9_000,
    max_alt_text=GALLERY_CAPTION,
    edits_progress=False,
    buttons=False,
    max_upload_bytes=20 * 1024 * 1024,
)
