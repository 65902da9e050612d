"""Playing a horde worker over HTTP in tests: pop a job, upload a tiny WebP, submit it."""

from __future__ import annotations

import asyncio
import base64
import io

from PIL import Image

from core.horde.client import HordeClient
from core.horde.wire import PopInput, PopResponse, SubmitInput

AGENT = "hordebot-test-worker:0.1.0:https://github.com/hordebot/hordebot"


def tiny_webp(colour: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    """A 64x64 WebP of one colour."""
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), colour).save(buffer, "WEBP")
    return buffer.getvalue()


def pop_input(name: str, models: list[str]) -> PopInput:
    """What the test worker asks for: these models, up to 1024x1024."""
    return PopInput(name=name, models=models, bridge_agent=AGENT, nsfw=True, max_pixels=1024 * 1024)


async def check_in(worker: HordeClient, name: str, models: list[str]) -> PopResponse:
    """One pop, which makes the worker (and its models) known to the horde."""
    return await worker.pop(pop_input(name, models))


async def finish_one(
    worker: HordeClient, name: str, models: list[str], *, attempts: int = 200
) -> PopResponse:
    """Pop the next job (retrying while there is none) and hand in one image for it."""
    for _ in range(attempts):
        job = await worker.pop(pop_input(name, models))
        if job.id is not None:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError(f"no job to pop; skipped: {job.skipped}")
    assert job.payload is not None
    upload = job.r2_upload or (job.r2_uploads[0] if job.r2_uploads else None)
    if upload is not None:
        await worker.upload_r2(upload, tiny_webp())
        generation = "R2"
    else:
        generation = base64.b64encode(tiny_webp()).decode()
    await worker.submit(
        SubmitInput(id=job.id or "", generation=generation, seed=int(job.payload.seed or 0))
    )
    return job
