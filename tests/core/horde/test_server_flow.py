"""The embedded horde played by hand over real HTTP: a requester, a worker, and the contract.

Each test drives the server the way a bot and a GPU worker do (async → pop → upload/submit →
status) and checks the horde's shapes: payload fields, string seeds, skipped counts, restarts,
kudos, and both ways of returning images.
"""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.core.horde.conftest import RunningHorde

MODEL = "stable_diffusion"
ANON = "0000000000"


def webp(colour: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), colour).save(buffer, "WEBP")
    return buffer.getvalue()


class Horde:
    """A thin HTTP helper: one method per endpoint, answers as JSON."""

    def __init__(self, running: RunningHorde) -> None:
        self.running = running
        self.http = httpx.Client(base_url=f"{running.url}/v2", timeout=10)

    def __enter__(self) -> Horde:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.http.close()

    def ask(self, key: str, prompt: str = "a red square ### blurry", **body: Any) -> str:
        response = self.http.post(
            "/generate/async", headers={"apikey": key}, json={"prompt": prompt, **body}
        )
        assert response.status_code == 202, response.text
        request_id: str = response.json()["id"]
        return request_id

    def pop(self, key: str, name: str = "worker-1", **body: Any) -> dict[str, Any]:
        response = self.http.post(
            "/generate/pop", headers={"apikey": key}, json={"name": name, **body}
        )
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    def submit(self, key: str, job_id: str, **body: Any) -> httpx.Response:
        payload = {"id": job_id, "seed": 1, "generation": base64.b64encode(webp()).decode()}
        payload.update(body)
        return self.http.post("/generate/submit", headers={"apikey": key}, json=payload)

    def check(self, request_id: str) -> dict[str, Any]:
        response = self.http.get(f"/generate/check/{request_id}")
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    def status(self, request_id: str) -> dict[str, Any]:
        response = self.http.get(f"/generate/status/{request_id}")
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    def kudos(self, key: str) -> float:
        response = self.http.get("/find_user", headers={"apikey": key})
        assert response.status_code == 200, response.text
        return float(response.json()["kudos"])

    def wait_for(self, request_id: str, predicate: Callable[[dict[str, Any]], bool]) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if predicate(self.check(request_id)):
                return
            time.sleep(0.05)
        raise AssertionError(f"check never matched: {self.check(request_id)}")


@pytest.fixture
def horde(embedded_horde: RunningHorde) -> Iterator[Horde]:
    with Horde(embedded_horde) as client:
        yield client


@pytest.fixture
def keys(embedded_horde: RunningHorde) -> tuple[str, str]:
    """A requester (alice, 100 kudos) and a worker owner (bob, 0 kudos)."""
    return embedded_horde.add_user("alice", 100), embedded_horde.add_user("bob", 0)


def test_worker_by_hand_returns_base64_webp_and_moves_kudos(
    horde: Horde, keys: tuple[str, str]
) -> None:
    alice, bob = keys
    image = webp()
    request_id = horde.ask(alice, params={"steps": 50, "seed": "7"}, models=[MODEL], r2=False)
    job = horde.pop(bob, models=[MODEL])
    assert job["id"] == job["ids"][0]
    assert job["model"] == MODEL
    assert job["payload"]["seed"] == 7
    assert job["ttl"] >= 150
    assert horde.check(request_id)["processing"] == 1

    submitted = horde.submit(bob, job["id"], seed=7, generation=base64.b64encode(image).decode())
    assert submitted.status_code == 200
    assert submitted.json() == {"reward": 10.0}

    status = horde.status(request_id)
    assert (status["finished"], status["done"], status["kudos"]) == (1, True, 10.0)
    generation = status["generations"][0]
    assert base64.b64decode(generation["img"]) == image
    assert generation["seed"] == "7"  # a string, like the horde
    assert generation["id"] == job["id"]
    assert generation["model"] == MODEL
    assert generation["worker_name"] == "worker-1"
    assert generation["censored"] is False
    assert (horde.kudos(alice), horde.kudos(bob)) == (90.0, 10.0)

    workers = horde.http.get("/workers", params={"name": "worker-1"}).json()
    assert [
        (w["id"], w["online"], w["kudos_rewards"], w["requests_fulfilled"]) for w in workers
    ] == [(generation["worker_id"], True, 10.0, 1)]


def test_r2_upload_then_status_link_serves_the_webp(horde: Horde, keys: tuple[str, str]) -> None:
    alice, bob = keys
    image = webp((1, 2, 3))
    request_id = horde.ask(alice, r2=True)
    job = horde.pop(bob)
    assert job["r2_uploads"] == [job["r2_upload"]]
    put = httpx.put(job["r2_upload"], content=image)
    assert put.status_code == 200
    assert horde.submit(bob, job["id"], generation="R2").status_code == 200

    link = horde.status(request_id)["generations"][0]["img"]
    assert link.startswith(horde.running.url)
    got = httpx.get(link)
    assert got.status_code == 200
    assert got.headers["content-type"] == "image/webp"
    assert got.content == image
    assert httpx.get(link.replace("sig=", "sig=0")).status_code == 403


def test_non_webp_upload_is_stored_as_webp(horde: Horde, keys: tuple[str, str]) -> None:
    alice, bob = keys
    request_id = horde.ask(alice, r2=False)
    job = horde.pop(bob)
    png = io.BytesIO()
    Image.new("RGB", (8, 8), (9, 9, 9)).save(png, "PNG")
    assert httpx.put(job["r2_upload"], content=png.getvalue()).status_code == 200
    assert horde.submit(bob, job["id"], generation="R2").status_code == 200
    stored = base64.b64decode(horde.status(request_id)["generations"][0]["img"])
    assert stored[:4] == b"RIFF"
    assert stored[8:12] == b"WEBP"


def test_submit_r2_without_upload_is_refused_and_job_stays_out(
    horde: Horde, keys: tuple[str, str]
) -> None:
    alice, bob = keys
    request_id = horde.ask(alice)
    job = horde.pop(bob)
    refused = horde.submit(bob, job["id"], generation="R2")
    assert refused.status_code == 400
    assert refused.json()["rc"] == "ImageValidationFailed"
    assert horde.check(request_id)["processing"] == 1
    assert horde.submit(bob, job["id"]).status_code == 200


def test_second_submit_is_duplicate_gen(horde: Horde, keys: tuple[str, str]) -> None:
    alice, bob = keys
    horde.ask(alice)
    job = horde.pop(bob)
    assert horde.submit(bob, job["id"]).status_code == 200
    again = horde.submit(bob, job["id"])
    assert again.status_code == 400
    assert again.json()["rc"] == "DuplicateGen"
    assert horde.kudos(bob) == 6.0  # paid once


def test_censored_result_costs_the_requester_nothing(horde: Horde, keys: tuple[str, str]) -> None:
    alice, bob = keys
    request_id = horde.ask(alice, nsfw=False, censor_nsfw=True)
    job = horde.pop(bob)
    assert job["payload"]["use_nsfw_censor"] is True
    assert horde.submit(bob, job["id"], state="censored").json()["reward"] == 6.0
    generation = horde.status(request_id)["generations"][0]
    assert generation["censored"] is True
    assert {"type": "censorship", "value": "nsfw"} in generation["gen_metadata"]
    assert (horde.kudos(alice), horde.kudos(bob)) == (100.0, 6.0)


def test_faulted_jobs_are_restarted_and_the_third_fails_the_request(
    horde: Horde, keys: tuple[str, str]
) -> None:
    alice, bob = keys
    request_id = horde.ask(alice)
    for attempt in range(1, 4):
        job = horde.pop(bob)
        assert job["id"] is not None, f"attempt {attempt} found no job"
        assert horde.submit(bob, job["id"], state="faulted").json() == {"reward": 0.0}
        check = horde.check(request_id)
        assert check["restarted"] == attempt
    assert check["faulted"] is True
    assert check["done"] is True
    assert check["waiting"] == 0
    assert horde.pop(bob)["id"] is None
    assert horde.kudos(alice) == 100.0


def test_payload_follows_the_contract_and_seeds_vary_per_image(
    horde: Horde, keys: tuple[str, str]
) -> None:
    alice, bob = keys
    params = {"n": 3, "seed": "100", "seed_variation": 5, "steps": 12, "cfg_scale": 6.5}
    request_id = horde.ask(alice, prompt="castle ### fog", params=params, nsfw=True)
    job = horde.pop(bob, amount=3)
    payload = job["payload"]
    assert len(job["ids"]) == 3
    assert len(job["r2_uploads"]) == 3
    assert payload["prompt"] == "castle ### fog"
    assert (payload["ddim_steps"], payload["n_iter"], payload["batch_size"]) == (12, 3, 1)
    assert payload["seed"] == 100
    assert payload["cfg_scale"] == 6.5
    assert payload["use_nsfw_censor"] is False
    assert not {"steps", "n", "seed_variation"} & payload.keys()
    for offset, job_id in enumerate(job["ids"]):
        assert horde.submit(bob, job_id, seed=100 + 5 * offset).status_code == 200
    seeds = [g["seed"] for g in horde.status(request_id)["generations"]]
    assert seeds == ["100", "105", "110"]


def test_single_pops_hand_out_each_image_seed_in_turn(horde: Horde, keys: tuple[str, str]) -> None:
    alice, bob = keys
    horde.ask(alice, params={"n": 3, "seed": "abc", "seed_variation": 2})
    seeds = [horde.pop(bob)["payload"]["seed"] for _ in range(3)]
    first = int.from_bytes(b"abc", "big")
    assert seeds == [first, first + 2, first + 4]
    assert horde.pop(bob)["id"] is None


@pytest.mark.parametrize(
    ("request_body", "worker_body", "skipped"),
    [
        ({"models": ["other"]}, {"models": [MODEL]}, "models"),
        ({"params": {"width": 1024, "height": 1024}}, {"max_pixels": 512 * 512}, "max_pixels"),
        ({"nsfw": True}, {"nsfw": False}, "nsfw"),
        ({"prompt": "a Spooky house"}, {"blacklist": ["spooky"]}, "blacklist"),
        ({"params": {"loras": [{"name": "123"}]}}, {"allow_lora": False}, "lora"),
        (
            {"params": {"post_processing": ["GFPGAN"]}},
            {"allow_post_processing": False},
            "post-processing",
        ),
        ({"source_image": "SRC"}, {"allow_img2img": False}, "img2img"),
        (
            {"source_image": "SRC", "source_processing": "inpainting"},
            {"allow_painting": False},
            "painting",
        ),
        ({"trusted_workers": True}, {}, "untrusted"),
    ],
)
def test_pop_skips_what_the_worker_cannot_serve(
    horde: Horde,
    keys: tuple[str, str],
    request_body: dict[str, Any],
    worker_body: dict[str, Any],
    skipped: str,
) -> None:
    alice, bob = keys
    if request_body.get("source_image") == "SRC":
        image = io.BytesIO()
        Image.new("RGBA", (64, 64)).save(image, "PNG")
        request_body = {**request_body, "source_image": base64.b64encode(image.getvalue()).decode()}
    request_body = {"prompt": "a house", "nsfw": False, "models": [], **request_body}
    horde.ask(alice, **request_body)
    empty = horde.pop(bob, name="picky", **worker_body)
    assert empty == {**empty, "id": None, "ids": [], "skipped": {skipped: 1}}
    capable: dict[str, Any] = {"max_pixels": 4 * 1024 * 1024, "nsfw": True, "allow_lora": True}
    if skipped == "models":
        capable["models"] = ["other"]
    if skipped == "untrusted":
        trusted = horde.running.add_user("carol", 0, trusted=True)
        assert horde.pop(trusted, name="trusty", **capable)["id"] is not None
        return
    assert horde.pop(bob, name="able", **capable)["id"] is not None


def test_empty_pop_has_the_horde_shape(horde: Horde, keys: tuple[str, str]) -> None:
    _, bob = keys
    answer = horde.pop(bob)
    assert answer["id"] is None
    assert answer["ids"] == []
    assert answer["skipped"] == {}


def test_request_nobody_can_serve_warns_but_stays_queued(
    horde: Horde, keys: tuple[str, str]
) -> None:
    alice, bob = keys
    assert horde.pop(bob, models=["other"])["id"] is None  # bob's worker is now online
    response = horde.http.post(
        "/generate/async", headers={"apikey": alice}, json={"prompt": "x", "models": [MODEL]}
    )
    body = response.json()
    assert response.status_code == 202
    assert [w["code"] for w in body["warnings"]] == ["NoAvailableWorker"]
    assert body["message"]
    check = horde.check(body["id"])
    assert check["is_possible"] is False
    assert check["waiting"] == 1

    served = horde.http.post(
        "/generate/async", headers={"apikey": alice}, json={"prompt": "x", "models": ["other"]}
    )
    assert not served.json().get("warnings")
    assert horde.check(served.json()["id"])["is_possible"] is True
    assert horde.pop(bob, models=[MODEL])["id"] is not None  # the queued one is still there


def test_workers_are_bound_to_their_owner(horde: Horde, keys: tuple[str, str]) -> None:
    alice, bob = keys
    horde.ask(alice)
    job = horde.pop(bob, name="bobs-gpu")
    taken = horde.http.post("/generate/pop", headers={"apikey": alice}, json={"name": "bobs-gpu"})
    assert taken.status_code == 403
    assert taken.json()["rc"] == "WrongCredentials"
    stolen = horde.submit(alice, job["id"])
    assert stolen.status_code == 403
    assert stolen.json()["rc"] == "WrongCredentials"
    anon = horde.http.post("/generate/pop", headers={"apikey": ANON}, json={"name": "anon-gpu"})
    assert anon.status_code == 403
    assert anon.json()["rc"] == "AnonForbiddenWorker"


def test_timed_out_job_is_requeued_and_late_submit_is_aborted(
    make_embedded_horde: Callable[..., RunningHorde],
) -> None:
    running = make_embedded_horde(job_ttl_s=0.3)
    with Horde(running) as horde:
        _time_out_and_requeue(horde, running.add_user("alice", 100), running.add_user("bob"))


def _time_out_and_requeue(horde: Horde, alice: str, bob: str) -> None:
    request_id = horde.ask(alice)
    first = horde.pop(bob)
    assert first["ttl"] == 1  # ttl is whole seconds; the override is 0.3 s
    horde.wait_for(request_id, lambda c: c["restarted"] == 1 and c["waiting"] == 1)
    second = horde.pop(bob)
    assert second["id"] not in (None, first["id"])
    late = horde.submit(bob, first["id"])
    assert late.status_code == 400
    assert late.json()["rc"] == "AbortedGen"
    assert horde.submit(bob, second["id"]).status_code == 200
    assert horde.check(request_id)["done"] is True


def test_requests_expire_unless_popped(make_embedded_horde: Callable[..., RunningHorde]) -> None:
    running = make_embedded_horde(request_lifetime_s=3.0)
    with Horde(running) as horde:
        _expire(horde, running.add_user("alice", 100), running.add_user("bob"))


def _expire(horde: Horde, alice: str, bob: str) -> None:
    kept = horde.ask(alice, params={"n": 2})
    dropped = horde.ask(alice, models=["other"])
    time.sleep(2)
    assert horde.pop(bob)["id"] is not None  # extends `kept` to now + 3 s
    time.sleep(1.8)
    assert horde.check(kept)["processing"] == 1
    gone = horde.http.get(f"/generate/check/{dropped}")
    assert gone.status_code == 404
    assert gone.json()["rc"] == "RequestNotFound"


def test_cancel_stops_new_pops_and_keeps_finished_images(
    horde: Horde, keys: tuple[str, str]
) -> None:
    alice, bob = keys
    request_id = horde.ask(alice, params={"n": 3})
    job = horde.pop(bob)
    cancelled = horde.http.delete(f"/generate/status/{request_id}").json()
    assert (cancelled["waiting"], cancelled["processing"], cancelled["done"]) == (0, 1, False)
    assert horde.pop(bob)["id"] is None
    assert horde.submit(bob, job["id"]).status_code == 200
    status = horde.status(request_id)
    assert status["done"] is True
    assert len(status["generations"]) == 1


def test_dry_run_prices_without_queueing(horde: Horde, keys: tuple[str, str]) -> None:
    alice, bob = keys
    body = {
        "prompt": "x",
        "dry_run": True,
        "params": {"n": 2, "width": 1024, "height": 1024, "steps": 25, "loras": [{"name": "1"}]},
    }
    response = horde.http.post("/generate/async", headers={"apikey": alice}, json=body)
    # 10 × (1024²/512²) × (25/50) = 20, plus 3 for the LoRA, times n = 2
    assert response.status_code == 200
    assert response.json() == {"kudos": 46.0}
    assert horde.pop(bob, allow_lora=True, max_pixels=1024 * 1024)["id"] is None


def test_too_many_waiting_images_is_too_many_prompts(horde: Horde) -> None:
    horde.ask(ANON, params={"n": 20})
    refused = horde.http.post(
        "/generate/async", headers={"apikey": ANON}, json={"prompt": "x", "params": {"n": 11}}
    )
    assert refused.status_code == 429
    assert refused.json()["rc"] == "TooManyPrompts"


def test_status_models_heartbeat_and_worker_lookups(horde: Horde, keys: tuple[str, str]) -> None:
    alice, bob = keys
    horde.pop(bob, name="gpu", models=[MODEL, "flux"])
    horde.ask(alice, models=["flux"], params={"n": 2})
    rows = {row["name"]: row for row in horde.http.get("/status/models").json()}
    assert rows["flux"]["count"] == 1
    assert rows["flux"]["jobs"] == 2.0
    assert rows[MODEL]["count"] == 1
    assert rows[MODEL]["type"] == "image"
    assert horde.http.get("/status/models", params={"min_count": 2}).json() == []
    assert [r["name"] for r in horde.http.get("/status/models/flux").json()] == ["flux"]
    assert horde.http.get("/status/heartbeat").json()["message"] == "OK"

    [worker] = horde.http.get("/workers").json()
    assert worker["name"] == "gpu"
    assert worker["models"] == [MODEL, "flux"]
    assert horde.http.get(f"/workers/{worker['id']}").json()["name"] == "gpu"
    assert horde.http.get("/workers/name/gpu").json()["id"] == worker["id"]
    missing = horde.http.get("/workers/nope")
    assert missing.status_code == 404
    assert missing.json()["rc"] == "WorkerNotFound"


def test_find_user_names_the_account(horde: Horde, keys: tuple[str, str]) -> None:
    alice, _ = keys
    me = horde.http.get("/find_user", headers={"apikey": alice}).json()
    assert (me["username"], me["kudos"]) == (f"alice#{me['id']}", 100.0)
    anon = horde.http.get("/find_user", headers={"apikey": ANON}).json()
    assert anon["username"] == "Anonymous#0"
    unknown = horde.http.get("/find_user", headers={"apikey": "nobody-has-this"})
    assert unknown.status_code == 404
    assert unknown.json()["rc"] == "UserNotFound"
    missing = horde.http.get("/find_user")
    assert missing.status_code == 401
    assert missing.json()["rc"] == "InvalidAPIKey"


def test_state_survives_a_restart(embedded_horde: RunningHorde, keys: tuple[str, str]) -> None:
    alice, bob = keys
    with Horde(embedded_horde) as horde:
        done, waiting = _finish_one_and_queue_one(horde, alice, bob)
    embedded_horde.restart()
    with Horde(embedded_horde) as horde:
        status = horde.status(done)
        assert status["generations"][0]["seed"] == "5"
        assert status["kudos"] == 6.0
        assert base64.b64decode(status["generations"][0]["img"])[:4] == b"RIFF"
        assert horde.check(waiting)["waiting"] == 2
        assert (horde.kudos(alice), horde.kudos(bob)) == (94.0, 6.0)
        assert horde.pop(bob)["id"] is not None  # same worker name, same owner


def _finish_one_and_queue_one(horde: Horde, alice: str, bob: str) -> tuple[str, str]:
    done = horde.ask(alice, r2=False)
    job = horde.pop(bob)
    horde.submit(bob, job["id"], seed=5)
    waiting = horde.ask(alice, params={"n": 2})
    return done, waiting
