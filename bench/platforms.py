"""The platform adapters' own overhead: request → reply latency on real local peers.

The whole bot runs in this process (``tests/support/bot_stack.py``: embedded horde, store,
service, inbox, one adapter built by its factory) with fake workers that answer each job with a
tiny WebP in milliseconds, so what is measured is the bot's and the platform adapter's own time,
not image generation. Peers, all on 127.0.0.1:

* Mastodon: mastodon-mock. Mentions from distinct users, paced; the same adapter with the user
  stream, polling every ``poll_interval_s`` of ``config.example.toml`` (30 s), and polling at the
  tests' 0.5 s, measured one after the other in this run.
* Lemmy and Reddit: the stateful fakes of ``tests/peers``, polled at the tests' 0.2 s. Comments
  from distinct users arrive in one burst (kept under the embedded horde's 30 waiting requests
  per account); every request the fake receives is counted.

A request's latency runs from the moment its post exists on the peer to the moment the adapter's
``send`` returned, i.e. the reply exists on the peer. Each reply is also counted on the peer at the
end (exactly one per request). Discord (SimCord) is not measured: see ``DISCORD_NOTE``.

    .venv/bin/python bench/platforms.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository (and tests/) importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mastodon_mock.config import SeedAccount, SeedConfig
from mastodon_mock.testing import MockServer

from bots.deps import AdapterDeps
from bots.lemmy import factory as lemmy_factory
from bots.mastodon import factory as mastodon_factory
from bots.mastodon.adapter import MastodonAdapter
from bots.reddit import factory as reddit_factory
from bots.stack import Stack
from core.contract import Adapter, Inbox
from core.messages import Ack, Invocation, Progress, Reply, ReplyTarget
from tests.bots.mastodon.peer import bot_replies, mastodon_section
from tests.peers.lemmy import FakeLemmy
from tests.peers.reddit import RedditFake
from tests.support.bot_stack import bot_stack, fake_worker, write_bot_config

WORKERS = 4
BURST_CAP = 25  # the embedded horde lets one account have 30 requests waiting
EXAMPLE_MASTODON_POLL_S = 30.0  # config.example.toml
TEST_POLL_S = 0.5  # tests/bots/mastodon/peer.py
PACE_S = 0.2
PROMPT = "draw me a lighthouse at dusk --steps 4 --size 64x64"
# Credentials of the local fakes only.
BOT_TOKEN = "bot"  # noqa: S105
LEMMY_PASSWORD = "bot-password"  # noqa: S105
READER_TOKEN = "alice"  # noqa: S105
DISCORD_NOTE = (
    "Discord: not measured yet. SimCord runs the discord.py client with its own harness "
    "(tests/bots/discord/harness.py); wiring that into this bench is still to do."
)


# ---- recording ---------------------------------------------------------------------------


@dataclass
class Record:
    """When each request was posted, accepted by the core and answered (monotonic seconds)."""

    posted: dict[str, float] = field(default_factory=dict)
    accepted: dict[str, float] = field(default_factory=dict)
    replied: dict[str, float] = field(default_factory=dict)
    event_of: dict[str, str] = field(default_factory=dict)  # generation id → event id
    expected: int = 0
    all_replied: asyncio.Event = field(default_factory=asyncio.Event)


class TimedInbox:
    """The core's inbox, noting when each event was accepted and which generations it made."""

    def __init__(self, inner: Inbox, record: Record) -> None:
        self._inner = inner
        self._record = record

    async def submit(self, invocation: Invocation) -> Ack:
        """Hand over; note the time and the generation ids."""
        ack = await self._inner.submit(invocation)
        self._record.accepted.setdefault(invocation.event_id, time.monotonic())
        for generation_id in ack.generation_ids:
            self._record.event_of[generation_id] = invocation.event_id
        return ack


class TimedAdapter:
    """Wraps a real adapter: its inbox is timed, and each reply's ``send`` is timed."""

    def __init__(self, inner: Adapter, record: Record) -> None:
        self.inner = inner
        self.name = inner.name
        self.limits = inner.limits
        self._record = record

    async def start(self, inbox: Inbox) -> None:
        """Start the real adapter on the timed inbox."""
        await self.inner.start(TimedInbox(inbox, self._record))

    async def stop(self) -> None:
        """Stop the real adapter."""
        await self.inner.stop()

    async def send(self, target: ReplyTarget, reply: Reply) -> str:
        """Post through the real adapter; the reply exists once this returns."""
        message_id = await self.inner.send(target, reply)
        event = self._record.event_of.get(reply.generation_id or "")
        if event is not None:
            self._record.replied.setdefault(event, time.monotonic())
            if len(self._record.replied) >= self._record.expected:
                self._record.all_replied.set()
        return message_id

    async def show_progress(self, target: ReplyTarget, progress: Progress) -> None:
        """Pass through."""
        await self.inner.show_progress(target, progress)


# ---- one case ----------------------------------------------------------------------------


@dataclass
class Case:
    """One adapter against one peer: how to configure, post, count and check."""

    label: str
    section: str
    build: Callable[[Stack], Adapter | None]
    post: Callable[[int], str]  # blocking: posts request ``i``, returns its event id
    replies_on_peer: Callable[[str], int]  # blocking: the bot's replies to one event id
    requests: int
    pace_s: float
    ready: Callable[[Adapter], bool] = lambda _: True
    calls: Callable[[], tuple[int, int]] | None = None  # (GET, other) requests on the peer


@dataclass
class Outcome:
    """What one case measured."""

    label: str
    requests: int
    latencies: list[float]
    ingest: list[float]
    span_s: float
    on_peer: list[int]
    calls: tuple[int, int] | None


def _q(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


async def run_case(case: Case, timeout_s: float) -> Outcome:
    """Start the bot with this adapter, post the requests, wait for every reply, stop."""
    record = Record(expected=case.requests)
    with tempfile.TemporaryDirectory(prefix="bench-platforms-") as tmp:
        folder = Path(tmp)
        # No worker process: the fake workers below answer; the model path is never read.
        path = write_bot_config(
            folder, tiny_model=folder / "unused", sections=case.section, worker=False
        )
        wrapped: list[TimedAdapter] = []

        def adapters(stack: Stack) -> list[TimedAdapter]:
            real = case.build(stack)
            if real is None:
                raise RuntimeError(f"{case.label}: the factory built no adapter")
            wrapped.append(TimedAdapter(real, record))
            return wrapped

        async with (
            bot_stack(path, adapters, with_worker=False) as stack,
            contextlib.AsyncExitStack() as workers,
        ):
            for n in range(WORKERS):
                await workers.enter_async_context(fake_worker(stack, name=f"bench-worker-{n}"))
            deadline = time.monotonic() + 30
            while not case.ready(wrapped[0].inner):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{case.label}: adapter not ready")
                await asyncio.sleep(0.05)
            before = case.calls() if case.calls else None
            events: list[str] = []
            for i in range(case.requests):
                event = await asyncio.to_thread(case.post, i)
                record.posted[event] = time.monotonic()
                events.append(event)
                if case.pace_s:
                    await asyncio.sleep(case.pace_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(record.all_replied.wait(), timeout_s)
            after = case.calls() if case.calls else None
            await asyncio.wait_for(stack.service.wait_idle(), 30)
            await asyncio.sleep(1.0)  # room for a wrong second reply to show
            on_peer = [await asyncio.to_thread(case.replies_on_peer, e) for e in events]
    done = [e for e in events if e in record.replied]
    latencies = [record.replied[e] - record.posted[e] for e in done]
    ingest = [record.accepted[e] - record.posted[e] for e in events if e in record.accepted]
    first = min(record.posted.values())
    span = max((record.replied[e] for e in done), default=first) - first
    print(f"  {case.label}: {len(done)} of {len(events)} replied", file=sys.stderr)
    calls = None
    if before is not None and after is not None:
        calls = (after[0] - before[0], after[1] - before[1])
    return Outcome(case.label, len(events), latencies, ingest, span, on_peer, calls)


# ---- the peers ---------------------------------------------------------------------------


def mastodon_seed(users: int) -> SeedConfig:
    """The bot, one account per request (the per-user throttle admits all) and a reader."""
    accounts = [
        SeedAccount(username="imagebot", display_name="Image Bot", bot=True, access_token=BOT_TOKEN)
    ]
    accounts += [
        SeedAccount(username=f"user{i}", display_name=f"User {i}", access_token=f"user{i}")
        for i in range(users)
    ]
    # ``bot_replies`` reads threads as alice.
    accounts.append(SeedAccount(username="alice", display_name="Alice", access_token=READER_TOKEN))
    return SeedConfig(accounts=accounts)


async def mastodon_case(
    label: str, requests: int, pace_s: float, streaming: bool, poll_s: float, timeout_s: float
) -> Outcome:
    """The Mastodon adapter on a fresh mastodon-mock instance."""
    os.environ["HORDEBOT_MASTODON_TOKEN"] = BOT_TOKEN
    with MockServer(seed=mastodon_seed(requests)) as server:

        def post(i: int) -> str:
            text = f"@imagebot {PROMPT} #{i}"
            return str(server.client(f"user{i}").status_post(text, visibility="unlisted")["id"])

        def ready(adapter: Adapter) -> bool:
            return not streaming or (
                isinstance(adapter, MastodonAdapter) and adapter.stream_healthy
            )

        case = Case(
            label=label,
            section=mastodon_section(server, streaming=streaming, poll_s=poll_s),
            build=lambda s: mastodon_factory.build(s.config, AdapterDeps(s.store, s.catalog)),
            post=post,
            replies_on_peer=lambda e: len(bot_replies(server, e)),
            requests=requests,
            pace_s=pace_s,
            ready=ready,
        )
        return await run_case(case, timeout_s)


def _split(seen: Sequence[tuple[str, str]]) -> tuple[int, int]:
    gets = sum(1 for method, _ in seen if method == "GET")
    return gets, len(seen) - gets


async def lemmy_case(requests: int, timeout_s: float) -> Outcome:
    """The Lemmy adapter on the fake instance, one burst of comments."""
    os.environ["HORDEBOT_LEMMY_PASSWORD"] = LEMMY_PASSWORD
    with FakeLemmy() as fake:
        fake.add_person("hordebot", LEMMY_PASSWORD)
        for i in range(requests):
            fake.add_person(f"user{i}", "pw")
        fake.add_community("art")
        post_id = fake.add_post("user0", "art").id

        def post(i: int) -> str:
            return f"comment-{fake.comment(f'user{i}', post_id, f'@hordebot {PROMPT} #{i}')}"

        def replies(event: str) -> int:
            parent = int(event.removeprefix("comment-"))
            return len(fake.comments_by("hordebot", parent_id=parent))

        section = f"""
[lemmy]
instance_url = "{fake.base_url}"
username = "hordebot"
poll_interval_s = 0.2
"""
        case = Case(
            label="Lemmy, poll 0.2 s",
            section=section,
            build=lambda s: lemmy_factory.build(s.config, AdapterDeps(s.store, s.catalog)),
            post=post,
            replies_on_peer=replies,
            requests=requests,
            pace_s=0.0,
            calls=lambda: _split([(s.method, s.path) for s in list(fake.seen)]),
        )
        return await run_case(case, timeout_s)


async def reddit_case(requests: int, timeout_s: float) -> Outcome:
    """The Reddit adapter (praw) on the fake, one burst of comments in a listened subreddit."""
    with RedditFake() as fake:
        os.environ["REQUESTS_CA_BUNDLE"] = fake.ca_file  # praw uploads media over https
        os.environ["HORDEBOT_REDDIT_CLIENT_ID"] = fake.client_id
        os.environ["HORDEBOT_REDDIT_CLIENT_SECRET"] = fake.client_secret
        os.environ["HORDEBOT_REDDIT_PASSWORD"] = fake.password
        section = f"""
[reddit]
username = "{fake.bot}"
subreddits = ["pics"]
image_subreddit = "hordebot_images"
oauth_url = "{fake.base_url}"
reddit_url = "{fake.base_url}"
poll_interval_s = 0.2
retry_first_s = 0.2
retry_max_s = 3
"""
        case = Case(
            label="Reddit, poll 0.2 s",
            section=section,
            build=lambda s: reddit_factory.build(s.config, AdapterDeps(s.store, s.catalog)),
            post=lambda i: fake.add_comment("pics", f"user{i}", f"{PROMPT} #{i}"),
            replies_on_peer=lambda e: len(fake.replies_to(e)),
            requests=requests,
            pace_s=0.0,
            calls=lambda: _split([(s.method, s.path) for s in list(fake.seen)]),
        )
        return await run_case(case, timeout_s)


# ---- report ------------------------------------------------------------------------------


def report(outcomes: Sequence[Outcome]) -> bool:
    """Print the table; True when every request got exactly one reply."""
    header = (
        f"{'adapter':<26} {'n':>3} {'replied':>7} {'ingest p50':>10} {'p50 s':>7} {'p95 s':>7}"
        f" {'max s':>7} {'replies/s':>9} {'calls/reply (GET+other)':>24}"
    )
    print(header)
    print("-" * len(header))
    complete = True
    for o in outcomes:
        exact = sum(1 for count in o.on_peer if count == 1)
        complete = complete and exact == o.requests
        rate = len(o.latencies) / o.span_s if o.span_s > 0 else float("nan")
        calls = "—"
        if o.calls is not None and o.latencies:
            gets, other = o.calls
            n = len(o.latencies)
            calls = f"{(gets + other) / n:.1f} ({gets / n:.1f}+{other / n:.1f})"
        print(
            f"{o.label:<26} {o.requests:>3} {exact:>7} {_q(o.ingest, 0.5):>10.2f}"
            f" {_q(o.latencies, 0.5):>7.2f} {_q(o.latencies, 0.95):>7.2f}"
            f" {max(o.latencies, default=float('nan')):>7.2f} {rate:>9.1f} {calls:>24}"
        )
    print("  replied: requests with exactly one reply on the peer; latency: post → reply exists;")
    print("  ingest: post → accepted by the core; replies/s: replies over first post → last reply")
    by_label = {o.label.split(",")[1].strip(): o for o in outcomes if o.label.startswith("Mast")}
    stream = by_label.get("stream")
    if stream and stream.latencies:
        for label, o in by_label.items():
            if o is not stream and o.latencies:
                ratio = statistics.median(o.latencies) / statistics.median(stream.latencies)
                p95 = _q(o.latencies, 0.95) / _q(stream.latencies, 0.95)
                print(f"  Mastodon {label} / stream: median {ratio:.1f}×, p95 {p95:.1f}×")
    print(DISCORD_NOTE)
    return complete


async def main_async(quick: bool) -> bool:
    """Every case, one after the other in this process."""
    mastodon_n = 10 if quick else 50
    burst = 10 if quick else BURST_CAP
    # At the example's 30 s poll, mentions are spread over one (quick) or two intervals so they
    # land at every phase of the poll; paced faster, they would all wait for the same poll.
    slow_pace = EXAMPLE_MASTODON_POLL_S * (1 if quick else 2) / mastodon_n
    outcomes = [
        await mastodon_case("Mastodon, stream", mastodon_n, PACE_S, True, 600.0, 60),
        await mastodon_case(
            f"Mastodon, poll {TEST_POLL_S:g} s", mastodon_n, PACE_S, False, TEST_POLL_S, 60
        ),
        await mastodon_case(
            f"Mastodon, poll {EXAMPLE_MASTODON_POLL_S:g} s",
            mastodon_n,
            slow_pace,
            False,
            EXAMPLE_MASTODON_POLL_S,
            EXAMPLE_MASTODON_POLL_S + 60,
        ),
        await lemmy_case(burst, 120),
        await reddit_case(burst, 120),
    ]
    return report(outcomes)


def main() -> int:
    """Parse the flags, run every case, print the table."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 requests a case")
    args = parser.parse_args()
    return 0 if asyncio.run(main_async(args.quick)) else 1


if __name__ == "__main__":
    raise SystemExit(main())
