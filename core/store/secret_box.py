"""Encryption at rest for small secrets (users' horde API keys), with AES-256-GCM.

The key is 32 random bytes in URL-safe base64. It comes from the ``HORDEBOT_SECRET_KEY`` environment
variable, or from a key file that is created on first use, atomically and readable by its owner
only. Each sealed value is bound to a context (such as the user id) so a ciphertext copied onto
another row does not open. A wrong key gives a one-line error that says which key was used, never
garbage.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from core.errors import UserError

log = logging.getLogger(__name__)

ENV_VAR = "HORDEBOT_SECRET_KEY"
KEY_BYTES = 32
_NONCE_BYTES = 12
# First byte of every sealed value, so the format (or the key) can change later without guessing.
_VERSION = b"\x01"
_MAKE_ONE = (
    'python -c "import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())"'
)


class SecretKeyMismatch(UserError):
    """A sealed value does not open with this key: the key changed since it was written."""


class SecretBox:
    """Seals and opens short secrets with one AES-256-GCM key; never shows the key itself."""

    __slots__ = ("_aead", "fingerprint", "source")

    def __init__(self, key: bytes, *, source: str = "a generated key") -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"a secret key has {KEY_BYTES} bytes, not {len(key)}")
        self._aead = AESGCM(key)
        self.source = source
        # Safe to log: tells two keys apart without revealing either.
        self.fingerprint = hashlib.sha256(b"hordebot secret key id\x00" + key).hexdigest()[:12]

    def __repr__(self) -> str:
        return f"SecretBox(source={self.source!r}, fingerprint={self.fingerprint!r})"

    @classmethod
    def generate(cls) -> SecretBox:
        """A box with a fresh random key (tests, throwaway stores)."""
        return cls(secrets.token_bytes(KEY_BYTES))

    @staticmethod
    def new_key_text() -> str:
        """A fresh key written the way the env var and key file hold it."""
        return base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")

    @classmethod
    def from_text(cls, text: str, *, source: str) -> SecretBox:
        """A box from a key in URL-safe base64; ``source`` names where it came from for errors."""
        try:
            key = base64.b64decode(text.strip(), altchars=b"-_", validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != KEY_BYTES:
            raise UserError(
                f"{source} must hold {KEY_BYTES} random bytes in URL-safe base64",
                hint=f"make one with {_MAKE_ONE}",
            )
        return cls(key, source=source)

    @classmethod
    def from_env_or_file(
        cls, path: str | Path, *, environ: Mapping[str, str] | None = None
    ) -> SecretBox:
        """The key from ``$HORDEBOT_SECRET_KEY`` if set, else from ``path`` (made 0600 if new)."""
        env = os.environ if environ is None else environ
        text = env.get(ENV_VAR, "").strip()
        if text:
            return cls.from_text(text, source=f"${ENV_VAR}")
        file = Path(path)
        if not file.exists():
            _create_key_file(file, cls.new_key_text())
        mode = stat.S_IMODE(file.stat().st_mode)
        if mode & 0o077:
            raise UserError(
                f"secret key file {file} is readable by other users (mode {mode:o})",
                hint=f"run chmod 600 {file}",
            )
        return cls.from_text(file.read_text(encoding="ascii"), source=f"secret key file {file}")

    def seal(self, plaintext: str, *, context: str) -> bytes:
        """Encrypt ``plaintext``; it opens only with this key and the same ``context``."""
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode("utf-8"), context.encode("utf-8"))
        return _VERSION + nonce + sealed

    def open(self, token: bytes, *, context: str) -> str:
        """Decrypt a value from ``seal``; ``SecretKeyMismatch`` if this key did not seal it."""
        if token[:1] != _VERSION or len(token) < 1 + _NONCE_BYTES + 16:
            raise ValueError("not a value sealed by SecretBox")
        nonce, sealed = token[1 : 1 + _NONCE_BYTES], token[1 + _NONCE_BYTES :]
        try:
            plain = self._aead.decrypt(nonce, sealed, context.encode("utf-8"))
        except InvalidTag:
            raise SecretKeyMismatch(
                f"stored secrets do not open with {self.source} (key id {self.fingerprint}):"
                " it is not the key they were written with",
                hint="restore the original key, or clear the stored horde API keys",
            ) from None
        return plain.decode("utf-8")


def _create_key_file(file: Path, text: str) -> None:
    """Write a new key file with mode 0600, atomically: readers see no file or a whole key."""
    file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = file.with_name(f".{file.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)  # the umask can only narrow 0600, but be explicit
            os.write(fd, (text + "\n").encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            # link() never replaces an existing file: if another process won the race, keep its key.
            os.link(tmp, file)
        except FileExistsError:
            return
        log.info("created secret key file %s", file)
    finally:
        tmp.unlink(missing_ok=True)
