"""``hordebot horde serve`` as a real process: fast start, clean stop, and ``kill -9``.

The acceptance figures are printed, not asserted: start-up time is reported (run with ``-s``), and
the test only requires readiness within a generous timeout.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bots.app import main

READY = re.compile(r"horde listening on (http://\S+/api)")
GENEROUS_S = 60.0


class Served:
    """A ``hordebot horde serve`` child process and its base URL."""

    def __init__(self, cwd: Path, *args: str) -> None:
        started = time.perf_counter()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bots.app", "horde", "serve", "--port", "0", *args],
            cwd=cwd,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.url = self._wait_ready()
        self.startup_s = time.perf_counter() - started

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.put(line)

    def _wait_ready(self) -> str:
        deadline = time.monotonic() + GENEROUS_S
        seen = []
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            seen.append(line)
            match = READY.search(line)
            if match:
                return match.group(1)
        self.process.kill()
        self._reap()
        raise AssertionError(f"horde never became ready: {''.join(seen)}")

    def kill9(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self._reap()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self._reap()

    def _reap(self) -> int:
        code = self.process.wait(GENEROUS_S)
        self._reader.join(GENEROUS_S)
        if self.process.stderr is not None:
            self.process.stderr.close()
        return code


@pytest.fixture
def serving() -> Iterator[list[Served]]:
    """Every process started in a test; killed at the end whatever happened."""
    processes: list[Served] = []
    yield processes
    for served in processes:
        if served.process.poll() is None:
            served.process.kill()
        served.stop()


def hordebot(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bots.app", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=GENEROUS_S,
        check=False,
    )


def test_serve_starts_fast_on_an_empty_directory_and_stops_cleanly(
    tmp_path: Path, serving: list[Served]
) -> None:
    served = Served(tmp_path)
    serving.append(served)
    print(f"\nhordebot horde serve: ready in {served.startup_s:.2f} s (empty directory)")
    assert httpx.get(f"{served.url}/v2/status/heartbeat").json()["message"] == "OK"
    assert served.stop() == 0
    assert (tmp_path / "horde.db").is_file()


def test_user_add_prints_the_key_last_and_stores_only_its_hash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "h.db"
    assert main(["horde", "user", "add", "alice", "--kudos", "50", "--db", f"sqlite:///{db}"]) == 0
    key = capsys.readouterr().out.strip().splitlines()[-1]
    assert re.fullmatch(r"[A-Za-z0-9_-]{20,}", key)
    assert key.encode() not in db.read_bytes()
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT name, kudos, key_hash FROM horde_users WHERE id > 0").fetchall()
    assert [(name, kudos) for name, kudos, _ in rows] == [("alice", 50.0)]
    assert rows[0][2] != key


def exit_code(args: list[str]) -> int:
    try:
        return main(args)
    except SystemExit as exit_:  # argparse stops on a bad option
        return int(exit_.code or 0)


@pytest.mark.parametrize(
    "args",
    [
        ["horde", "serve", "--db", "not a url"],
        ["horde", "serve", "--db", "nosuchdialect://x/y"],
        ["horde", "serve", "--port", "99999"],
        ["horde", "serve", "--job-ttl", "-1"],
        ["horde", "user", "add", "bad#name", "--db", "sqlite:///u.db"],
        ["horde", "user", "add", "bob", "--kudos", "lots"],
    ],
)
def test_bad_arguments_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    if "--db" in args and args[args.index("--db") + 1].startswith("sqlite"):
        args = [*args[:-1], f"sqlite:///{tmp_path / 'u.db'}"]
    assert exit_code(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    # One line that says what is wrong (argparse prints its usage above it).
    assert err.strip().splitlines()[-1].startswith("hordebot horde")


def test_port_in_use_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        args = ["horde", "serve", "--port", port, "--db", f"sqlite:///{tmp_path / 'b.db'}"]
        assert exit_code(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "--port" in err.strip().splitlines()[-1]


def test_kill_9_loses_no_accepted_request_and_requeues_popped_jobs(
    tmp_path: Path, serving: list[Served]
) -> None:
    db = f"sqlite:///{tmp_path / 'horde.db'}"
    flags = ("--db", db, "--job-ttl", "1", "--maintenance-interval", "0.1")
    first = Served(tmp_path, *flags)
    serving.append(first)
    added = hordebot(tmp_path, "horde", "user", "add", "gpu-owner", "--db", db)
    worker_key = added.stdout.strip().splitlines()[-1]
    with httpx.Client(base_url=f"{first.url}/v2") as http:
        accepted = []
        for n in (1, 2, 3):
            answer = http.post(
                "/generate/async",
                headers={"apikey": "0000000000"},
                json={"prompt": f"request {n}", "params": {"n": n}},
            )
            assert answer.status_code == 202
            accepted.append(answer.json()["id"])
        popped = http.post("/generate/pop", headers={"apikey": worker_key}, json={"name": "gpu"})
        job = popped.json()
        assert job["id"] is not None
    first.kill9()

    second = Served(tmp_path, *flags)
    serving.append(second)
    print(f"\nrestart after kill -9: ready in {second.startup_s:.2f} s")
    with httpx.Client(base_url=f"{second.url}/v2") as http:
        checks = [http.get(f"/generate/check/{request_id}") for request_id in accepted]
        assert [c.status_code for c in checks] == [200, 200, 200]
        assert sum(c.json()["waiting"] + c.json()["processing"] for c in checks) == 6

        deadline = time.monotonic() + GENEROUS_S
        while time.monotonic() < deadline:
            restarted = [http.get(f"/generate/check/{r}").json()["restarted"] for r in accepted]
            if sum(restarted) == 1:
                break
            time.sleep(0.1)
        assert sum(restarted) == 1, "the popped job never came back to the queue"
        again = [
            http.post("/generate/pop", headers={"apikey": worker_key}, json={"name": "gpu"}).json()
            for _ in range(6)
        ]
        assert all(j["id"] is not None for j in again)
        assert job["id"] not in {j["id"] for j in again}
        late = http.post(
            "/generate/submit",
            headers={"apikey": worker_key},
            json={"id": job["id"], "generation": "R2", "seed": 1},
        )
        assert late.json()["rc"] == "AbortedGen"
    assert second.stop() == 0
