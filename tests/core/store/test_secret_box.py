"""The secret box: sealed values open only with the same key and context; key files are 0600."""

from __future__ import annotations

import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from core.errors import UserError
from core.store.secret_box import ENV_VAR, SecretBox, SecretKeyMismatch


def test_sealed_value_opens_with_same_key_and_context() -> None:
    box = SecretBox.generate()
    sealed = box.seal("my-horde-key", context="user:1")
    assert b"my-horde-key" not in sealed
    assert box.open(sealed, context="user:1") == "my-horde-key"
    # A fresh nonce each time: equal keys do not give equal ciphertexts.
    assert box.seal("my-horde-key", context="user:1") != sealed


def test_value_sealed_for_one_user_does_not_open_for_another() -> None:
    box = SecretBox.generate()
    sealed = box.seal("my-horde-key", context="user:1")
    with pytest.raises(SecretKeyMismatch):
        box.open(sealed, context="user:2")


def test_wrong_key_is_a_clear_one_line_error_not_garbage() -> None:
    sealed = SecretBox.generate().seal("my-horde-key", context="c")
    other = SecretBox.from_text(SecretBox.new_key_text(), source=f"${ENV_VAR}")
    with pytest.raises(SecretKeyMismatch) as caught:
        other.open(sealed, context="c")
    message = str(caught.value)
    assert f"${ENV_VAR}" in message
    assert other.fingerprint in message
    assert "\n" not in message


def test_env_var_wins_over_key_file(tmp_path: Path) -> None:
    text = SecretBox.new_key_text()
    from_env = SecretBox.from_env_or_file(tmp_path / "key", environ={ENV_VAR: text})
    assert not (tmp_path / "key").exists()
    assert from_env.fingerprint == SecretBox.from_text(text, source="x").fingerprint


def test_key_file_is_created_0600_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "store.key"
    old_umask = os.umask(0)  # the most permissive umask must still give 0600
    try:
        first = SecretBox.from_env_or_file(path, environ={})
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = SecretBox.from_env_or_file(path, environ={})
    assert again.fingerprint == first.fingerprint
    assert again.open(first.seal("k", context="c"), context="c") == "k"
    assert [p.name for p in path.parent.iterdir()] == ["store.key"]  # no temp file left


def test_racing_processes_end_up_with_one_key(tmp_path: Path) -> None:
    path = tmp_path / "store.key"
    with ThreadPoolExecutor(max_workers=8) as pool:
        boxes = list(pool.map(lambda _: SecretBox.from_env_or_file(path, environ={}), range(16)))
    assert len({box.fingerprint for box in boxes}) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["store.key"]


def test_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "store.key"
    path.write_text(SecretBox.new_key_text())
    path.chmod(0o644)
    with pytest.raises(UserError, match="chmod 600"):
        SecretBox.from_env_or_file(path, environ={})


@pytest.mark.parametrize("bad", ["short", "x" * 44, SecretBox.new_key_text()[:-4]])
def test_malformed_key_says_how_to_make_one(bad: str) -> None:
    with pytest.raises(UserError) as caught:
        SecretBox.from_env_or_file("/nonexistent/never-read", environ={ENV_VAR: bad})
    assert "32 random bytes" in str(caught.value)
    assert bad not in str(caught.value)


def test_repr_shows_no_key() -> None:
    text = SecretBox.new_key_text()
    box = SecretBox.from_text(text, source="test")
    assert text not in repr(box)
    assert box.fingerprint in repr(box)
