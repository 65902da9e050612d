"""The horde's live entities in memory: users, workers, requests and their jobs.

They are mutable on purpose: the horde answers from these and mirrors every change to the database
(``tables``) before it replies. Only the event loop touches them, so they need no locks.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal

from core.horde.wire import GenerationInput, PopInput

JobState = Literal["processing", "finishing", "done", "faulted", "aborted"]
# A job in one of these states holds its image slot; the others freed it for a restart.
_BUSY: frozenset[str] = frozenset({"processing", "finishing", "done"})
_ANON_NAME = "Anonymous"


def key_hash(api_key: str) -> str:
    """How an API key is stored: its sha256, never the key."""
    return hashlib.sha256(api_key.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(slots=True)
class User:
    """An account: kudos balance, trust, and the hash of its API key."""

    id: int
    name: str
    key_hash: str
    kudos: float
    trusted: bool
    created: float

    @property
    def username(self) -> str:
        """The horde's ``alias#id`` form."""
        return f"{self.name}#{self.id}"

    @property
    def anonymous(self) -> bool:
        """The shared anonymous account (key ``0000000000``)."""
        return self.id == 0


@dataclass(slots=True)
class Worker:
    """A named worker owned by one user; ``settings`` is its latest pop body."""

    id: str
    name: str
    user_id: int
    created: float
    last_pop: float
    kudos_earned: float
    requests_fulfilled: int
    settings: PopInput
    # When last_pop was last written; pops are frequent, so the write is debounced.
    saved_pop: float = 0.0

    def online(self, now: float, stale_s: float) -> bool:
        """Whether it popped recently enough to be offered work."""
        return now - self.last_pop < stale_s


@dataclass(slots=True)
class Job:
    """One image (or a batch member) handed to a worker by a pop."""

    id: str
    request_id: str
    idx: int
    worker_id: str
    model: str
    state: JobState
    popped: float
    deadline: float
    seed: str
    finished: float | None = None
    censored: bool = False
    gen_metadata: list[dict[str, Any]] = field(default_factory=list)
    reward: float = 0.0


@dataclass(slots=True)
class HordeRequest:
    """One accepted ``generate/async`` request and the jobs popped for it."""

    id: str
    user_id: int
    input: GenerationInput
    seeds: list[int]
    created: float
    expiry: float
    priority: float
    kudos_per_image: float
    consumed: float = 0.0
    cancelled: bool = False
    faulted: bool = False
    jobs: list[Job] = field(default_factory=list)

    @property
    def n(self) -> int:
        """How many images were asked for."""
        return self.input.params.n

    def count(self, *states: str) -> int:
        """How many of its jobs are in one of ``states``."""
        return sum(1 for job in self.jobs if job.state in states)

    def free_slots(self) -> list[int]:
        """Image indexes nobody is working on or has finished, in order."""
        if self.cancelled or self.faulted:
            return []
        busy = {job.idx for job in self.jobs if job.state in _BUSY}
        return [idx for idx in range(self.n) if idx not in busy]

    @property
    def waiting(self) -> int:
        """Images not yet popped (restarted ones included)."""
        return len(self.free_slots())

    @property
    def finished(self) -> int:
        """Images with a result."""
        return self.count("done")

    @property
    def processing(self) -> int:
        """Images a worker holds now."""
        return self.count("processing", "finishing")

    @property
    def restarted(self) -> int:
        """Jobs that timed out or were reported faulted."""
        return self.count("faulted", "aborted")

    @property
    def done(self) -> bool:
        """Terminal: faulted, or nothing left to wait for."""
        return self.faulted or (self.waiting == 0 and self.processing == 0)


def anonymous_user(created: float) -> User:
    """The shared anonymous account, id 0."""
    return User(0, _ANON_NAME, key_hash("0000000000"), 0.0, False, created)
