"""Load on the embedded horde: simulated GPU workers and bot clients over loopback.

Starts ``hordebot horde serve`` (SQLite, port 0) as a child process, so the server has its own
core, then runs concurrent clients (generate/async, check, status) and workers (pop, R2 PUT or
base64 submit) with async httpx for a fixed time. Prints pop→submit cycles per second and the
p50/p99 latency of pops. Goal on a 2-core machine: ≥ 200 cycles/s, p99 pop < 50 ms.

    .venv/bin/python bench/horde_load.py [--seconds 10] [--workers 8] [--clients 12] [--procs 2]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import io
import multiprocessing
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from PIL import Image

from core.horde.server import add_user

READY = re.compile(r"horde listening on (http://\S+/api)")
ANON = "0000000000"
OUTSTANDING_PER_CLIENT = 25  # under the horde's 30 waiting images per user


@dataclass
class Tally:
    """What the simulated peers measured after the warm-up (from ``start`` on)."""

    start: float
    pop_ms: list[float] = field(default_factory=list)
    cycles: int = 0
    empty_pops: int = 0
    requests: int = 0
    throttled: int = 0
    finished: int = 0
    errors: list[str] = field(default_factory=list)

    def measuring(self) -> bool:
        return time.perf_counter() >= self.start


def tiny_webp() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (30, 90, 200)).save(buffer, "WEBP")
    return buffer.getvalue()


def server_flags(folder: Path) -> list[str]:
    return ["--db", f"sqlite:///{folder / 'horde.db'}", "--maintenance-interval", "5"]


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a child process (Linux /proc), for the load split."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(folder: Path) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and fixed arguments
        [sys.executable, "-m", "bots.app", "horde", "serve", "--port", "0", *server_flags(folder)],
        cwd=folder,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stderr is not None
    for line in process.stderr:
        match = READY.search(line)
        if match:
            return process, match.group(1)
    raise SystemExit(f"the horde did not start (exit code {process.wait()})")


async def worker(
    http: httpx.AsyncClient, key: str, name: str, use_r2: bool, stop: float, tally: Tally
) -> None:
    image = tiny_webp()
    encoded = base64.b64encode(image).decode()
    headers = {"apikey": key}
    pop_body = {"name": name, "models": ["stable_diffusion"], "nsfw": True, "amount": 1}
    while time.perf_counter() < stop:
        started = time.perf_counter()
        popped = await http.post("/v2/generate/pop", json=pop_body, headers=headers)
        measured = tally.measuring()
        if measured:
            tally.pop_ms.append((time.perf_counter() - started) * 1000)
        job = popped.json()
        if job.get("id") is None:
            tally.empty_pops += measured
            await asyncio.sleep(0.01)
            continue
        generation = encoded
        if use_r2:
            put = await http.put(job["r2_upload"], content=image)
            if put.status_code != 200:
                tally.errors.append(f"put {put.status_code}")
                continue
            generation = "R2"
        body = {"id": job["id"], "generation": generation, "seed": job["payload"]["seed"]}
        submitted = await http.post("/v2/generate/submit", json=body, headers=headers)
        if submitted.status_code != 200:
            tally.errors.append(f"submit {submitted.status_code} {submitted.text[:80]}")
        elif tally.measuring():
            tally.cycles += 1


async def client(http: httpx.AsyncClient, key: str, n: int, stop: float, tally: Tally) -> None:
    headers = {"apikey": key}
    outstanding: dict[str, float] = {}
    body = {"prompt": "a lighthouse ### blurry", "params": {"steps": 20, "n": n}, "r2": True}
    while time.perf_counter() < stop:
        while len(outstanding) < OUTSTANDING_PER_CLIENT // n:
            answer = await http.post("/v2/generate/async", json=body, headers=headers)
            if answer.status_code == 429:  # the horde's per-user limit: back off like a bot
                tally.throttled += 1
                break
            if answer.status_code != 202:
                tally.errors.append(f"async {answer.status_code} {answer.text[:80]}")
                break
            outstanding[answer.json()["id"]] = time.perf_counter()
            tally.requests += tally.measuring()
        now = time.perf_counter()
        # Like a bot: check each request at most once a second, status once when done.
        due = [rid for rid, last in outstanding.items() if now - last >= 1.0]
        for request_id in due:
            check = (await http.get(f"/v2/generate/check/{request_id}")).json()
            outstanding[request_id] = time.perf_counter()
            if check.get("done"):
                await http.get(f"/v2/generate/status/{request_id}")
                del outstanding[request_id]
                tally.finished += tally.measuring()
        await asyncio.sleep(0.05)


async def run(
    url: str,
    worker_keys: list[str],
    client_keys: list[str],
    first_worker: int,
    n: int,
    r2_share: float,
    start: float,
    seconds: float,
) -> Tally:
    r2_workers = round(r2_share * len(worker_keys))
    # One second of warm-up (connections, worker check-ins, a full queue) is not counted.
    tally = Tally(start=start + 1.0)
    stop = tally.start + seconds
    await asyncio.sleep(max(0.0, start - time.perf_counter()))
    # One client per peer, as each bot and worker is its own program (httpx's pool also slows
    # down with many connections, which would bill the load generator, not the horde).
    async with contextlib.AsyncExitStack() as stack:
        peers = [
            await stack.enter_async_context(httpx.AsyncClient(base_url=url, timeout=30))
            for _ in range(len(worker_keys) + len(client_keys))
        ]
        await asyncio.gather(
            *(
                client(http, key, n, stop, tally)
                for http, key in zip(peers[: len(client_keys)], client_keys, strict=True)
            ),
            *(
                worker(http, key, f"gpu-{first_worker + i}", i < r2_workers, stop, tally)
                for i, (http, key) in enumerate(
                    zip(peers[len(client_keys) :], worker_keys, strict=True)
                )
            ),
        )
    return tally


def generate(
    url: str,
    worker_keys: list[str],
    client_keys: list[str],
    first_worker: int,
    n: int,
    r2_share: float,
    start_wall: float,
    seconds: float,
) -> Tally:
    """One load-generator process: its share of the workers and clients."""
    start = time.perf_counter() + (start_wall - time.time())
    return asyncio.run(
        run(url, worker_keys, client_keys, first_worker, n, r2_share, start, seconds)
    )


def merge(tallies: list[Tally]) -> Tally:
    total = Tally(start=0.0)
    for part in tallies:
        total.pop_ms += part.pop_ms
        total.cycles += part.cycles
        total.empty_pops += part.empty_pops
        total.requests += part.requests
        total.throttled += part.throttled
        total.finished += part.finished
        total.errors += part.errors
    return total


def split(items: list[str], parts: int) -> list[list[str]]:
    return [items[k::parts] for k in range(parts)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--clients", type=int, default=12)
    parser.add_argument("--n", type=int, default=4, help="images per request (bots ask for 1-4)")
    parser.add_argument(
        "--r2-share", type=float, default=0.5, help="share of workers that PUT then submit R2"
    )
    parser.add_argument(
        "--procs", type=int, default=2, help="load-generator processes (httpx costs CPU)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        db_url = f"sqlite:///{Path(folder) / 'horde.db'}"
        worker_keys = [add_user(db_url, f"owner{i}")[1] for i in range(args.workers)]
        client_keys = [add_user(db_url, f"bot{i}", kudos=1e6)[1] for i in range(args.clients)]
        process, url = start_server(Path(folder))
        try:
            server_before, own_before = cpu_seconds(process.pid), os.times()
            start_wall = time.time() + 2.0  # time for the generator processes to start
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(args.procs, mp_context=context) as pool:
                jobs = [
                    pool.submit(
                        generate,
                        url,
                        workers,
                        clients,
                        k * len(worker_keys),
                        args.n,
                        args.r2_share,
                        start_wall,
                        args.seconds,
                    )
                    for k, (workers, clients) in enumerate(
                        zip(
                            split(worker_keys, args.procs),
                            split(client_keys, args.procs),
                            strict=True,
                        )
                    )
                ]
                tally = merge([job.result() for job in jobs])
            server_cpu = cpu_seconds(process.pid) - server_before
            own = os.times()
            generator_cpu = sum(own[:4]) - sum(own_before[:4])
        finally:
            process.terminate()
            process.wait(30)
            if process.stderr is not None:
                process.stderr.close()
    pops = sorted(tally.pop_ms)
    p50 = statistics.median(pops) if pops else float("nan")
    p99 = pops[min(len(pops) - 1, int(len(pops) * 0.99))] if pops else float("nan")
    print(
        f"embedded horde load: {args.workers} workers ({args.r2_share:.0%} R2), {args.clients} "
        f"clients asking n={args.n}, {args.seconds:g} s, SQLite"
    )
    print(f"  pop→submit cycles: {tally.cycles / args.seconds:.0f}/s ({tally.cycles} in all)")
    print(
        f"  pop latency: p50 {p50:.1f} ms, p99 {p99:.1f} ms over {len(pops)} pops "
        f"({tally.empty_pops} empty)"
    )
    print(
        f"  requests accepted {tally.requests}, finished and fetched {tally.finished}, "
        f"throttled (429 TooManyPrompts) {tally.throttled}"
    )
    wall = args.seconds + 1.0
    print(
        f"  CPU over {wall:g} s: server {server_cpu:.1f} s ({server_cpu / wall:.0%} of a core), "
        f"load generators ({args.procs}) {generator_cpu:.1f} s ({generator_cpu / wall:.0%})"
    )
    print(f"  goal: ≥ 200 cycles/s and p99 pop < 50 ms; errors: {len(tally.errors)}")
    for error in tally.errors[:5]:
        print(f"    {error}")
    return 1 if tally.errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
