"""The tiny model: deterministic, real SD layouts, loadable offline (folder and single file)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bots.app import main
from tests.support.paths import REPO
from worker_node.pipelines import ModelSpec, load_pipeline
from worker_node.tiny_model import (
    BOS,
    EOS,
    SD1,
    TINY_WORDS,
    build_tiny_model,
    tiny_tokenizer,
)

pytestmark = [
    # diffusers 0.42 schedulers hand torch tensors to numpy, and numpy 2.4 deprecates the old
    # signatures of torch's __array__/__array_wrap__. Not ours to change; harmless.
    pytest.mark.filterwarnings(
        "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
    ),
    pytest.mark.filterwarnings("ignore:__array_wrap__ must accept context:DeprecationWarning"),
]


def weights_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for file in sorted(folder.rglob("*.safetensors")):
        digest.update(file.read_bytes())
    return digest.hexdigest()


def test_model_folder_has_the_diffusers_layout(tiny_model_dir: Path) -> None:
    for part in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        assert (tiny_model_dir / part).is_dir(), part
    assert (tiny_model_dir / "model_index.json").is_file()


def test_same_seed_same_weights_other_seed_other_weights(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    again = build_tiny_model(tmp_path / "again", seed=0)
    other = build_tiny_model(tmp_path / "other", seed=1)
    assert weights_digest(again) == weights_digest(tiny_model_dir)
    assert weights_digest(other) != weights_digest(tiny_model_dir)


def test_tokenizer_keeps_demo_words_whole_and_pads_to_77() -> None:
    tokenizer = tiny_tokenizer()
    tokens = tokenizer.convert_ids_to_tokens(tokenizer("a photo of a cat").input_ids)
    assert tokens == [BOS, "a</w>", "photo</w>", "of</w>", "a</w>", "cat</w>", EOS]
    padded = tokenizer("astronaut", padding="max_length", max_length=77).input_ids
    assert len(padded) == 77
    assert all(
        tokenizer.convert_ids_to_tokens(tokenizer(w).input_ids)[1] == w + "</w>" for w in TINY_WORDS
    )
    # unknown words still tokenize, byte by byte
    assert len(tokenizer("zyx").input_ids) == 5


def test_sdxl_second_tokenizer_pads_with_exclamation_mark(tiny_sdxl_dir: Path) -> None:
    pipe = load_pipeline(ModelSpec("x", tiny_sdxl_dir, "stable_diffusion_xl"), "cpu", torch.float32)
    assert pipe.tokenizer_2.pad_token == "!"
    assert pipe.tokenizer.pad_token == EOS
    assert type(pipe).__name__ == "StableDiffusionXLPipeline"


def test_single_file_loads_offline_with_identical_weights(
    tiny_model_dir: Path, tiny_single_file: Path
) -> None:
    folder = load_pipeline(ModelSpec("f", tiny_model_dir, SD1), "cpu", torch.float32)
    single = load_pipeline(
        ModelSpec("s", tiny_single_file, SD1, config=tiny_model_dir), "cpu", torch.float32
    )
    for part in ("unet", "vae", "text_encoder"):
        mine, theirs = getattr(single, part).state_dict(), getattr(folder, part).state_dict()
        assert mine.keys() == theirs.keys(), part
        assert all(torch.equal(mine[k], theirs[k]) for k in mine), part


def test_single_file_uses_the_original_key_layout(tiny_single_file: Path) -> None:
    from safetensors import safe_open

    with safe_open(str(tiny_single_file), framework="pt") as handle:
        keys = set(handle.keys())
    assert "model.diffusion_model.input_blocks.0.0.weight" in keys
    assert "model.diffusion_model.middle_block.1.proj_in.weight" in keys
    assert "first_stage_model.decoder.mid.attn_1.q.weight" in keys
    assert "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight" in keys
    assert not any(k.startswith(("unet.", "vae.", "down_blocks")) for k in keys)


def test_cli_writes_folder_and_single_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, single = tmp_path / "model", tmp_path / "model.safetensors"
    code = main(["worker", "tiny-model", str(folder), "--single-file", str(single), "--seed", "3"])
    assert code == 0
    assert (folder / "model_index.json").is_file()
    assert single.is_file()
    out = capsys.readouterr().out
    assert f'path = "{folder.resolve()}"' in out
    assert f'config = "{folder.resolve()}"' in out
    assert weights_digest(folder) == weights_digest(build_tiny_model(tmp_path / "same", seed=3))


def test_cli_refuses_a_non_empty_folder_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    assert main(["worker", "tiny-model", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ")
    assert "not empty" in err
    assert "\n" not in err
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_cli_refuses_single_file_for_sdxl(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["worker", "tiny-model", str(tmp_path / "m"), "--sdxl", "--single-file", "x.safetensors"]
    assert main(args) == 2
    assert "SD1.5" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_cli_help_does_not_import_torch() -> None:
    code = (
        "import sys; from bots.app import build_parser; build_parser();"
        "print(','.join(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert out.stdout.strip() == ""
