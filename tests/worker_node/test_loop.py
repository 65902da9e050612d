"""The worker loop against a real embedded horde on 127.0.0.1 and the tiny model.

Each test runs ``WorkerLoop`` in the test's event loop, a requester asks the horde for images over
HTTP, and the assertions read what the horde recorded: the images (decoded), seeds, states and
``gen_metadata`` of each job. Engines that fail, stall or return the wrong job wrap the real one,
so the loop's fault paths run against the real horde too.
"""

from __future__ import annotations

import asyncio
import base64
import io
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from core.horde.client import HordeClient
from core.horde.errors import ServerError
from core.horde.retry import RetryPolicy
from core.horde.wire import (
    GenerationInput,
    GenerationParams,
    LoraSpec,
    PopInput,
    PopResponse,
    RequestStatusStable,
    SubmitInput,
    SubmitResponse,
)
from tests.core.horde.conftest import (  # noqa: F401 - fixtures
    RunningHorde,
    embedded_horde,
    make_embedded_horde,
)
from worker_node.engine import Engine, JobAssets, JobImage, JobResult, ModelSpec
from worker_node.loop import (
    LoopSettings,
    ResultMismatch,
    WorkerLoop,
    WorkerStopped,
    check_result,
)
from worker_node.safety import ImageClassifierSafety
from worker_node.tiny_model import SD1

pytestmark = [
    # diffusers' schedulers trip numpy 2.4 deprecations inside torch; not ours to change.
    pytest.mark.filterwarnings(
        "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
    ),
    pytest.mark.filterwarnings("ignore:__array_wrap__ must accept context:DeprecationWarning"),
]

MODEL = "tiny-sd"
NO_LIMITS: dict[str, Any] = {}


# ---- the pieces -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> Engine:
    """An engine of its own (the shared one's lock would serialise unrelated tests)."""
    return Engine([ModelSpec(MODEL, tiny_model_dir, SD1)], device="cpu")


class Recorder(HordeClient):
    """The real horde client, keeping what the worker sent and when."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pops: list[tuple[float, PopInput, PopResponse]] = []
        self.submits: list[tuple[float, SubmitInput]] = []
        self.uploads: list[str] = []

    async def pop(self, request: PopInput) -> PopResponse:
        answer = await super().pop(request)
        self.pops.append((time.monotonic(), request, answer))
        return answer

    async def submit(self, result: SubmitInput) -> SubmitResponse:
        self.submits.append((time.monotonic(), result))
        return await super().submit(result)

    async def upload_r2(self, url: str, data: bytes) -> None:
        self.uploads.append(url)
        await super().upload_r2(url, data)

    def states(self) -> dict[str, str]:
        return {body.id: body.state for _, body in self.submits}


class Gated:
    """The real engine behind a gate the test opens; records which jobs ran."""

    def __init__(self, inner: Engine) -> None:
        self.inner = inner
        self.gate = threading.Event()
        self.started = threading.Event()
        self.done = threading.Event()
        self.ran: list[str] = []

    def run(
        self, job: PopResponse, assets: JobAssets | None = None, source_image: bytes | None = None
    ) -> JobResult:
        self.started.set()
        self.gate.wait(30)
        self.ran.append(job.id or "")
        try:
            return self.inner.run(job, assets, source_image)
        finally:
            self.done.set()


class Failing:
    """An engine whose every job raises, as a broken GPU would."""

    def __init__(self) -> None:
        self.calls = 0

    def run(
        self, job: PopResponse, assets: JobAssets | None = None, source_image: bytes | None = None
    ) -> JobResult:
        self.calls += 1
        raise RuntimeError("CUDA error: an illegal memory access was encountered")


class Swapping:
    """An engine that answers with another job's result: the bug the loop must never submit."""

    def __init__(self, inner: Engine) -> None:
        self.inner = inner

    def run(
        self, job: PopResponse, assets: JobAssets | None = None, source_image: bytes | None = None
    ) -> JobResult:
        other = job.model_copy(update={"id": "someone-else", "ids": ["someone-else"]})
        return self.inner.run(other, assets, source_image)


@dataclass
class Stack:
    horde: RunningHorde
    requester: HordeClient
    worker_client: Recorder

    def loop(self, engine: Any, **overrides: Any) -> WorkerLoop:
        settings = LoopSettings(
            name="loop-test-worker",
            models=(MODEL,),
            nsfw=True,
            pop_interval_s=0.02,
            backoff_base_s=0.01,
            max_backoff_s=0.05,
            stats_interval_s=3600,
        )
        safety = overrides.pop("safety", None)
        assets = overrides.pop("assets", None)
        return WorkerLoop(
            replace(settings, **overrides), self.worker_client, engine, assets, safety
        )

    async def ask(self, seed: int, **body: Any) -> str:
        params = {
            "width": 64,
            "height": 64,
            "steps": 1,
            "seed": str(seed),
            "sampler_name": "k_euler",
            "cfg_scale": 1.0,
            "karras": False,
            **body.pop("params", {}),
        }
        request = GenerationInput(
            prompt=body.pop("prompt", "a photo of a cat"),
            params=GenerationParams(**params),
            models=[MODEL],
            nsfw=body.pop("nsfw", True),
            censor_nsfw=body.pop("censor_nsfw", False),
            **body,
        )
        return (await self.requester.generate(request)).id

    async def finished(self, request_id: str, timeout: float = 60) -> RequestStatusStable:
        async with asyncio.timeout(timeout):
            while True:
                check = await self.requester.check(request_id)
                if check.done or check.faulted:
                    return await self.requester.status(request_id)
                await asyncio.sleep(0.02)


@pytest.fixture
async def stack(embedded_horde: RunningHorde) -> AsyncIterator[Stack]:  # noqa: F811
    requester_key = embedded_horde.add_user("requester", 1000)
    worker_key = embedded_horde.add_user("worker-owner")
    async with (
        HordeClient(requester_key, base_url=embedded_horde.url, limits=NO_LIMITS) as requester,
        Recorder(worker_key, base_url=embedded_horde.url, limits=NO_LIMITS) as worker_client,
    ):
        yield Stack(embedded_horde, requester, worker_client)


async def serving(loop: WorkerLoop, until: Callable[[], Awaitable[Any]]) -> Any:
    """Run the loop until ``until`` returns, then stop it and wait for a clean exit."""
    task = asyncio.create_task(loop.run())
    try:
        async with asyncio.timeout(120):  # a broken loop fails the test instead of hanging it
            return await until()
    finally:
        loop.stop()
        await asyncio.wait_for(task, 30)


async def image_of(stack: Stack, status: RequestStatusStable) -> Image.Image:
    data = await stack.requester.fetch_image(status.generations[0])
    image = Image.open(io.BytesIO(data))
    assert image.format == "WEBP"
    return image


# ---- what the worker advertises ---------------------------------------------------------------


def test_pop_sets_every_capability_flag_and_an_honest_bridge_agent() -> None:
    body = LoopSettings(name="w", models=(MODEL,), nsfw=False, allow_lora=True).pop_input()
    wire = body.model_dump(mode="json")
    assert body.model_fields_set >= set(PopInput.model_fields) - {"priority_usernames"}
    assert wire["bridge_agent"].startswith("hordebot-worker:")
    assert "reGen" not in wire["bridge_agent"]
    assert wire["allow_painting"] is False
    assert wire["allow_controlnet"] is False
    assert wire["allow_post_processing"] is False
    assert wire["allow_lora"] is True
    assert wire["nsfw"] is False
    assert wire["amount"] == 1


# ---- jobs through the loop ----------------------------------------------------------------------


async def test_a_job_comes_back_as_the_engine_renders_it_via_the_upload_link(
    stack: Stack, engine: Engine
) -> None:
    request_id = await stack.ask(seed=1234)
    status = await serving(stack.loop(engine), lambda: stack.finished(request_id))

    generation = status.generations[0]
    assert status.done
    assert generation.seed == "1234"
    assert generation.state == "ok"
    assert len(stack.worker_client.uploads) == 1  # PUT to r2_upload, then submitted "R2"
    assert [body.generation for _, body in stack.worker_client.submits] == ["R2"]
    popped = next(answer for _, _, answer in stack.worker_client.pops if answer.id)
    alone = engine.run(popped.model_copy(update={"id": "x", "ids": ["x"]}))
    got = await stack.requester.fetch_image(generation)
    assert got == alone.images[0].webp
    assert stack.worker_client.pops[0][1].bridge_agent.startswith("hordebot-worker:")


async def test_an_inference_error_is_submitted_faulted_with_its_reason(stack: Stack) -> None:
    engine = Failing()
    request_id = await stack.ask(seed=1)
    status = await serving(stack.loop(engine), lambda: stack.finished(request_id))

    assert status.faulted
    faults = [body for _, body in stack.worker_client.submits]
    assert faults
    assert {body.state for body in faults} == {"faulted"}
    refs = [entry.ref or "" for entry in faults[0].gen_metadata]
    assert any("inference failed: RuntimeError" in ref for ref in refs)


async def test_a_result_for_another_job_is_faulted_never_submitted(
    stack: Stack, engine: Engine
) -> None:
    request_id = await stack.ask(seed=5)
    status = await serving(stack.loop(Swapping(engine)), lambda: stack.finished(request_id))

    assert status.faulted
    assert not status.generations
    assert {body.state for _, body in stack.worker_client.submits} == {"faulted"}
    assert all(body.generation == "faulted" for _, body in stack.worker_client.submits)


def test_check_result_refuses_images_for_other_ids(engine: Engine) -> None:
    job = PopResponse(
        id="a",
        ids=["a"],
        model=MODEL,
        payload={"prompt": "a cat", "ddim_steps": 1, "width": 64, "height": 64, "seed": 3},
    )
    result = engine.run(job)
    assert check_result(job, result)[0].job_id == "a"
    other = JobResult("a", MODEL, (JobImage("b", 3, b"x"),), 1.0, 1.0, 1)
    with pytest.raises(ResultMismatch):
        check_result(job, other)
    with pytest.raises(ResultMismatch):
        check_result(job.model_copy(update={"id": "c", "ids": ["c"]}), result)
    with pytest.raises(ResultMismatch):
        check_result(job, JobResult("a", MODEL, (), 1.0, 1.0, 1))


async def test_three_failures_in_a_row_pause_popping(stack: Stack) -> None:
    engine = Failing()
    ids = [await stack.ask(seed=n) for n in range(2)]
    loop = stack.loop(engine, queue_size=0, pause_after_faults=3, fault_pause_s=0.6)

    async def third_fault_then_next_pop() -> None:
        # Two requests fault three times each; the fourth job waits out the pause.
        while engine.calls < 4:
            await asyncio.sleep(0.01)

    await serving(loop, third_fault_then_next_pop)
    assert all([(await stack.requester.check(i)).restarted >= 1 for i in ids])
    third = [t for t, body in stack.worker_client.submits if body.state == "faulted"][2]
    later_jobs = [t for t, _, answer in stack.worker_client.pops if answer.id and t > third]
    assert later_jobs
    assert later_jobs[0] - third >= 0.5  # the pause began just before that submit


async def test_censor_job_without_a_safety_model_is_refused_before_inference(
    stack: Stack, engine: Engine
) -> None:
    gated = Gated(engine)
    gated.gate.set()
    request_id = await stack.ask(seed=9, nsfw=False, censor_nsfw=True)
    status = await serving(stack.loop(gated), lambda: stack.finished(request_id))

    assert status.faulted
    assert gated.ran == []
    refs = [e.ref or "" for _, body in stack.worker_client.submits for e in body.gen_metadata]
    assert any("no safety classifier" in ref for ref in refs)


def classifier(folder: Path, fires: bool) -> Path:
    """A tiny random ViT NSFW classifier whose verdict is fixed by its output bias."""
    import torch
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    config = ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        id2label={0: "normal", 1: "nsfw"},
        label2id={"normal": 0, "nsfw": 1},
    )
    model = ViTForImageClassification(config)
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor([0.0, 6.0] if fires else [6.0, 0.0]))
    model.save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


@pytest.mark.parametrize("fires", [True, False])
async def test_safety_classifier_decides_censored_or_ok(
    stack: Stack, engine: Engine, tmp_path: Path, fires: bool
) -> None:
    safety = ImageClassifierSafety.load(classifier(tmp_path / "nsfw", fires))
    request_id = await stack.ask(seed=11, nsfw=False, censor_nsfw=True)
    loop = stack.loop(engine, safety=safety)
    status = await serving(loop, lambda: stack.finished(request_id))

    generation = status.generations[0]
    pixels = (await image_of(stack, status)).convert("L").getextrema()
    if fires:
        assert generation.censored
        assert list(stack.worker_client.states().values()) == ["censored"]
        assert pixels[1] <= 8  # a black stand-in, not the picture
        assert [(m.type, m.value) for m in generation.gen_metadata] == [("censorship", "nsfw")]
    else:
        assert not generation.censored
        assert pixels[1] - pixels[0] > 8


async def test_a_job_whose_ttl_runs_out_while_queued_is_handed_back_unrun(
    make_embedded_horde: Callable[..., RunningHorde],  # noqa: F811
    engine: Engine,
) -> None:
    horde = make_embedded_horde(job_ttl_s=1, maintenance_interval_s=30)
    requester_key, worker_key = horde.add_user("r", 100), horde.add_user("w")
    async with (
        HordeClient(requester_key, base_url=horde.url, limits=NO_LIMITS) as requester,
        Recorder(worker_key, base_url=horde.url, limits=NO_LIMITS) as worker_client,
    ):
        stack = Stack(horde, requester, worker_client)
        first, second = await stack.ask(seed=1), await stack.ask(seed=2)
        gated = Gated(engine)
        loop = stack.loop(gated, queue_size=1)

        async def hold_first_past_the_ttl() -> None:
            while len(worker_client.pops) < 2 or not gated.started.is_set():
                await asyncio.sleep(0.01)
            await asyncio.sleep(1.1)
            gated.gate.set()
            while len(worker_client.submits) < 2:
                await asyncio.sleep(0.01)

        await serving(loop, hold_first_past_the_ttl)
    second_job = worker_client.pops[1][2].id
    assert gated.ran == [worker_client.pops[0][2].id]
    assert worker_client.states()[second_job] == "faulted"
    reasons = [
        e.ref or "" for _, b in worker_client.submits if b.id == second_job for e in b.gen_metadata
    ]
    assert any("TTL" in reason for reason in reasons)
    del first, second


async def test_stop_finishes_the_running_job_and_faults_the_queued_one(
    stack: Stack, engine: Engine
) -> None:
    first, second = await stack.ask(seed=21), await stack.ask(seed=22)
    gated = Gated(engine)
    loop = stack.loop(gated, queue_size=1)
    task = asyncio.create_task(loop.run())
    try:
        async with asyncio.timeout(60):
            while len(stack.worker_client.pops) < 2 or not gated.started.is_set():
                await asyncio.sleep(0.01)
    finally:
        loop.stop()
        gated.gate.set()
        await asyncio.wait_for(task, 30)

    running, queued = (answer.id for _, _, answer in stack.worker_client.pops[:2])
    assert stack.worker_client.states() == {running: "ok", queued: "faulted"}
    assert (await stack.requester.check(first)).done
    assert (await stack.requester.check(second)).restarted == 1


async def test_abort_faults_the_running_job_without_waiting_for_it(
    stack: Stack, engine: Engine
) -> None:
    await stack.ask(seed=31)
    gated = Gated(engine)
    loop = stack.loop(gated, queue_size=0)
    task = asyncio.create_task(loop.run())
    try:
        async with asyncio.timeout(60):
            while not gated.started.is_set():
                await asyncio.sleep(0.01)
        loop.stop(abort=True)
        await asyncio.wait_for(task, 30)
    finally:
        loop.stop(abort=True)
        gated.gate.set()
        await asyncio.to_thread(gated.done.wait, 30)  # the abandoned thread ends inside the test
    assert list(stack.worker_client.states().values()) == ["faulted"]
    refs = [e.ref or "" for _, b in stack.worker_client.submits for e in b.gen_metadata]
    assert any("stopped during inference" in ref for ref in refs)


async def test_a_refused_key_stops_the_worker_with_one_line(
    embedded_horde: RunningHorde,  # noqa: F811
    engine: Engine,
) -> None:
    async with HordeClient("not-a-key", base_url=embedded_horde.url, limits=NO_LIMITS) as client:
        loop = WorkerLoop(LoopSettings(name="w", models=(MODEL,)), client, engine)
        with pytest.raises(WorkerStopped) as refused:
            await asyncio.wait_for(loop.run(), 30)
    assert "\n" not in str(refused.value)
    assert "API key" in str(refused.value)


class Flaky(Recorder):
    """The real client whose first pops fail as an overloaded horde's do."""

    failures = 3

    async def pop(self, request: PopInput) -> PopResponse:
        if self.failures:
            self.failures -= 1
            self.pops.append((time.monotonic(), request, PopResponse()))
            raise ServerError("overloaded", status=503)
        return await super().pop(request)


async def test_pop_errors_back_off_and_the_worker_recovers(
    embedded_horde: RunningHorde,  # noqa: F811
    engine: Engine,
) -> None:
    requester_key = embedded_horde.add_user("r", 100)
    worker_key = embedded_horde.add_user("w")
    async with (
        HordeClient(requester_key, base_url=embedded_horde.url, limits=NO_LIMITS) as requester,
        Flaky(worker_key, base_url=embedded_horde.url, limits=NO_LIMITS) as worker_client,
    ):
        stack = Stack(embedded_horde, requester, worker_client)
        request_id = await stack.ask(seed=3)
        status = await serving(stack.loop(engine), lambda: stack.finished(request_id))
    assert status.done
    assert worker_client.failures == 0
    assert len(worker_client.pops) >= 4


async def test_an_unreachable_source_image_runs_as_txt2img_and_says_so(
    embedded_horde: RunningHorde,  # noqa: F811
    engine: Engine,
    unused_port: int,
) -> None:
    requester_key = embedded_horde.add_user("r", 100)
    worker_key = embedded_horde.add_user("w")
    once = RetryPolicy(attempts=1)
    async with (
        HordeClient(requester_key, base_url=embedded_horde.url, limits=NO_LIMITS) as requester,
        Recorder(worker_key, base_url=embedded_horde.url, limits=NO_LIMITS, retry=once) as wc,
    ):
        stack = Stack(embedded_horde, requester, wc)
        source = f"http://127.0.0.1:{unused_port}/gone.webp"
        request_id = await stack.ask(seed=4, source_image=source)
        status = await serving(stack.loop(engine), lambda: stack.finished(request_id))
    generation = status.generations[0]
    assert generation.state == "ok"
    assert ("source_image", "download_failed") in {
        (m.type, m.value) for m in generation.gen_metadata
    }


async def test_a_base64_source_image_is_used_for_img2img(stack: Stack, engine: Engine) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (250, 250, 250)).save(buffer, "WEBP")
    source = buffer.getvalue()
    encoded = base64.b64encode(source).decode()
    plain = await stack.ask(seed=8)
    img2img = await stack.ask(seed=8, source_image=encoded, params={"denoising_strength": 0.5})

    async def both() -> tuple[RequestStatusStable, RequestStatusStable]:
        return await stack.finished(plain), await stack.finished(img2img)

    a, b = await serving(stack.loop(engine), both)
    assert b.generations[0].gen_metadata == []
    popped = next(p for _, _, p in stack.worker_client.pops if p.id == b.generations[0].id)
    assert popped.source_image is not None
    alone = engine.run(popped.model_copy(update={"id": "x", "ids": ["x"]}), None, source)
    got = await stack.requester.fetch_image(b.generations[0])
    assert got == alone.images[0].webp
    assert got != await stack.requester.fetch_image(a.generations[0])


async def test_a_source_image_url_is_downloaded_for_img2img(stack: Stack, engine: Engine) -> None:
    first = await stack.ask(seed=12)
    loop = stack.loop(engine)
    task = asyncio.create_task(loop.run())
    try:
        made = await stack.finished(first)
        link = made.generations[0].img  # the horde's own download link for that image
        assert link.startswith("http://127.0.0.1:")
        second = await stack.ask(seed=12, source_image=link, params={"denoising_strength": 0.5})
        status = await stack.finished(second)
    finally:
        loop.stop()
        await asyncio.wait_for(task, 30)
    assert status.generations[0].gen_metadata == []
    popped = next(p for _, _, p in stack.worker_client.pops if p.id == status.generations[0].id)
    source = await stack.requester.fetch_image(made.generations[0])
    alone = engine.run(popped.model_copy(update={"id": "x", "ids": ["x"]}), None, source)
    assert await stack.requester.fetch_image(status.generations[0]) == alone.images[0].webp


@pytest.mark.parametrize("policy", ["fault", "skip"])
async def test_an_unavailable_lora_faults_the_job_or_is_skipped_as_configured(
    stack: Stack, engine: Engine, policy: str
) -> None:
    lora = LoraSpec(name="123", is_version=True)
    request_id = await stack.ask(seed=13, params={"loras": [lora]})
    loop = stack.loop(engine, asset_failure=policy)  # no asset store: LoRAs are off
    status = await serving(loop, lambda: stack.finished(request_id))
    if policy == "fault":
        assert status.faulted
        notes = {
            (e.type, e.value, e.ref) for _, b in stack.worker_client.submits for e in b.gen_metadata
        }
        assert ("lora", "download_failed", "123") in notes
    else:
        assert status.done
        notes = {(e.type, e.value, e.ref) for e in status.generations[0].gen_metadata}
        assert notes == {("lora", "download_failed", "123")}


@pytest.fixture
def unused_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
