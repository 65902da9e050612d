"""What one Lemmy comment can show: markdown images by URL, long text, no buttons."""

from __future__ import annotations

from core.contract import PlatformLimits

# Lemmy allows 10 000 characters per comment; the caption keeps well inside so the image
# markdown, spoiler block and marker always fit.
LIMITS = PlatformLimits(
    max_images=10,
    max_text=2000,
    max_alt_text=300,
    edits_progress=False,
    buttons=False,
    # pict-rs's default upload limit.
    max_upload_bytes=20 * 1024 * 1024,
)
