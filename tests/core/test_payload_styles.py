"""Every style and category of the pinned upstream library builds valid horde bodies."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from core.catalog import Catalog
from core.errors import UserError
from core.horde.wire import MAX_LORAS, GenerationInput
from core.model_reference import Baseline, load_model_reference, min_pixels
from core.policy import SFW
from core.request import RequestSpec
from styles.expand import expand_category
from styles.library import load_library

PROMPT = "a lighthouse on a cliff at dusk"
NEGATIVE = "fog"


@pytest.fixture(scope="module")
def catalog(shared_styles_dir: str, shared_model_reference: str, tmp_path_factory: Any) -> Catalog:
    cache = Path(tmp_path_factory.mktemp("cache"))
    return Catalog(
        library=load_library(shared_styles_dir, cache, 0),
        reference=load_model_reference(shared_model_reference, cache, 0),
    )


def test_the_pinned_library_is_complete(catalog: Catalog) -> None:
    assert len(catalog.library.styles) == 404
    assert len(catalog.library.categories) == 43


def test_every_style_expands_to_a_valid_body(catalog: Catalog) -> None:
    sdxl_sizes: list[tuple[str, int]] = []
    for key, style in catalog.library.styles.items():
        built = catalog.build(
            RequestSpec(prompt=PROMPT, negative=NEGATIVE, style=key, n=2),
            policy=SFW,
            rng=random.Random(0),
        )
        assert len(built) == 1, key
        request = built[0]
        body = GenerationInput.model_validate(request.body.to_wire())
        assert request.style == style.name
        assert request.category is None
        assert PROMPT in body.prompt
        # The user's negative survives every template (crungus revenge has no {np}).
        assert NEGATIVE in body.prompt.partition("###")[2], key
        info = catalog.reference.get(style.model or "")
        assert body.models == [info.name if info else style.model], key
        assert (body.nsfw, body.censor_nsfw) == (False, True)
        assert body.params.n == 2
        if info is not None and info.baseline == Baseline.SDXL:
            sdxl_sizes.append((key, body.params.width * body.params.height))
    assert sdxl_sizes
    assert all(area >= min_pixels(Baseline.SDXL) for _, area in sdxl_sizes)


def test_every_style_with_the_users_loras_and_lcm_builds_or_says_why(catalog: Catalog) -> None:
    built = refused = 0
    for key in catalog.library.styles:
        try:
            requests = catalog.build(
                RequestSpec(prompt=PROMPT, style=key, lcm=True, loras=()),
                policy=SFW,
                rng=random.Random(0),
            )
        except UserError as exc:
            message = str(exc)
            assert "\n" not in message
            assert "--lcm" in message or "LoRAs" in message, message
            refused += 1
            continue
        body = requests[0].body
        assert body.params.sampler_name == "lcm"
        assert 4 <= body.params.steps <= 8
        assert len(body.params.loras) <= MAX_LORAS
        built += 1
    assert built > 200
    assert refused > 0  # Flux and Cascade styles have no LCM LoRA


@pytest.mark.parametrize("n", [1, 4])
def test_every_category_draws_distinct_styles_into_valid_bodies(catalog: Catalog, n: int) -> None:
    for category in catalog.library.categories:
        built = catalog.build(
            RequestSpec(prompt=PROMPT, style=category, n=n), policy=SFW, rng=random.Random(7)
        )
        if catalog.library.style(category) is not None:
            # "animation" is both; the style wins over the category.
            assert [b.category for b in built] == [None]
            continue
        pool = expand_category(catalog.library, category)
        assert len(built) == min(n, len(pool), 4), category
        assert len({b.style for b in built}) == len(built)
        assert {b.category for b in built} == {category}
        assert sum(b.body.params.n for b in built) == n
        for request in built:
            GenerationInput.model_validate(request.body.to_wire())
            assert request.style is not None
            assert request.style.casefold() in pool
