"""Kill the bot (SIGKILL) with 50 requests in flight, restart it: 50 replies, each exactly once.

The bot runs as a real ``hordebot run`` process with its embedded horde and the console adapter;
the test plays the worker over HTTP once the second process is up.
"""

from __future__ import annotations

import base64
import io
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.support.stack_config import write_stack_config

pytestmark = pytest.mark.slow

REQUESTS = 50


def _hordebot(*args: str, cwd: Path, stdin: int | None) -> subprocess.Popen[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "bots.app", *args],
        cwd=cwd,
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


class _Lines:
    """Collects a pipe's lines in a thread so the child never blocks on a full pipe."""

    def __init__(self, stream: io.TextIOBase) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: io.TextIOBase) -> None:
        for line in stream:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if match := re.search(pattern, line):
                    return match
            time.sleep(0.05)
        raise AssertionError(f"no line matching {pattern!r} in {self.lines[-20:]}")

    def join(self) -> None:
        self._thread.join(timeout=10)


def _stored(db: Path) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(db) as conn:
        try:
            row = conn.execute("select count(*) from generations").fetchone()
        except sqlite3.OperationalError:
            return 0
    return int(row[0])


def _webp() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buffer, format="WEBP")
    return base64.b64encode(buffer.getvalue()).decode()


def _play_worker(url: str, key: str, jobs: int, timeout: float) -> set[str]:
    done: set[str] = set()
    image = _webp()
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=url, headers={"apikey": key}, timeout=10) as client:
        while len(done) < jobs and time.monotonic() < deadline:
            pop = client.post(
                "/v2/generate/pop",
                json={
                    "name": "test-worker",
                    "models": ["stable_diffusion"],
                    "nsfw": False,
                    "max_pixels": 4_194_304,
                    "bridge_agent": "hordebot-test:0:local",
                },
            ).json()
            if not pop.get("id"):
                time.sleep(0.1)
                continue
            for job_id in pop["ids"]:
                answer = client.post(
                    "/v2/generate/submit",
                    json={"id": job_id, "generation": image, "state": "ok", "seed": 7},
                )
                assert answer.status_code == 200, answer.text
                done.add(job_id)
    return done


def test_sigkill_with_50_in_flight_then_restart_replies_exactly_once(tmp_path: Path) -> None:
    config = write_stack_config(tmp_path)
    bot_db = tmp_path / "var" / "hordebot.db"
    first = _hordebot("run", "--config", str(config), cwd=tmp_path, stdin=subprocess.PIPE)
    assert first.stdin is not None
    assert first.stdout is not None
    assert first.stderr is not None
    first_out, first_err = _Lines(first.stdout), _Lines(first.stderr)
    for index in range(REQUESTS):
        first.stdin.write(f"draw me lighthouse number {index} --steps 4\n")
    first.stdin.flush()
    deadline = time.monotonic() + 120
    while _stored(bot_db) < REQUESTS and time.monotonic() < deadline:
        assert first.poll() is None, first_err.lines[-20:]
        time.sleep(0.2)
    assert _stored(bot_db) == REQUESTS, first_err.lines[-20:]
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    first_out.join()
    first_err.join()

    horde_db = f"sqlite:///{tmp_path / 'var' / 'horde.db'}"
    added = subprocess.run(
        [sys.executable, "-m", "bots.app", "horde", "user", "add", "tester", "--db", horde_db],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    worker_key = added.stdout.strip().splitlines()[-1]

    second = _hordebot("run", "--config", str(config), cwd=tmp_path, stdin=subprocess.DEVNULL)
    assert second.stdout is not None
    assert second.stderr is not None
    second_out, second_err = _Lines(second.stdout), _Lines(second.stderr)
    url = second_err.wait_for(r"horde listening on (\S+)", timeout=60).group(1)
    jobs = _play_worker(url, worker_key, REQUESTS, timeout=120)
    assert len(jobs) == REQUESTS
    assert second.wait(timeout=120) == 0, second_err.lines[-20:]
    second_out.join()
    second_err.join()

    for process in (first, second):
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream is not None:
                stream.close()

    paths = [line for line in first_out.lines + second_out.lines if line.endswith(".webp")]
    generations = [Path(line).name.rsplit("-", 1)[0] for line in paths]
    assert len(paths) == REQUESTS, paths
    assert len(set(generations)) == REQUESTS
    for line in paths:
        with Image.open(line) as image:
            assert image.format == "WEBP"
