"""Result images as bytes: streamed from the horde's R2 links under a size cap, or base64-decoded.

A status answer's ``img`` is a presigned download URL (``r2: true``, valid 30 minutes) or the image
itself in base64 (``r2: false``). Downloads stream and stop as soon as the cap is passed, so a
wrong or hostile link cannot fill memory. The API key is never sent with these requests: the links
point at an object store, not at the horde.
"""

from __future__ import annotations

import base64
import binascii
from urllib.parse import urlsplit

import httpx

from core.horde.errors import ImageTooLarge, ImageUnavailable, ServerError

DEFAULT_MAX_IMAGE_BYTES = 16 * 1024 * 1024


def is_image_url(img: str) -> bool:
    """Whether a generation's ``img`` is a link (rather than base64 data)."""
    return urlsplit(img.strip()).scheme in ("http", "https")


def decode_base64_image(data: str, *, max_bytes: int = DEFAULT_MAX_IMAGE_BYTES) -> bytes:
    """The bytes of a base64 image (a ``data:`` prefix is tolerated), refusing more than the cap."""
    text = "".join(data.split())
    if text.startswith("data:"):
        text = text.partition(",")[2]
    if not text or text == "N/A":
        raise ImageUnavailable("the generation carries no image")
    # Every 4 base64 characters hold 3 bytes: refuse before decoding anything too big.
    if (len(text) // 4) * 3 - 2 > max_bytes:
        raise ImageTooLarge(f"base64 image above {max_bytes} bytes")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ImageUnavailable(f"the image is not valid base64: {exc}") from exc
    if len(raw) > max_bytes:
        raise ImageTooLarge(f"image of {len(raw)} bytes is above the {max_bytes}-byte cap")
    return raw


async def download_image(
    http: httpx.AsyncClient, url: str, *, max_bytes: int = DEFAULT_MAX_IMAGE_BYTES
) -> bytes:
    """GET an image link, streaming, and give up as soon as it passes ``max_bytes``."""
    if not is_image_url(url):
        raise ImageUnavailable("the image link is not an http(s) URL")
    async with http.stream("GET", url, follow_redirects=True) as response:
        if response.status_code >= 500:
            raise ServerError(
                f"image store answered {response.status_code}", status=response.status_code
            )
        if response.status_code != 200:
            raise ImageUnavailable(
                f"image store answered {response.status_code}", status=response.status_code
            )
        declared = response.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            raise ImageTooLarge(f"image of {declared} bytes is above the {max_bytes}-byte cap")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > max_bytes:
                raise ImageTooLarge(f"image passed the {max_bytes}-byte cap while downloading")
            chunks.append(chunk)
    return b"".join(chunks)
