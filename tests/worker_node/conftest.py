"""Tiny models, adapters and an engine for the worker's tests, built once per session.

Everything comes from ``worker_node.tiny_model`` (random weights from fixed seeds, a tokenizer built
in code), so the worker's real loading and inference code runs offline in seconds. Other helpers'
tests reuse ``tiny_model_dir``, ``tiny_lora_file`` and ``tiny_ti_file`` (the fake CivitAI serves
the last two).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from core.horde.wire import PopResponse
from worker_node.engine import Engine, ModelSpec
from worker_node.tiny_model import (
    SD1,
    SDXL,
    build_tiny_model,
    write_single_file,
    write_tiny_lora,
    write_tiny_ti,
)

TINY_SD = "tiny-sd"
TINY_SDXL = "tiny-sdxl"
TINY_SINGLE = "tiny-sd-single"

MakeJob = Callable[..., PopResponse]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny SD1.5-architecture diffusers folder (seed 0)."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-sd"), seed=0, baseline=SD1)


@pytest.fixture(scope="session")
def tiny_sdxl_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny SDXL-architecture diffusers folder (seed 0)."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-sdxl"), seed=0, baseline=SDXL)


@pytest.fixture(scope="session")
def tiny_single_file(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny SD1.5 model as one original-layout ``.safetensors`` checkpoint."""
    return write_single_file(tiny_model_dir, tmp_path_factory.mktemp("single") / "tiny.safetensors")


@pytest.fixture(scope="session")
def tiny_lora_file(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random kohya-format LoRA (UNet and text encoder) for the tiny SD1.5 model."""
    return write_tiny_lora(
        tiny_model_dir, tmp_path_factory.mktemp("lora") / "tiny-lora.safetensors"
    )


@pytest.fixture(scope="session")
def tiny_ti_file(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random two-vector textual inversion (``emb_params``) for the tiny SD1.5 model."""
    return write_tiny_ti(tiny_model_dir, tmp_path_factory.mktemp("ti") / "tiny-ti.safetensors")


@pytest.fixture(scope="session")
def tiny_sdxl_lora_file(tiny_sdxl_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random kohya-format LoRA for the tiny SDXL model (both text encoders)."""
    return write_tiny_lora(tiny_sdxl_dir, tmp_path_factory.mktemp("lora-xl") / "lora.safetensors")


@pytest.fixture(scope="session")
def tiny_sdxl_ti_file(tiny_sdxl_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random SDXL textual inversion (``clip_l`` and ``clip_g``)."""
    return write_tiny_ti(tiny_sdxl_dir, tmp_path_factory.mktemp("ti-xl") / "ti.safetensors")


@pytest.fixture(scope="session")
def tiny_engine(tiny_model_dir: Path, tiny_sdxl_dir: Path, tiny_single_file: Path) -> Engine:
    """One CPU engine serving the tiny models, shared by the session: it must reset per job."""
    return Engine(
        [
            ModelSpec(TINY_SD, tiny_model_dir, SD1),
            ModelSpec(TINY_SDXL, tiny_sdxl_dir, SDXL),
            ModelSpec(TINY_SINGLE, tiny_single_file, SD1, config=tiny_model_dir),
        ],
        device="cpu",
        resident_models=3,
    )


@pytest.fixture
def make_job() -> MakeJob:
    """A popped job for the tiny models: 64x64, 2 steps, seed 42 unless overridden."""

    def make(
        model: str = TINY_SD, ids: tuple[str, ...] = ("job-1",), **payload: Any
    ) -> PopResponse:
        body: dict[str, Any] = {
            "prompt": "a photo of a cat ### blurry",
            "ddim_steps": 2,
            "width": 64,
            "height": 64,
            "seed": 42,
            "sampler_name": "k_euler",
            "cfg_scale": 5.0,
            "n_iter": len(ids),
            **payload,
        }
        return PopResponse(id=ids[0], ids=list(ids), model=model, payload=body)

    return make


def pixels(webp: bytes) -> np.ndarray[Any, np.dtype[np.int16]]:
    """A WebP decoded to an int array (so differences do not wrap around)."""
    with Image.open(io.BytesIO(webp)) as image:
        assert image.format == "WEBP"
        return np.asarray(image.convert("RGB"), dtype=np.int16)


def max_diff(a: bytes, b: bytes) -> int:
    """The largest per-channel difference between two WebP images of the same size."""
    return int(np.abs(pixels(a) - pixels(b)).max())
