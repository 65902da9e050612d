"""Tiny random-weight Stable Diffusion models, LoRAs and TIs for offline demos and tests.

The worker's real loading and inference code must be testable on a 2-core machine with no network,
so this module builds models with the real SD1.5 and SDXL *architectures* (same component classes,
same file layout, same key names) at a few million parameters. Everything is built in code from a
seed: the tokenizer vocabulary too, so nothing is downloaded and nothing is copied from elsewhere.

``write_single_file`` writes the original (LDM) single-file checkpoint layout that community SD1.5
checkpoints use, so the worker's ``from_single_file`` path is exercised exactly as in production.
Torch, diffusers and transformers are imported inside the functions: importing this module is cheap.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from worker_node.pipelines import heavy

if TYPE_CHECKING:
    import torch

Baseline = Literal["stable diffusion 1", "stable_diffusion_xl"]
SD1: Baseline = "stable diffusion 1"
SDXL: Baseline = "stable_diffusion_xl"

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
# Whole-word tokens so that demo prompts tokenize to a few ids instead of one id per letter.
TINY_WORDS: tuple[str, ...] = (
    "a",
    "an",
    "the",
    "of",
    "on",
    "in",
    "with",
    "photo",
    "painting",
    "portrait",
    "landscape",
    "cat",
    "dog",
    "fox",
    "horse",
    "astronaut",
    "riding",
    "mars",
    "tree",
    "house",
    "sky",
    "sea",
    "red",
    "blue",
    "green",
    "blurry",
    "ugly",
    "embedding",
)
# SD1.5's noise schedule; the engine swaps in the sampler each job asks for.
_SCHEDULER_CONFIG: dict[str, Any] = {
    "_class_name": "DDIMScheduler",
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "prediction_type": "epsilon",
}
_CLIP_HIDDEN = 32
_CLIP_LAYERS = 5


def _byte_symbols() -> list[str]:
    table: dict[int, str] = heavy("transformers.convert_slow_tokenizer").bytes_to_unicode()
    return list(table.values())


def _segment(pieces: list[str], ranks: dict[tuple[str, str], int]) -> list[str]:
    """How byte-pair encoding splits a word: merge the best-ranked adjacent pair while any is."""
    pieces = list(pieces)
    while True:
        pairs = [(ranks[p], i) for i, p in enumerate(itertools.pairwise(pieces)) if p in ranks]
        if not pairs:
            return pieces
        _, at = min(pairs)
        pieces[at : at + 2] = [pieces[at] + pieces[at + 1]]


def tiny_vocab() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A byte-level BPE vocabulary (CLIP's scheme) with whole-word merges for ``TINY_WORDS``."""
    symbols = _byte_symbols()
    tokens = symbols + [s + "</w>" for s in symbols]
    ranks: dict[tuple[str, str], int] = {}
    for word in TINY_WORDS:
        start = [*word[:-1], word[-1] + "</w>"]
        # add merges until the word is one token under every merge known so far; later merges
        # rank lower, so they never change how an earlier word splits
        while len(pieces := _segment(start, ranks)) > 1:
            ranks[(pieces[0], pieces[1])] = len(ranks)
            tokens.append(pieces[0] + pieces[1])
    tokens += [BOS, EOS]
    merges = sorted(ranks, key=ranks.__getitem__)
    return {token: index for index, token in enumerate(tokens)}, merges


def tiny_tokenizer(pad_token: str = EOS) -> Any:
    """A ``CLIPTokenizer`` built in memory; SDXL's second one pads with ``!`` as CLIP-G does."""
    vocab, merges = tiny_vocab()
    return heavy("transformers").CLIPTokenizer(
        vocab=vocab, merges=merges, pad_token=pad_token, model_max_length=77
    )


def _text_config(tokenizer: Any, projection: bool) -> Any:
    return heavy("transformers").CLIPTextConfig(
        hidden_size=_CLIP_HIDDEN,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=_CLIP_LAYERS,
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        projection_dim=_CLIP_HIDDEN if projection else 512,
        hidden_act="gelu" if projection else "quick_gelu",
    )


def _vae() -> Any:
    # Four blocks downsample 8x, as in real SD, so a 512x512 image is a 64x64 latent and the
    # demo stack draws at the horde's default size in about a second on a CPU.
    return heavy("diffusers").AutoencoderKL(
        block_out_channels=(16, 16, 32, 32),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=16,
        sample_size=64,
    )


def _sd1_components() -> dict[str, Any]:
    diffusers, transformers = heavy("diffusers"), heavy("transformers")
    tokenizer = tiny_tokenizer()
    unet = diffusers.UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=2,
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=_CLIP_HIDDEN,
    )
    return {
        "unet": unet,
        "vae": _vae(),
        "text_encoder": transformers.CLIPTextModel(_text_config(tokenizer, projection=False)),
        "tokenizer": tokenizer,
        "scheduler": diffusers.DDIMScheduler.from_config(_SCHEDULER_CONFIG),
    }


def _sdxl_components() -> dict[str, Any]:
    diffusers, transformers = heavy("diffusers"), heavy("transformers")
    tokenizer = tiny_tokenizer()
    tokenizer_2 = tiny_tokenizer(pad_token="!")  # noqa: S106 - a padding token, not a secret
    unet = diffusers.UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=2,
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 2),
        # six size/crop numbers embedded at 8 each, plus the pooled CLIP-G projection
        projection_class_embeddings_input_dim=6 * 8 + _CLIP_HIDDEN,
        cross_attention_dim=2 * _CLIP_HIDDEN,
    )
    scheduler_config = {**_SCHEDULER_CONFIG, "_class_name": "EulerDiscreteScheduler"}
    for key in ("clip_sample", "set_alpha_to_one"):
        scheduler_config.pop(key)
    return {
        "unet": unet,
        "vae": _vae(),
        "text_encoder": transformers.CLIPTextModel(_text_config(tokenizer, projection=False)),
        "text_encoder_2": transformers.CLIPTextModelWithProjection(
            _text_config(tokenizer_2, projection=True)
        ),
        "tokenizer": tokenizer,
        "tokenizer_2": tokenizer_2,
        "scheduler": diffusers.EulerDiscreteScheduler.from_config(scheduler_config),
    }


def build_tiny_pipeline(seed: int = 0, baseline: Baseline = SD1) -> Any:
    """A tiny random-weight pipeline in memory; the same seed gives the same weights."""
    import torch

    diffusers = heavy("diffusers")
    torch.manual_seed(seed)
    if baseline == SDXL:
        return diffusers.StableDiffusionXLPipeline(**_sdxl_components())
    return diffusers.StableDiffusionPipeline(
        **_sd1_components(),
        safety_checker=None,
        feature_extractor=None,
        image_encoder=None,
        requires_safety_checker=False,
    )


def build_tiny_model(path: Path, seed: int = 0, baseline: Baseline = SD1) -> Path:
    """Write a tiny model as a diffusers folder (``model_index.json``, ``unet/`` ...)."""
    pipe = build_tiny_pipeline(seed, baseline)
    path.mkdir(parents=True, exist_ok=True)
    pipe.save_pretrained(path, safe_serialization=True)
    return path


# ---- original (LDM) single-file layout -----------------------------------------------------

_UNET_FIXED = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
}
_RESNET_PARTS = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
_VAE_ATTENTION_PARTS = {
    "group_norm": "norm",
    "to_q": "q",
    "to_k": "k",
    "to_v": "v",
    "to_out.0": "proj_out",
}


def _index(text: str) -> tuple[int, str]:
    """``"3.norm1.weight"`` -> ``(3, "norm1.weight")``."""
    number, _, rest = text.partition(".")
    return int(number), rest


def _split(key: str, prefix: str) -> tuple[int, str] | None:
    """The block number and the rest of ``key`` after ``prefix``, or None without that prefix."""
    return _index(key.removeprefix(prefix)) if key.startswith(prefix) else None


def _resnet_part(rest: str) -> str:
    name, _, param = rest.rpartition(".")
    return f"{_RESNET_PARTS[name]}.{param}"


def _unet_key(key: str, config: Mapping[str, Any]) -> str:
    """Map one diffusers UNet key to its LDM name (the inverse of diffusers' own conversion)."""
    module, _, param = key.rpartition(".")
    if module in _UNET_FIXED:
        return f"{_UNET_FIXED[module]}.{param}"
    per_block = int(config["layers_per_block"])
    if (found := _split(key, "down_blocks.")) is not None:
        block, rest = found
        kind, _, rest = rest.partition(".")
        if kind == "downsamplers":
            return f"input_blocks.{(per_block + 1) * (block + 1)}.0.op.{param}"
        layer, rest = _index(rest)
        index = (per_block + 1) * block + layer + 1
        if kind == "resnets":
            return f"input_blocks.{index}.0.{_resnet_part(rest)}"
        return f"input_blocks.{index}.1.{rest}"
    if (found := _split(key, "up_blocks.")) is not None:
        block, rest = found
        kind, _, rest = rest.partition(".")
        if kind == "upsamplers":
            index = (per_block + 1) * block + per_block
            has_attention = "CrossAttn" in config["up_block_types"][block]
            return f"output_blocks.{index}.{2 if has_attention else 1}.conv.{param}"
        layer, rest = _index(rest)
        index = (per_block + 1) * block + layer
        if kind == "resnets":
            return f"output_blocks.{index}.0.{_resnet_part(rest)}"
        return f"output_blocks.{index}.1.{rest}"
    if key.startswith("mid_block.resnets."):
        layer, rest = _index(key.removeprefix("mid_block.resnets."))
        return f"middle_block.{2 * layer}.{_resnet_part(rest)}"
    if key.startswith("mid_block.attentions.0."):
        return "middle_block.1." + key.removeprefix("mid_block.attentions.0.")
    raise ValueError(f"no LDM name for UNet key {key}")


def _vae_key(key: str, config: Mapping[str, Any]) -> str:
    """Map one diffusers VAE key to its LDM name."""
    side, _, rest = key.partition(".")
    if side not in {"encoder", "decoder"}:
        return key  # quant_conv and post_quant_conv keep their names
    if rest.startswith("conv_norm_out."):
        return f"{side}.norm_out.{rest.removeprefix('conv_norm_out.')}"
    if rest.startswith("mid_block.resnets."):
        layer, tail = _index(rest.removeprefix("mid_block.resnets."))
        return f"{side}.mid.block_{layer + 1}.{tail.replace('conv_shortcut', 'nin_shortcut')}"
    if rest.startswith("mid_block.attentions.0."):
        module, _, param = rest.removeprefix("mid_block.attentions.0.").rpartition(".")
        return f"{side}.mid.attn_1.{_VAE_ATTENTION_PARTS[module]}.{param}"
    blocks = "down_blocks." if side == "encoder" else "up_blocks."
    found = _split(rest, blocks)
    if found is None:
        return key  # conv_in, conv_out
    block, tail = found
    if side == "decoder":
        block = len(config["up_block_types"]) - 1 - block
    stage = "down" if side == "encoder" else "up"
    if tail.startswith(("downsamplers.0.", "upsamplers.0.")):
        sampler = "downsample" if side == "encoder" else "upsample"
        return f"{side}.{stage}.{block}.{sampler}.{tail.split('.', 2)[2]}"
    layer, tail = _index(tail.removeprefix("resnets."))
    return f"{side}.{stage}.{block}.block.{layer}.{tail.replace('conv_shortcut', 'nin_shortcut')}"


def _ldm_items(pipe: Any) -> Iterator[tuple[str, torch.Tensor]]:
    unet_config = pipe.unet.config
    for key, value in pipe.unet.state_dict().items():
        yield "model.diffusion_model." + _unet_key(key, unet_config), value
    vae_config = pipe.vae.config
    for key, value in pipe.vae.state_dict().items():
        ldm = _vae_key(key, vae_config)
        # the original VAE attention uses 1x1 convolutions where diffusers uses linear layers
        if ".mid.attn_1." in ldm and ldm.endswith(".weight") and value.ndim == 2:
            value = value[:, :, None, None]
        yield "first_stage_model." + ldm, value
    for key, value in pipe.text_encoder.state_dict().items():
        name = key if key.startswith("text_model.") else "text_model." + key
        yield "cond_stage_model.transformer." + name, value


def write_single_file(model_dir: Path, out: Path) -> Path:
    """Write an SD1 diffusers folder as one original-layout ``.safetensors`` checkpoint."""
    from safetensors.torch import save_file

    pipe = heavy("diffusers").StableDiffusionPipeline.from_pretrained(
        model_dir, local_files_only=True
    )
    state = {key: value.contiguous() for key, value in _ldm_items(pipe)}
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out), metadata={"format": "pt"})
    return out


# ---- adapters ------------------------------------------------------------------------------


def _model_index(model_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((model_dir / "model_index.json").read_text("utf-8"))
    return data


def _config(model_dir: Path, component: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((model_dir / component / "config.json").read_text("utf-8"))
    return data


def write_tiny_lora(model_dir: Path, out: Path, seed: int = 1, rank: int = 4) -> Path:
    """A random LoRA in kohya naming (as CivitAI serves them) for the tiny model at ``model_dir``.

    It touches the UNet attention projections and every text encoder's attention, so both the
    ``model`` and the ``clip`` strength of a horde LoRA have something to scale.
    """
    import torch
    from safetensors.torch import save_file

    diffusers, transformers = heavy("diffusers"), heavy("transformers")
    generator = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}

    def add(prefix: str, name: str, layer: torch.nn.Linear) -> None:
        key = f"{prefix}_{name.replace('.', '_')}"
        state[f"{key}.lora_down.weight"] = torch.randn(rank, layer.in_features, generator=generator)
        state[f"{key}.lora_up.weight"] = (
            torch.randn(layer.out_features, rank, generator=generator) * 0.5
        )
        state[f"{key}.alpha"] = torch.tensor(float(rank))

    with torch.device("meta"):
        unet = diffusers.UNet2DConditionModel.from_config(_config(model_dir, "unet"))
    for name, module in unet.named_modules():
        if name.endswith(("to_q", "to_k", "to_v", "to_out.0")) and ".attn" in name:
            add("lora_unet", name, module)
    encoders = [e for e in ("text_encoder", "text_encoder_2") if e in _model_index(model_dir)]
    for number, encoder in enumerate(encoders, start=1):
        prefix = "lora_te" if len(encoders) == 1 else f"lora_te{number}"
        config = transformers.CLIPTextConfig.from_pretrained(
            model_dir / encoder, local_files_only=True
        )
        with torch.device("meta"):
            model = transformers.CLIPTextModel(config)
        for name, module in model.named_modules():
            if name.endswith(("q_proj", "k_proj", "v_proj", "out_proj")):
                full = name if name.startswith("text_model.") else "text_model." + name
                add(prefix, full, module)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out))
    return out


def write_tiny_ti(model_dir: Path, out: Path, seed: int = 2, vectors: int = 2) -> Path:
    """A random textual inversion for the tiny model, in the layout CivitAI serves.

    SD1 embeddings are one ``emb_params`` tensor; SDXL embeddings carry ``clip_l`` and ``clip_g``.
    """
    import torch
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(seed)
    hidden = int(_config(model_dir, "text_encoder")["hidden_size"])
    if "text_encoder_2" in _model_index(model_dir):
        hidden_2 = int(_config(model_dir, "text_encoder_2")["hidden_size"])
        state = {
            "clip_l": torch.randn(vectors, hidden, generator=generator),
            "clip_g": torch.randn(vectors, hidden_2, generator=generator),
        }
    else:
        state = {"emb_params": torch.randn(vectors, hidden, generator=generator)}
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out))
    return out
