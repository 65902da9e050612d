"""Kudos on the embedded horde: transfers and their rules, and Idempotency-Key exactly once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from tests.core.horde.conftest import RunningHorde

ANON = "0000000000"


@pytest.fixture
def http(embedded_horde: RunningHorde) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{embedded_horde.url}/v2", timeout=10) as client:
        yield client


def username(http: httpx.Client, key: str) -> str:
    name: str = http.get("/find_user", headers={"apikey": key}).json()["username"]
    return name


def kudos(http: httpx.Client, key: str) -> float:
    return float(http.get("/find_user", headers={"apikey": key}).json()["kudos"])


def transfer(
    http: httpx.Client, key: str, to: str, amount: object, idempotency_key: str | None = None
) -> httpx.Response:
    headers = {"apikey": key}
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    return http.post("/kudos/transfer", json={"username": to, "amount": amount}, headers=headers)


def test_transfer_moves_kudos(http: httpx.Client, embedded_horde: RunningHorde) -> None:
    alice, bob = embedded_horde.add_user("alice", 100), embedded_horde.add_user("bob", 5)
    answer = transfer(http, alice, username(http, bob), 40)
    assert answer.status_code == 200
    assert answer.json() == {"transferred": 40.0}
    assert (kudos(http, alice), kudos(http, bob)) == (60.0, 45.0)


def test_same_idempotency_key_and_body_transfers_once(
    http: httpx.Client, embedded_horde: RunningHorde
) -> None:
    alice, bob = embedded_horde.add_user("alice", 100), embedded_horde.add_user("bob")
    target = username(http, bob)
    first = transfer(http, alice, target, 30, "pay-1")
    again = transfer(http, alice, target, 30, "pay-1")
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json() == {"transferred": 30.0}
    assert (kudos(http, alice), kudos(http, bob)) == (70.0, 30.0)

    conflict = transfer(http, alice, target, 31, "pay-1")
    assert conflict.status_code == 400
    assert conflict.json()["rc"] == "IdempotencyKeyConflict"
    assert (
        transfer(http, alice, target, 30, "pay-2").status_code == 200
    )  # a new key: a new transfer
    assert kudos(http, alice) == 40.0


def test_idempotency_key_is_per_user(http: httpx.Client, embedded_horde: RunningHorde) -> None:
    alice, bob = embedded_horde.add_user("alice", 100), embedded_horde.add_user("bob", 100)
    assert transfer(http, alice, username(http, bob), 10, "same").status_code == 200
    assert transfer(http, bob, username(http, alice), 20, "same").status_code == 200
    assert (kudos(http, alice), kudos(http, bob)) == (110.0, 90.0)


async def test_concurrent_retries_with_one_key_transfer_once(embedded_horde: RunningHorde) -> None:
    alice, bob = embedded_horde.add_user("alice", 100), embedded_horde.add_user("bob")
    async with httpx.AsyncClient(base_url=f"{embedded_horde.url}/v2") as client:
        who = await client.get("/find_user", headers={"apikey": bob})
        body = {"username": who.json()["username"], "amount": 25}
        headers = {"apikey": alice, "Idempotency-Key": "retry-storm"}
        answers = await asyncio.gather(
            *(client.post("/kudos/transfer", json=body, headers=headers) for _ in range(8))
        )
        assert {a.status_code for a in answers} == {200}
        mine = await client.get("/find_user", headers={"apikey": alice})
        assert mine.json()["kudos"] == 75.0


def test_idempotency_survives_a_restart(embedded_horde: RunningHorde) -> None:
    alice, bob = embedded_horde.add_user("alice", 100), embedded_horde.add_user("bob")
    with httpx.Client(base_url=f"{embedded_horde.url}/v2") as client:
        target = username(client, bob)
        assert transfer(client, alice, target, 10, "once").status_code == 200
    embedded_horde.restart()
    with httpx.Client(base_url=f"{embedded_horde.url}/v2") as client:
        assert transfer(client, alice, target, 10, "once").json() == {"transferred": 10.0}
        assert (kudos(client, alice), kudos(client, bob)) == (90.0, 10.0)


@pytest.mark.parametrize(
    ("sender", "target", "amount", "rc"),
    [
        ("alice", "bob", 1000, "KudosTransferNotEnough"),
        ("alice", "alice", 5, "KudosTransferToSelf"),
        ("alice", "Anonymous#0", 5, "KudosTransferToAnon"),
        ("anon", "bob", 5, "KudosTransferFromAnon"),
        ("alice", "bob", -5, "NegativeKudosTransfer"),
        ("alice", "bob", 0, "InvalidKudosTransferAmount"),
        ("alice", "nobody#999", 5, "InvalidTargetUsername"),
        ("alice", "bob-without-id", 5, "InvalidTargetUsername"),
        ("alice", "wrongname#BOB", 5, "InvalidTargetUsername"),
    ],
)
def test_transfer_rules_answer_400_with_their_rc(
    http: httpx.Client,
    embedded_horde: RunningHorde,
    sender: str,
    target: str,
    amount: int,
    rc: str,
) -> None:
    keys = {"alice": embedded_horde.add_user("alice", 100), "anon": ANON}
    bob = embedded_horde.add_user("bob")
    names = {"alice": username(http, keys["alice"]), "bob": username(http, bob)}
    to = names.get(target, target).replace("BOB", names["bob"].split("#")[1])
    answer = transfer(http, keys[sender], to, amount)
    assert answer.status_code == 400
    assert answer.json()["rc"] == rc
    assert kudos(http, keys["alice"]) == 100.0


def test_bad_transfer_bodies_are_schema_errors(
    http: httpx.Client, embedded_horde: RunningHorde
) -> None:
    alice = embedded_horde.add_user("alice", 100)
    answer = transfer(http, alice, "bob#2", "lots")
    assert answer.status_code == 400
    assert "amount" in answer.json()["errors"]
    missing = http.post("/kudos/transfer", json={"amount": 1}, headers={"apikey": alice})
    assert "username" in missing.json()["errors"]


def test_issue_key_creates_once_then_rotates_the_key(
    http: httpx.Client, embedded_horde: RunningHorde
) -> None:
    def issue() -> str:
        embedded = embedded_horde.embedded
        return embedded_horde.call(lambda: embedded.issue_key("hordebot", kudos=500))

    first = issue()
    bob = embedded_horde.add_user("bob")
    assert transfer(http, first, username(http, bob), 100).status_code == 200
    embedded_horde.restart()
    with httpx.Client(base_url=f"{embedded_horde.url}/v2") as client:
        second = issue()
        assert second != first
        assert client.get("/find_user", headers={"apikey": first}).status_code == 404
        me = client.get("/find_user", headers={"apikey": second}).json()
        assert me["username"].startswith("hordebot#")
        assert me["kudos"] == 400.0  # the same account, not a new one with 500
