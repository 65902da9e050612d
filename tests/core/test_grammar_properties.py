"""Property tests: any input gives a valid body or a one-line UserError, and SFW stays SFW."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.catalog import Catalog
from core.commands import COMMANDS, DREAM
from core.errors import UserError
from core.grammar.flags import flag_table
from core.horde.wire import GenerationInput
from core.model_reference import load_model_reference
from core.policy import NSFW_ALLOWED, SFW
from styles.library import load_library

EXAMPLES = settings(
    max_examples=250,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def catalog(shared_styles_dir: str, shared_model_reference: str, tmp_path_factory: Any) -> Catalog:
    cache = Path(tmp_path_factory.mktemp("cache"))
    return Catalog(
        library=load_library(shared_styles_dir, cache, 0),
        reference=load_model_reference(shared_model_reference, cache, 0),
    )


# Pieces that steer random text into the grammar's corners: every flag, names with spaces and
# punctuation, values in and out of range, quotes, separators, triggers and inline TIs.
_PIECES = [
    *flag_table("dream"),
    "—steps",
    "–ar",
    "--",
    "-",
    "###",
    "style:",
    "Style:",
    "draw me",
    "draw for us",
    "/dream",
    "/help",
    "help",
    "embedding:123",
    "(embedding:77:0.5)",
    "(embedding:9:99)",
    '"',
    "“",
    "'",
    "a midsummer night's dream",
    "faetastic (flux)",
    "leaping–fire–cascade",
    "featured",
    "anime",
    "pony",
    "steampunk",
    "flux-small",
    "qwen",
    "AlbedoBase XL (SDXL)",
    "DreamShaper XL",
    "Dreamshaper",
    "Flux.1-Schnell fp8 (Compact)",
    "Pony Diffusion XL",
    "16:9",
    "1:8",
    "0:0",
    "512x512",
    "64x3072",
    "99999x1",
    "v:123",
    "v:abc",
    "neg:5",
    "12:0.5",
    "0",
    "1",
    "4",
    "20",
    "500",
    "501",
    "-1",
    "1.555",
    "nan",
    "on",
    "off",
    "k_euler",
    "lcm",
    "\x00",
    "a fox",
]

_texts = st.one_of(
    st.text(max_size=80),
    st.lists(st.one_of(st.sampled_from(_PIECES), st.text(max_size=10)), max_size=14).map(" ".join),
)


def _check_built(catalog: Catalog, text: str, *, sfw: bool) -> None:
    policy = SFW if sfw else NSFW_ALLOWED
    try:
        built = catalog.dream(text, policy=policy, rng=random.Random(0))
    except UserError as exc:
        message = str(exc)
        assert message
        assert "\n" not in message
        assert "\r" not in message
        return
    assert built
    for request in built:
        body = GenerationInput.model_validate(request.body.to_wire())
        if sfw:
            assert body.nsfw is False
            assert body.censor_nsfw is True
        assert body.prompt.strip()
        for warning in request.warnings:
            assert "\n" not in warning


@EXAMPLES
@given(text=_texts)
def test_any_text_gives_a_valid_body_or_one_line_error_in_an_sfw_channel(
    catalog: Catalog, text: str
) -> None:
    _check_built(catalog, text, sfw=True)


@EXAMPLES
@given(text=_texts)
def test_any_text_gives_a_valid_body_or_one_line_error_in_an_nsfw_channel(
    catalog: Catalog, text: str
) -> None:
    _check_built(catalog, text, sfw=False)


@EXAMPLES
@given(text=_texts)
def test_any_line_is_a_command_nothing_or_one_line_error(catalog: Catalog, text: str) -> None:
    try:
        request = catalog.parse(text)
    except UserError as exc:
        message = str(exc)
        assert "\n" not in message
        return
    if request is not None:
        assert request.command in COMMANDS
        assert (request.spec is not None) == (request.command == "dream")


_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-10, max_value=10_000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(_PIECES),
    st.text(max_size=20),
    st.lists(st.sampled_from(_PIECES), max_size=3),
)
_option_names = st.sampled_from([o.name for o in DREAM.options] + ["stpes", "prompt"])


@EXAMPLES
@given(
    prompt=st.one_of(st.text(max_size=40), st.sampled_from(_PIECES), st.integers()),
    options=st.dictionaries(_option_names, _values, max_size=6),
)
def test_any_structured_input_gives_a_valid_body_or_one_line_error(
    catalog: Catalog, prompt: Any, options: dict[str, Any]
) -> None:
    try:
        request = catalog.parse_options("dream", {**options, "prompt": prompt})
        assert request.spec is not None
        built = catalog.build(request.spec, policy=SFW, rng=random.Random(0))
    except UserError as exc:
        message = str(exc)
        assert "\n" not in message
        return
    for item in built:
        body = GenerationInput.model_validate(item.body.to_wire())
        assert (body.nsfw, body.censor_nsfw) == (False, True)
