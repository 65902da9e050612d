"""Images in and out of the worker: WebP for the horde, source images decoded, blank stand-ins.

The horde stores and serves WebP; reGen encodes at quality 95, and so do we. A blank image stands
in for one the safety check withholds, so a censored job still returns one image per id.
"""

from __future__ import annotations

import io

from PIL import Image, UnidentifiedImageError

WEBP_QUALITY = 95
# PIL's WebP effort 0..6: 6 is smallest and slowest; 4 costs a fraction of 6 for a few % more bytes.
WEBP_METHOD = 4


class SourceImageError(ValueError):
    """A job's source image cannot be read; the message says why in one line."""


def to_webp(image: Image.Image, quality: int = WEBP_QUALITY) -> bytes:
    """Encode an image as WebP bytes (RGB, no metadata)."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="WEBP", quality=quality, method=WEBP_METHOD)
    return buffer.getvalue()


def blank_image(width: int, height: int) -> Image.Image:
    """A black RGB image of the given size."""
    return Image.new("RGB", (width, height), (0, 0, 0))


def blank_webp(width: int, height: int) -> bytes:
    """A black WebP of the given size, e.g. in place of a censored image."""
    return to_webp(blank_image(width, height))


def decode_source(data: bytes, width: int, height: int) -> Image.Image:
    """Decode a job's source image and fit it to the job's size as RGB."""
    try:
        with Image.open(io.BytesIO(data)) as opened:
            image = opened.convert("RGB")
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError) as exc:
        raise SourceImageError(f"source image is not a readable image ({exc})") from None
    if image.size != (width, height):
        image = image.resize((width, height), Image.Resampling.LANCZOS)
    return image
