"""Commands per second through the whole pure path: parse, expand the style, build the body.

A mix of realistic commands (legacy form, flags, categories drawn into several styles, LCM,
LoRAs, inline TIs, structured input) runs against the pinned upstream library and model
reference in ``../shared/data`` when present, else against the bundled fallbacks. Each stage is
also timed alone, so a slow stage stands out: parse only, parse + build, and the same from
structured (Discord-style) input.

Run: ``.venv/bin/python bench/grammar.py``. Prints commands/s and requests/s (a category with
``--n 4`` makes four requests) per stage, best of five rounds.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.catalog import Catalog
from core.errors import UserError
from core.model_reference import fallback_model_reference, load_model_reference
from core.policy import NSFW_ALLOWED, SFW
from styles.library import fallback_library, load_library

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
ROUNDS = 5
REPEAT = 200

TEXTS = [
    "draw me a lighthouse on a cliff at dusk",
    "draw for us a cozy cabin in the snow style: a midsummer night's dream ### people, text",
    "/dream a red fox in a misty forest --style featured --n 4",
    "a portrait of an old sailor --ar 2:3 --steps 25 --cfg 6.5 --seed 1234",
    "a neon city street at night --model AlbedoBase XL (SDXL) --lcm --no blur, watermark",
    "draw me a dragon made of glass style: faetastic (flux) --n 2",
    "a bowl of fruit, (embedding:7808:0.8) --lora 12345:0.6 --lora v:67890 --ti neg:4629",
    "a knight —ar 16:9 —steps 30 --karras --clip-skip 2 --model Pony Diffusion XL",
    "draw us a steampunk airship over london style: steampunk ### blurry",
    "an astronaut riding a horse --style anime --n 3 --tiling --hires",
]
OPTIONS: list[dict[str, Any]] = [
    {"prompt": "a red fox in a misty forest", "style": "featured", "n": 4},
    {"prompt": "a lighthouse", "negative": "text", "ar": "16:9", "steps": 25, "cfg": 6.5},
    {"prompt": "a neon street", "model": "AlbedoBase XL (SDXL)", "lcm": True, "lora": "12345:0.5"},
]


def load_catalog() -> Catalog:
    """The pinned upstream data when it is there, else the bundled fallbacks."""
    styles = SHARED / "horde-styles"
    models = SHARED / "model-reference" / "stable_diffusion.json"
    if styles.is_dir() and models.is_file():
        cache = Path("/nonexistent-cache")  # local sources are never cached
        return Catalog(
            load_library(str(styles), cache, 0), load_model_reference(str(models), cache, 0)
        )
    return Catalog(fallback_library(), fallback_model_reference())


def usable_texts(catalog: Catalog) -> list[str]:
    """The mix, less commands this library cannot serve (the fallback has fewer styles)."""
    usable = []
    for text in TEXTS:
        try:
            catalog.dream(text, policy=SFW, rng=random.Random(0))
        except UserError as exc:
            print(f"skipped (not in this library): {text!r}: {exc}")
        else:
            usable.append(text)
    return usable


def best_rate(work: Callable[[], int], count: int) -> tuple[float, float]:
    """(commands/s, requests/s), best of ``ROUNDS`` runs of ``work`` (which returns requests)."""
    best = float("inf")
    requests = 0
    for _ in range(ROUNDS):
        start = time.perf_counter()
        requests = work()
        best = min(best, time.perf_counter() - start)
    return count / best, requests / best


def main() -> None:
    catalog = load_catalog()
    texts = usable_texts(catalog)
    rng = random.Random(0)
    print(
        f"library: {len(catalog.library.styles)} styles ({catalog.library.origin}); "
        f"reference: {len(catalog.reference)} models ({catalog.reference.origin}); "
        f"{len(texts)} commands in the mix, {REPEAT} rounds each"
    )

    def parse_only() -> int:
        for _ in range(REPEAT):
            for text in texts:
                catalog.parse(text, bare_is_dream=True)
        return REPEAT * len(texts)

    def parse_and_build() -> int:
        made = 0
        for i in range(REPEAT):
            for text in texts:
                policy = SFW if i % 2 else NSFW_ALLOWED
                made += len(catalog.dream(text, policy=policy, rng=rng))
        return made

    def structured() -> int:
        made = 0
        for _ in range(REPEAT):
            for options in OPTIONS:
                spec = catalog.parse_options("dream", options).spec
                assert spec is not None
                made += len(catalog.build(spec, policy=SFW, rng=rng))
        return made

    stages: list[tuple[str, Callable[[], int], int]] = [("parse only", parse_only, len(texts))]
    stages.append(("parse + expand + build", parse_and_build, len(texts)))
    if catalog.library.origin != "fallback":
        stages.append(("structured + build", structured, len(OPTIONS)))
    for name, work, per_round in stages:
        commands, requests = best_rate(work, REPEAT * per_round)
        print(f"{name:<24} {commands:>10,.0f} commands/s  {requests:>10,.0f} requests/s")


if __name__ == "__main__":
    main()
