"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os

import pytest

from tests.support.paths import SHARED_MODEL_REFERENCE, SHARED_STYLES

# No test may reach a model hub; an accidental lookup fails at once instead of hanging.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def shared_styles_dir() -> str:
    """The pinned upstream style files (404 styles, 43 categories)."""
    assert SHARED_STYLES.is_dir(), f"missing reference data at {SHARED_STYLES}"
    return str(SHARED_STYLES)


@pytest.fixture(scope="session")
def shared_model_reference() -> str:
    """The pinned upstream model reference (161 models)."""
    assert SHARED_MODEL_REFERENCE.is_file(), f"missing reference data at {SHARED_MODEL_REFERENCE}"
    return str(SHARED_MODEL_REFERENCE)


@pytest.fixture(scope="session")
def stack_tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny SD1.5 model folder, built once, for worker child processes of bot-stack tests."""
    from worker_node.tiny_model import build_tiny_model

    return str(build_tiny_model(tmp_path_factory.mktemp("stack-tiny-model") / "model"))
