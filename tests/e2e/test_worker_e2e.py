"""The whole worker stack: embedded horde, worker loop, tiny model and a fake CivitAI, on loopback.

A requester asks the embedded horde for images over HTTP; the worker loop (a task in this event
loop, inference in a thread) pops, downloads LoRAs and TIs from the fake CivitAI, infers and
submits. The checks read the horde's answers as a bot would: images decoded with Pillow, seeds,
states, ``gen_metadata``, and which id each image came back under.
"""

from __future__ import annotations

import asyncio
import base64
import io
import os
import pickle
import queue
import random
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from core.horde.client import HordeClient
from core.horde.wire import LoraSpec, RequestStatusStable, TISpec
from tests.core.horde.conftest import (  # noqa: F401 - fixtures
    RunningHorde,
    make_embedded_horde,
)
from tests.peers.civitai import FakeCivitai, FakeFile
from tests.worker_node.conftest import (  # noqa: F401 - fixtures
    tiny_lora_file,
    tiny_model_dir,
    tiny_ti_file,
)
from tests.worker_node.test_loop import MODEL, NO_LIMITS, Recorder, Stack, serving
from worker_node.assets import AssetStore
from worker_node.engine import Engine, ModelSpec
from worker_node.tiny_model import SD1

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings(
        "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
    ),
    pytest.mark.filterwarnings("ignore:__array_wrap__ must accept context:DeprecationWarning"),
]

LORA_VERSION, TI_MODEL = 2001, 1002
PICKLE_VERSION, TAMPERED_VERSION, OVERSIZED_VERSION = 3001, 3002, 3003


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> Engine:  # noqa: F811
    return Engine([ModelSpec(MODEL, tiny_model_dir, SD1)], device="cpu")


@pytest.fixture
def civitai(tiny_lora_file: Path, tiny_ti_file: Path) -> Iterator[FakeCivitai]:  # noqa: F811
    """A LoRA and a TI for the tiny model, and three files the worker must refuse."""
    lora = tiny_lora_file.read_bytes()
    with FakeCivitai() as fake:
        fake.add_version(1001, LORA_VERSION, [FakeFile(lora)], trained_words=["cat"])
        fake.add_version(
            TI_MODEL, 2002, [FakeFile(tiny_ti_file.read_bytes())], type="TextualInversion"
        )
        fake.add_version(1003, PICKLE_VERSION, [FakeFile(pickle.dumps({"weights": [1, 2, 3]}))])
        fake.add_version(1004, TAMPERED_VERSION, [FakeFile(lora, sha256="0" * 64)])
        fake.add_version(1005, OVERSIZED_VERSION, [FakeFile(lora, size_kb=401 * 1024)])
        yield fake


@pytest.fixture
async def stack(
    make_embedded_horde: Callable[..., RunningHorde],  # noqa: F811
) -> AsyncIterator[Stack]:
    horde = make_embedded_horde(user_concurrency=1000)
    requester_key = horde.add_user("requester", 10_000)
    worker_key = horde.add_user("worker-owner")
    async with (
        HordeClient(requester_key, base_url=horde.url, limits=NO_LIMITS) as requester,
        Recorder(worker_key, base_url=horde.url, limits=NO_LIMITS) as worker_client,
    ):
        yield Stack(horde, requester, worker_client)


@pytest.fixture
async def store(tmp_path: Path, civitai: FakeCivitai) -> AsyncIterator[AssetStore]:
    assets = AssetStore(tmp_path / "assets", civitai.base_url, retries=1, retry_delay_s=0.0)
    yield assets
    await assets.aclose()


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "WEBP"
    image.load()
    return image


def max_diff(a: Image.Image, b: Image.Image) -> int:
    first = np.asarray(a.convert("RGB"), dtype=np.int16)
    second = np.asarray(b.convert("RGB"), dtype=np.int16)
    return int(np.abs(first - second).max())


async def image(stack: Stack, status: RequestStatusStable) -> Image.Image:
    return decoded(await stack.requester.fetch_image(status.generations[0]))


async def all_finished(stack: Stack, ids: list[str]) -> list[RequestStatusStable]:
    return [await stack.finished(request_id) for request_id in ids]


async def test_plain_lora_ti_lcm_and_img2img_requests_all_come_back(
    stack: Stack, engine: Engine, store: AssetStore
) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (240, 200, 40)).save(buffer, "WEBP")
    source = base64.b64encode(buffer.getvalue()).decode()
    asks = {
        "plain": {},
        "lora": {"params": {"loras": [LoraSpec(name=str(LORA_VERSION), is_version=True)]}},
        "plain again": {},
        "ti": {
            "params": {"tis": [TISpec(name=str(TI_MODEL), inject_ti="prompt")]},
        },
        "plain last": {},
        "lcm": {"params": {"sampler_name": "lcm", "steps": 4, "cfg_scale": 1.5}},
        "img2img": {"source_image": source, "params": {"denoising_strength": 0.6}},
    }
    ids = {name: await stack.ask(seed=77, **body) for name, body in asks.items()}
    loop = stack.loop(engine, assets=store)
    statuses = await serving(loop, lambda: all_finished(stack, list(ids.values())))
    done = dict(zip(ids, statuses, strict=True))

    images = {}
    for name, status in done.items():
        assert status.done, name
        generation = status.generations[0]
        assert generation.seed == "77"
        assert generation.gen_metadata == [], (name, generation.gen_metadata)
        images[name] = await image(stack, status)
        assert images[name].size == (64, 64)
    # Each extra changes the picture; none of them outlives its own job.
    for name in ("lora", "ti", "lcm", "img2img"):
        assert max_diff(images["plain"], images[name]) > 10, name
    assert max_diff(images["plain"], images["plain again"]) <= 2
    assert max_diff(images["plain"], images["plain last"]) <= 2
    assert store.cache_dir.joinpath("lora", f"{LORA_VERSION}.safetensors").is_file()


async def test_refused_assets_fault_their_jobs_and_the_worker_keeps_serving(
    stack: Stack, engine: Engine, store: AssetStore, civitai: FakeCivitai
) -> None:
    bad = {
        "pickle": (PICKLE_VERSION, "parse_failed"),
        "hash mismatch": (TAMPERED_VERSION, "download_failed"),
        "oversized": (OVERSIZED_VERSION, "download_failed"),
    }
    ids: dict[str, str] = {}
    for n, (name, (version, _)) in enumerate(bad.items()):
        lora = LoraSpec(name=str(version), is_version=True)
        ids[name] = await stack.ask(seed=n, params={"loras": [lora]})
        ids[f"good after {name}"] = await stack.ask(seed=100 + n)
    loop = stack.loop(engine, assets=store)  # fault_pause_s 180: a pause would time out here
    statuses = await serving(loop, lambda: all_finished(stack, list(ids.values())))
    done = dict(zip(ids, statuses, strict=True))

    submits = [body for _, body in stack.worker_client.submits]
    for name, (version, reason) in bad.items():
        assert done[name].faulted, name
        assert not done[name].generations
        refusals = {
            (entry.type, entry.value, entry.ref)
            for body in submits
            if body.state == "faulted"
            for entry in body.gen_metadata
        }
        assert ("lora", reason, str(version)) in refusals, name
        good = done[f"good after {name}"]
        assert good.done
        decoded(await stack.requester.fetch_image(good.generations[0]))
    assert loop.stats.snapshot().refused == 3 * 3  # each bad request is tried three times
    assert not list((store.cache_dir / "lora").glob("*"))


async def test_200_concurrent_jobs_each_come_back_under_their_own_id(
    stack: Stack, engine: Engine
) -> None:
    seeds = random.Random(5).sample(range(1, 2**32), 200)
    loop = stack.loop(engine, queue_size=2)
    task = asyncio.create_task(loop.run())
    try:
        # all 200 asked at once while the worker is already popping
        ids = await asyncio.gather(*(stack.ask(seed=seed) for seed in seeds))
        assert len(set(ids)) == 200
        async with asyncio.timeout(180):
            while loop.stats.snapshot().images < 200:
                await asyncio.sleep(0.1)
    finally:
        loop.stop()
        await asyncio.wait_for(task, 60)
    statuses = [await stack.requester.status(request_id) for request_id in ids]

    popped = {a.id: a for _, _, a in stack.worker_client.pops if a.id}
    assert len(popped) == 200
    job_ids = set()
    for seed, status in zip(seeds, statuses, strict=True):
        assert status.done
        assert len(status.generations) == 1
        generation = status.generations[0]
        assert generation.seed == str(seed)
        job = popped[generation.id]
        assert job.payload is not None
        assert str(job.payload.seed) == str(seed)
        job_ids.add(generation.id)
    assert len(job_ids) == 200
    # Re-render a sample alone: the bytes under each id are that job's own picture.
    for status in random.Random(6).sample(statuses, 12):
        generation = status.generations[0]
        alone = engine.run(popped[generation.id].model_copy(update={"ids": [generation.id]}))
        assert await stack.requester.fetch_image(generation) == alone.images[0].webp
    submitted = [body.id for _, body in stack.worker_client.submits]
    assert sorted(submitted) == sorted(job_ids)  # one submit per id, no other


def test_python_m_worker_node_serves_and_exits_cleanly_on_sigterm(
    make_embedded_horde: Callable[..., RunningHorde],  # noqa: F811
    tiny_model_dir: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    horde = make_embedded_horde()
    worker_key = horde.add_user("owner")
    requester_key = horde.add_user("requester", 100)
    config = tmp_path / "worker.toml"
    config.write_text(
        "[worker]\n"
        'name = "process-worker"\n'
        f'horde_url = "{horde.url}"\n'
        "nsfw = true\n"
        f'cache_dir = "{tmp_path / "cache"}"\n'
        "[[worker.models]]\n"
        f'name = "{MODEL}"\n'
        f'path = "{tiny_model_dir}"\n',
        encoding="utf-8",
    )
    env = {**os.environ, "HORDEBOT_WORKER_API_KEY": worker_key, "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "worker_node", "--config", str(config)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    seen: list[str] = []

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)

    def wait_for(needle: str) -> None:
        while True:
            line = lines.get(timeout=60)
            seen.append(line)
            if needle in line:
                return

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        wait_for("serving")
        request_id = _ask_over_http(horde, requester_key)
        wait_for("ok in")
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    reader.join(10)
    if process.stdout is not None:
        process.stdout.close()
    while not lines.empty():
        seen.append(lines.get())
    output = "".join(seen)
    assert process.returncode == 0, output
    assert "stopped: 1 jobs done" in output
    assert "Traceback" not in output
    check = httpx.get(f"{horde.url}/v2/generate/check/{request_id}", timeout=10).json()
    assert check["done"] is True


def _ask_over_http(horde: RunningHorde, key: str) -> str:
    body = {
        "prompt": "a photo of a cat",
        "params": {"width": 64, "height": 64, "steps": 1, "cfg_scale": 1.0, "seed": "3"},
        "models": [MODEL],
        "nsfw": True,
        "censor_nsfw": False,
    }
    response = httpx.post(
        f"{horde.url}/v2/generate/async", json=body, headers={"apikey": key}, timeout=10
    )
    assert response.status_code == 202, response.text
    request_id: str = response.json()["id"]
    return request_id
