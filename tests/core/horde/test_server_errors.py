"""Bad input to every embedded-horde endpoint: the horde's status code and an ``rc`` (or the
schema ``errors`` body), never a 500.

A parametrised sweep sends garbage bodies and headers to every route; named cases pin the
``rc`` strings of the contract; hypothesis throws random JSON at async, pop and submit.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.core.horde.conftest import RunningHorde

ANON = "0000000000"
UUID = "00000000-0000-4000-8000-000000000000"

ENDPOINTS = [
    ("POST", "/generate/async"),
    ("GET", f"/generate/check/{UUID}"),
    ("GET", f"/generate/status/{UUID}"),
    ("DELETE", f"/generate/status/{UUID}"),
    ("POST", "/generate/pop"),
    ("POST", "/generate/submit"),
    ("GET", "/find_user"),
    ("POST", "/kudos/transfer"),
    ("GET", "/status/models"),
    ("GET", "/status/heartbeat"),
    ("GET", "/workers"),
    ("GET", f"/workers/{UUID}"),
    ("GET", "/workers/name/nobody"),
    ("GET", f"/_r2/{UUID}.webp?sig=bad"),
    ("PUT", f"/_r2/{UUID}.webp?sig=bad"),
]
GARBAGE_BODIES = [
    b"",
    b"not json",
    b"[]",
    b"null",
    b'"a string"',
    b"\xff\xfe\x00garbage",
    b'{"prompt": 5, "name": 5, "id": 5, "username": 5}',
    b'{"prompt": "x\\u0000y", "name": "w\\u0000"}',
    b'{"prompt": "\\ud800", "name": "\\ud800", "username": "\\ud800#1", "id": "\\ud800"}',
    b"[" * 100_000 + b"]" * 100_000,
    b'{"amount": 1' + b"0" * 5000 + b"}",
    b'{"prompt": "x", "params": {"width": NaN, "n": Infinity}}',
    b'{"prompt": "x", "params": [], "models": "all"}',
    b'{"unknown": {"deep": [1, 2, {"x": null}]}}',
]
GARBAGE_HEADERS: list[Any] = [
    {},
    {"apikey": ""},
    {"apikey": "x" * 10_000},
    {"apikey": "\u00e9\u00e8".encode("latin-1")},
    {"apikey": ANON, "Content-Type": "text/plain"},
    {"apikey": ANON, "Idempotency-Key": "k" * 300},
    {"apikey": ANON, "Client-Agent": "My-Project:v0.0.1:My-Contact"},
]


def assert_horde_error(response: httpx.Response, status: int | None = None) -> dict[str, Any]:
    """A 4xx with the horde's error body: ``{message, rc}`` or ``{message, errors}``."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    if status is not None:
        assert response.status_code == status, response.text[:300]
    body: dict[str, Any] = response.json()
    assert isinstance(body.get("message"), str)
    assert body["message"]
    assert "rc" in body or "errors" in body or response.status_code in (404, 405), body
    return body


@pytest.fixture
def http(embedded_horde: RunningHorde) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{embedded_horde.url}/v2", timeout=30) as client:
        yield client


@pytest.fixture
def key(embedded_horde: RunningHorde) -> str:
    return embedded_horde.add_user("mallory", 50)


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_garbage_bodies_and_headers_never_crash_an_endpoint(
    http: httpx.Client, key: str, method: str, path: str
) -> None:
    for body in GARBAGE_BODIES:
        for headers in [*GARBAGE_HEADERS, {"apikey": key}]:
            response = http.request(method, path, content=body, headers=headers)
            assert response.status_code < 500, (method, path, body[:60], headers, response.text)
            if response.status_code >= 400:
                assert_horde_error(response)


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/status/models", {"min_count": "many"}),
        ("/status/models", {"max_count": "1.5"}),
        ("/status/models", {"model_state": "fancy"}),
        ("/status/models", {"type": "audio"}),
        ("/workers", {"type": "audio"}),
    ],
)
def test_bad_query_parameters_are_schema_errors(
    http: httpx.Client, path: str, query: dict[str, str]
) -> None:
    body = assert_horde_error(http.get(path, params=query), 400)
    assert set(body["errors"]) == set(query)


@pytest.mark.parametrize(
    ("path", "rc"),
    [
        ("/generate/check/not-a-uuid", "RequestNotFound"),
        (f"/generate/status/{UUID}", "RequestNotFound"),
        ("/generate/check/" + "%ED%A0%80" * 3, "RequestNotFound"),
        ("/workers/not-a-worker", "WorkerNotFound"),
        ("/_r2/not-a-job.webp", "InvalidJobID"),
        (f"/_r2/{UUID}.webp?sig=nope", "WrongCredentials"),
    ],
)
def test_unknown_ids_get_the_horde_rc(http: httpx.Client, path: str, rc: str) -> None:
    assert assert_horde_error(http.get(path))["rc"] == rc


def test_unknown_paths_and_methods_are_json_4xx(http: httpx.Client) -> None:
    assert_horde_error(http.get("/nothing/here"), 404)
    assert_horde_error(http.get("/generate/async"), 405)
    assert_horde_error(http.put("/status/heartbeat"), 405)


def ask(http: httpx.Client, body: Any, apikey: str = ANON, **headers: str) -> httpx.Response:
    return http.post("/generate/async", json=body, headers={"apikey": apikey, **headers})


@pytest.mark.parametrize(
    ("body", "status", "rc"),
    [
        ({"prompt": ""}, 400, "MissingPrompt"),
        ({"prompt": "x\u0000"}, 400, "NulByteInPayload"),
        ({"prompt": "word " * 7501}, 400, "InvalidPromptSize"),
        (
            {"prompt": "x", "params": {"loras": [{"name": str(i)} for i in range(6)]}},
            400,
            "TooManyLoras",
        ),
        (
            {"prompt": "x", "params": {"tis": [{"name": str(i)} for i in range(21)]}},
            400,
            "TooManyTIs",
        ),
        ({"prompt": "x", "params": {"cfg_scale": 7.123}}, 400, "BadCFGDecimals"),
        ({"prompt": "x", "params": {"cfg_scale": 101}}, 400, "BadCFGNumber"),
        (
            {"prompt": "x", "params": {"loras": [{"name": "abc", "is_version": True}]}},
            400,
            "BadLoraVersion",
        ),
        (
            {"prompt": "x", "params": {"post_processing": ["RealESRGAN_x4plus", "NMKD_Siax"]}},
            400,
            "TooManyUpscalers",
        ),
        ({"prompt": "x", "source_mask": "abc"}, 400, "SourceMaskUnnecessary"),
        ({"prompt": "x", "source_image": "%%%not base64%%%"}, 400, "SourceImageUnreadable"),
        ({"prompt": "x", "source_image": "aGVsbG8="}, 400, "SourceImageUnreadable"),
        ({"prompt": "x", "style": "my style"}, 404, "StyleNotFound"),
        ({"prompt": "x", "workers": [UUID]}, 404, "WorkerNotFound"),
    ],
)
def test_generate_rules_answer_with_their_rc(
    http: httpx.Client, body: dict[str, Any], status: int, rc: str
) -> None:
    assert assert_horde_error(ask(http, body), status)["rc"] == rc


def test_inpainting_without_mask_or_alpha_is_refused(http: httpx.Client) -> None:
    import base64
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 64)).save(buffer, "PNG")
    body = {
        "prompt": "x",
        "source_image": base64.b64encode(buffer.getvalue()).decode(),
        "source_processing": "inpainting",
    }
    assert assert_horde_error(ask(http, body), 400)["rc"] == "InpaintingMissingMask"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "prompt"),
        ({"prompt": "x", "params": {"width": 100}}, "params.width"),
        ({"prompt": "x", "params": {"steps": 501}}, "params.steps"),
        ({"prompt": "x", "params": {"n": 0}}, "params.n"),
        ({"prompt": "x", "params": {"sampler_name": "k_magic"}}, "params.sampler_name"),
        ({"prompt": "x", "params": {"seed": 5}}, "params.seed"),
        ({"prompt": "x", "nsfw": "maybe"}, "nsfw"),
        ({"prompt": "x", "source_processing": "paint"}, "source_processing"),
        ({"prompt": "x", "surprise": 1}, "surprise"),
    ],
)
def test_schema_errors_name_the_field(http: httpx.Client, body: dict[str, Any], field: str) -> None:
    error = assert_horde_error(ask(http, body), 400)
    assert error["message"] == "Input payload validation failed"
    assert field in error["errors"]
    assert "rc" not in error


def test_keys_are_checked_before_anything_else(http: httpx.Client) -> None:
    assert assert_horde_error(ask(http, {"prompt": "x"}, apikey=""), 401)["rc"] == "InvalidAPIKey"
    unknown = ask(http, {"prompt": "x"}, apikey="not-a-key")
    assert assert_horde_error(unknown, 401)["rc"] == "InvalidAPIKey"
    banned = ask(http, {"prompt": "x"}, **{"Client-Agent": "My-Project:v0.0.1:My-Contact"})
    assert assert_horde_error(banned, 403)["rc"] == "BannedClientAgent"


def test_worker_side_errors(http: httpx.Client, key: str) -> None:
    headers = {"apikey": key}
    submit = {"id": UUID, "generation": "R2", "seed": 1}
    missing = http.post("/generate/submit", json=submit, headers=headers)
    assert assert_horde_error(missing, 404)["rc"] == "InvalidJobID"
    no_seed = http.post("/generate/submit", json={"id": UUID, "generation": "R2"}, headers=headers)
    assert "seed" in assert_horde_error(no_seed, 400)["errors"]
    too_much = {**submit, "gen_metadata": [{"type": "information", "value": "see_ref"}] * 51}
    assert (
        "gen_metadata"
        in assert_horde_error(http.post("/generate/submit", json=too_much, headers=headers), 400)[
            "errors"
        ]
    )
    nameless = http.post("/generate/pop", json={}, headers=headers)
    assert "name" in assert_horde_error(nameless, 400)["errors"]
    greedy = http.post("/generate/pop", json={"name": "w", "amount": 21}, headers=headers)
    assert "amount" in assert_horde_error(greedy, 400)["errors"]


def test_bad_base64_submit_is_image_validation_failed(
    http: httpx.Client, embedded_horde: RunningHorde, key: str
) -> None:
    ask(http, {"prompt": "x"})
    job = http.post("/generate/pop", json={"name": "w"}, headers={"apikey": key}).json()
    for generation in ("%%%", "aGVsbG8="):
        body = {"id": job["id"], "generation": generation, "seed": 1}
        answer = http.post("/generate/submit", json=body, headers={"apikey": key})
        assert assert_horde_error(answer, 400)["rc"] == "ImageValidationFailed"
    upload = httpx.put(job["r2_upload"], content=b"not an image")
    assert assert_horde_error(upload, 400)["rc"] == "ImageValidationFailed"


def test_oversized_body_is_refused(make_embedded_horde: Any) -> None:
    running = make_embedded_horde(max_body_bytes=1000)
    with httpx.Client(base_url=f"{running.url}/v2") as client:
        big = json.dumps({"prompt": "x" * 2000})
        answer = client.post("/generate/async", content=big, headers={"apikey": ANON})
        assert_horde_error(answer, 413)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = {
    "/generate/async": ["prompt", "params", "models", "nsfw", "r2", "dry_run", "workers"],
    "/generate/pop": ["name", "models", "amount", "max_pixels", "blacklist", "nsfw"],
    "/generate/submit": ["id", "generation", "seed", "state", "gen_metadata"],
}
PARAM_FIELDS = ["width", "height", "steps", "n", "seed", "loras", "tis", "cfg_scale", "karras"]


@st.composite
def bodies(draw: st.DrawFn, path: str) -> dict[str, Any]:
    body = draw(st.dictionaries(st.sampled_from(FIELDS[path]), json_values, max_size=5))
    if draw(st.booleans()) and path == "/generate/async":
        body["prompt"] = draw(st.text(min_size=1, max_size=30))
        body["params"] = draw(st.dictionaries(st.sampled_from(PARAM_FIELDS), json_values))
    if draw(st.booleans()):
        body[draw(st.text(max_size=8))] = draw(json_values)
    return body


@pytest.mark.parametrize("path", sorted(FIELDS))
@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_random_json_never_crashes(
    http: httpx.Client, key: str, path: str, data: st.DataObject
) -> None:
    body = data.draw(bodies(path))
    response = http.post(path, json=body, headers={"apikey": key})
    assert response.status_code < 500, (body, response.text)
    if response.status_code >= 400:
        assert_horde_error(response)
