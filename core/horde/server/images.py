"""Finished images on disk and the signed links (the embedded stand-in for R2) that reach them.

The horde stores one ``<job id>.webp`` per finished job in a folder next to its database. Workers
PUT bytes to a signed upload link or submit base64; requesters get base64 or a signed download
link. Pillow is imported only when an image must be decoded, so the server starts fast.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import io
import os
from dataclasses import dataclass
from pathlib import Path

MAX_SOURCE_SIDE = 3072


class ImageInvalid(ValueError):
    """Bytes that are not a readable image."""


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """What the horde checks about a request's source image or mask."""

    width: int
    height: int
    has_alpha: bool


def decode_base64(text: str) -> bytes:
    """Strict base64 (a ``data:`` prefix and whitespace tolerated)."""
    if text.startswith("data:") and "," in text:
        text = text.split(",", 1)[1]
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ImageInvalid("not valid base64") from exc


def is_webp(data: bytes) -> bool:
    """Whether the bytes carry a WebP header."""
    return len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP"


def to_webp(data: bytes) -> bytes:
    """The image as WebP: WebP bytes pass unchanged, other formats are converted."""
    if is_webp(data):
        return data
    from PIL import Image  # heavy: imported only when converting

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            out = io.BytesIO()
            image.save(out, format="WEBP", quality=95)
            return out.getvalue()
    except Exception as exc:  # Pillow raises many types for bad input
        raise ImageInvalid("not a readable image") from exc


def inspect_source(data: bytes) -> SourceInfo:
    """Size and transparency of a source image or mask."""
    from PIL import Image  # heavy: imported only when a request carries an image

    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    except Exception as exc:  # Pillow raises many types for bad input
        raise ImageInvalid("not a readable image") from exc
    return SourceInfo(width, height, alpha)


class ImageStore:
    """The folder of finished images and the HMAC signatures of their links."""

    def __init__(self, folder: Path, secret: bytes) -> None:
        self.folder = folder
        self._secret = secret
        folder.mkdir(parents=True, exist_ok=True)

    def path(self, job_id: str) -> Path:
        """Where a job's image lives (job ids are server-made UUIDs, safe as names)."""
        return self.folder / f"{job_id}.webp"

    def sign(self, purpose: str, job_id: str) -> str:
        """The signature of a ``get`` or ``put`` link for a job."""
        mac = hmac.new(self._secret, f"{purpose}:{job_id}".encode(), hashlib.sha256)
        return mac.hexdigest()[:32]

    def verify(self, purpose: str, job_id: str, signature: str) -> bool:
        """Whether a link's signature is ours."""
        return hmac.compare_digest(self.sign(purpose, job_id), signature)

    async def save(self, job_id: str, data: bytes) -> None:
        """Store an image as WebP (converted when needed); raises ImageInvalid."""
        # In a thread even when small: creating a file costs ~1 ms of kernel time on a VM's ext4.
        await asyncio.to_thread(self._save, job_id, data)

    def _save(self, job_id: str, data: bytes) -> None:
        webp = to_webp(data)
        final = self.path(job_id)
        partial = final.with_suffix(".part")
        # Write then rename, so a killed process never leaves half an image under the real name.
        partial.write_bytes(webp)
        os.replace(partial, final)

    def exists(self, job_id: str) -> bool:
        """Whether the job's image was stored (uploaded or submitted); one stat call."""
        return self.path(job_id).is_file()

    async def read(self, job_id: str) -> bytes | None:
        """The stored WebP bytes, or None when missing."""
        return await asyncio.to_thread(self._read, job_id)

    def _read(self, job_id: str) -> bytes | None:
        try:
            return self.path(job_id).read_bytes()
        except FileNotFoundError:
            return None

    async def delete(self, job_ids: list[str]) -> None:
        """Forget the images of expired requests."""
        if job_ids:
            await asyncio.to_thread(self._delete, job_ids)

    def _delete(self, job_ids: list[str]) -> None:
        for job_id in job_ids:
            self.path(job_id).unlink(missing_ok=True)


@dataclass(frozen=True, slots=True)
class Links:
    """Signed upload and download links for job images, under one public base URL."""

    base: str
    store: ImageStore

    def _link(self, purpose: str, job_id: str) -> str:
        return f"{self.base}/v2/_r2/{job_id}.webp?sig={self.store.sign(purpose, job_id)}"

    def upload(self, job_id: str) -> str:
        """Where a worker PUTs a job's WebP bytes (the pop's ``r2_upload``)."""
        return self._link("put", job_id)

    def download(self, job_id: str) -> str:
        """Where a requester GETs a finished image (status ``img`` when ``r2`` is true)."""
        return self._link("get", job_id)
