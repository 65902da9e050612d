"""What the worker loop costs over the bare pipeline, what LCM saves, how much download it hides.

Three measurements with the tiny random-weight model on this machine's CPU, side by side:

1. **Loop overhead.** The same jobs (same size, steps, sampler and seeds) run once straight
   through ``Engine.run`` and once through the whole worker: an embedded horde on 127.0.0.1 in a
   process of its own (as in production, where the worker and the horde never share a process),
   requests queued over HTTP, then ``WorkerLoop`` popping, inferring in a thread, uploading each
   WebP to the horde's upload link and submitting. The ratio is wall time through the loop over
   wall time of the bare pipeline (goal: at most 1.05); rounds alternate, the median is printed.
   On a 2-core CPU the horde's own work per request competes with inference for the cores, so
   the fixed cost per job (printed in ms) matters more than the ratio for tiny jobs. The same
   machinery is then timed with an engine that answers at once: that is the loop's own cost per
   job (pop, upload, submit, both sides of HTTP), free of inference noise.
2. **LCM.** One job with the ``lcm`` sampler at 4 steps against ``k_euler`` at 30 steps (engine
   only; median of three each).
3. **Hidden LoRA download.** Two jobs: a long one without LoRA, then one whose LoRA the fake
   CivitAI serves slowly (a delay per 4 KiB chunk, set so the download takes about 60 % of the
   first job). With ``queue_size = 1`` the second job is popped while the first infers and its
   download starts at once; the share hidden is 1 - (time the engine waited for the download) /
   (download time). ``queue_size = 0`` is shown beside it.

Run: ``.venv/bin/python bench/worker_overhead.py [--jobs N] [--size PX] [--steps N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository (and tests/) importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.horde.client import HordeClient
from core.horde.server import EmbeddedHorde, HordeSettings
from core.horde.wire import (
    GenerationInput,
    GenerationParams,
    LoraSpec,
    PopResponse,
    SubmitInput,
    SubmitResponse,
)
from tests.peers.civitai import CHUNK, FakeCivitai, FakeFile
from worker_node.assets import AssetStore
from worker_node.engine import Engine, JobAssets, JobImage, JobResult, ModelSpec
from worker_node.loop import LoopSettings, WorkerLoop, inference_executor
from worker_node.pipelines import quiet_libraries
from worker_node.stats import StatsSnapshot
from worker_node.tiny_model import SD1, build_tiny_model, write_tiny_lora

MODEL = "tiny-sd"
LORA_VERSION = 4242


def job_params(size: int, steps: int, seed: int, **extra: Any) -> dict[str, Any]:
    """One job's settings, as the requester asks for them."""
    return {
        "width": size,
        "height": size,
        "steps": steps,
        "seed": str(seed),
        "sampler_name": "k_euler",
        "cfg_scale": 5.0,
        "karras": False,
        **extra,
    }


def as_pop(params: dict[str, Any], job_id: str = "bench") -> PopResponse:
    """The same job as a worker receives it, for the bare pipeline."""
    payload = {k: v for k, v in params.items() if k not in ("steps", "loras")}
    payload.update(prompt="a photo of a cat", ddim_steps=params["steps"], seed=int(params["seed"]))
    return PopResponse(id=job_id, ids=[job_id], model=MODEL, payload=payload)


def timed(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


class InstantEngine:
    """Answers every job at once with a fixed WebP: the loop and the horde, timed alone."""

    def __init__(self, webp: bytes) -> None:
        self._webp = webp

    def run(
        self, job: PopResponse, assets: JobAssets | None = None, source_image: bytes | None = None
    ) -> JobResult:
        images = tuple(JobImage(job_id, 1, self._webp) for job_id in job.ids)
        return JobResult(job.id or "", job.model or MODEL, images, 0.0, 0.0, 0)


class CountingClient(HordeClient):
    """The worker's horde client, telling the bench the moment the last image is accepted."""

    def __init__(self, expected: int, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._left = expected
        self.all_in = asyncio.Event()

    async def submit(self, result: SubmitInput) -> SubmitResponse:
        answer = await super().submit(result)
        if result.state != "faulted":
            self._left -= 1
            if self._left <= 0:
                self.all_in.set()
        return answer


def _serve_horde(conn: Any, db_url: str) -> None:
    """The embedded horde in a child process: send (url, requester key, worker key), then wait."""

    async def serve() -> None:
        settings = HordeSettings(db_url=db_url, user_concurrency=10_000)
        async with EmbeddedHorde(settings, port=0) as horde:
            requester = await horde.add_user("requester", kudos=1e6)
            worker = await horde.add_user("worker")
            conn.send((horde.url, requester, worker))
            await asyncio.to_thread(conn.recv)

    asyncio.run(serve())


class HordeProcess:
    """An embedded horde on 127.0.0.1 in its own process, for one measurement."""

    def __init__(self, db_url: str) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_serve_horde, args=(child, db_url), daemon=True)

    def __enter__(self) -> tuple[str, str, str]:
        self._process.start()
        if not self._conn.poll(60):
            raise RuntimeError("the embedded horde did not start")
        url, requester, worker = self._conn.recv()
        return str(url), str(requester), str(worker)

    def __exit__(self, *_: object) -> None:
        self._conn.send("stop")
        self._process.join(30)
        if self._process.is_alive():
            self._process.kill()


class Bench:
    """The tiny model, its engine and a scratch folder for one run of the benchmark."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.model_dir = build_tiny_model(root / "model", seed=0, baseline=SD1)
        self.lora = write_tiny_lora(self.model_dir, root / "lora.safetensors")
        self.engine = Engine([ModelSpec(MODEL, self.model_dir, SD1)], device="cpu")
        # Inference threads live as long as a worker does; so they do across the rounds here.
        self.executor = inference_executor()
        self.executor.submit(self.engine.warmup).result()
        self._hordes = 0

    def bare(self, jobs: list[dict[str, Any]]) -> float:
        """Wall seconds to run the jobs one after another through ``Engine.run``, on the same
        inference thread the loop uses."""
        pops = [as_pop(params, f"bare-{n}") for n, params in enumerate(jobs)]
        run = self.executor.submit(lambda: timed(lambda: [self.engine.run(pop) for pop in pops]))
        return run.result()

    def through_loop(
        self,
        jobs: list[dict[str, Any]],
        *,
        queue_size: int = 1,
        civitai: FakeCivitai | None = None,
        engine: Any = None,
    ) -> tuple[float, StatsSnapshot]:
        """Wall seconds from the worker's start until every job was submitted, and its stats."""
        self._hordes += 1
        with HordeProcess(f"sqlite:///{self.root / f'horde-{self._hordes}.db'}") as (
            url,
            requester,
            worker,
        ):
            return asyncio.run(
                self._serve(
                    url, requester, worker, jobs, queue_size, civitai, engine or self.engine
                )
            )

    async def _serve(
        self,
        url: str,
        requester_key: str,
        worker_key: str,
        jobs: list[dict[str, Any]],
        queue_size: int,
        civitai: FakeCivitai | None,
        engine: Any,
    ) -> tuple[float, StatsSnapshot]:
        no_limits: dict[str, Any] = {}
        async with (
            HordeClient(requester_key, base_url=url, limits=no_limits) as requester,
            CountingClient(len(jobs), worker_key, base_url=url, limits=no_limits) as client,
        ):
            for params in jobs:
                await requester.generate(
                    GenerationInput(
                        prompt="a photo of a cat",
                        params=GenerationParams(**params),
                        models=[MODEL],
                        nsfw=True,
                        censor_nsfw=False,
                    )
                )
            store = None
            if civitai is not None:
                store = AssetStore(
                    self.root / f"assets-{self._hordes}", civitai.base_url, retries=1
                )
            settings = LoopSettings(
                name="bench-worker",
                models=(MODEL,),
                nsfw=True,
                queue_size=queue_size,
                pop_interval_s=0.01,
                stats_interval_s=3600,
            )
            loop = WorkerLoop(settings, client, engine, store, executor=self.executor)
            started = time.perf_counter()
            task = asyncio.create_task(loop.run())
            await client.all_in.wait()
            elapsed = time.perf_counter() - started
            loop.stop()
            await task
            if store is not None:
                await store.aclose()
            return elapsed, loop.stats.snapshot()


def overhead(bench: Bench, count: int, size: int, steps: int, rounds: int) -> None:
    jobs = [job_params(size, steps, seed) for seed in range(1, count + 1)]
    print(f"1. loop overhead: {count} jobs of {size}x{size}, {steps} steps, k_euler, cfg 5")
    ratios = []
    for round_number in range(1, rounds + 1):
        bare = bench.bare(jobs)
        looped, stats = bench.through_loop(jobs)
        ratios.append(looped / bare)
        print(
            f"   round {round_number}: bare pipeline {bare:6.2f} s ({bare / count:.3f} s/job), "
            f"worker loop {looped:6.2f} s ({looped / count:.3f} s/job, {stats.its:.1f} it/s) "
            f"-> ratio {looped / bare:.3f}, {(looped - bare) / count * 1000:+.0f} ms/job"
        )
    print(f"   ratio, median of {rounds} rounds: {statistics.median(ratios):.3f}   goal <= 1.05")
    webp = bench.engine.run(as_pop(jobs[0])).images[0].webp
    many = [job_params(size, steps, seed) for seed in range(1, 201)]
    alone, _ = bench.through_loop(many, engine=InstantEngine(webp))
    print(
        f"   the machinery alone (instant engine, 200 jobs): {alone:.2f} s, "
        f"{alone / len(many) * 1000:.1f} ms/job"
    )


def lcm(bench: Bench, size: int) -> float:
    fast = as_pop(job_params(size, 4, 9, sampler_name="lcm", cfg_scale=1.5))
    slow = as_pop(job_params(size, 30, 9))
    fast_s = statistics.median(timed(lambda: bench.engine.run(fast)) for _ in range(3))
    slow_s = statistics.median(timed(lambda: bench.engine.run(slow)) for _ in range(3))
    print(f"2. LCM, {size}x{size}: lcm 4 steps {fast_s:.3f} s, k_euler 30 steps {slow_s:.3f} s")
    print(f"   ratio lcm-4 / euler-30: {fast_s / slow_s:.3f} ({slow_s / fast_s:.1f}x faster)")
    return slow_s


def hidden_download(bench: Bench, size: int, long_job_s: float) -> None:
    payload = bench.lora.read_bytes()
    chunks = -(-len(payload) // CHUNK)
    delay = 0.6 * long_job_s / chunks
    long_job = job_params(size, 30, 21)
    lora = LoraSpec(name=str(LORA_VERSION), is_version=True).model_dump()
    with_lora = job_params(size, 4, 22, loras=[lora])
    print(
        f"3. LoRA download behind the running job: {len(payload) // 1024} KiB served at "
        f"{delay * 1000:.0f} ms per 4 KiB chunk (~{delay * chunks:.2f} s), "
        f"running job ~{long_job_s:.2f} s"
    )
    for queue_size in (1, 0):
        with FakeCivitai() as civitai:
            civitai.add_version(77, LORA_VERSION, [FakeFile(payload)])
            civitai.chunk_delay_s = delay
            _, stats = bench.through_loop(
                [long_job, with_lora], queue_size=queue_size, civitai=civitai
            )
        print(
            f"   queue_size {queue_size}: download {stats.fetch_s:.2f} s, engine waited "
            f"{stats.fetch_wait_s:.2f} s -> hidden {stats.hidden_fetch_share:.0%}"
            + ("   goal >= 90 %" if queue_size else "")
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=12, help="jobs per overhead round")
    parser.add_argument("--size", type=int, default=128, help="image side in pixels")
    parser.add_argument("--steps", type=int, default=8, help="steps per overhead job")
    parser.add_argument("--rounds", type=int, default=5, help="overhead rounds (bare, loop)")
    parser.add_argument("--only-overhead", action="store_true", help="skip sections 2 and 3")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    # diffusers' schedulers trip numpy deprecations inside torch; not ours, and noise here.
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    quiet_libraries()
    with tempfile.TemporaryDirectory(prefix="worker-bench-") as scratch:
        bench = Bench(Path(scratch))
        print(f"tiny SD1.5 model on CPU ({bench.engine.device}), torch threads as configured")
        overhead(bench, args.jobs, args.size, args.steps, args.rounds)
        if args.only_overhead:
            return
        long_job_s = lcm(bench, args.size)
        hidden_download(bench, args.size, long_job_s)


if __name__ == "__main__":
    main()
