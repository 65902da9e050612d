"""The submit bodies a held job may produce: each image under its own id, faults for every id."""

from __future__ import annotations

import asyncio

import pytest

from core.horde.wire import GenMetadata, PopResponse
from worker_node.jobs import (
    FAULTED_GENERATION,
    MAX_METADATA,
    HeldJob,
    Outgoing,
    Prepared,
    ResultMismatch,
    fault_submits,
    image_submit,
    job_ids,
)


def batch(**extra: object) -> PopResponse:
    return PopResponse.model_validate(
        {
            "id": "a",
            "ids": ["a", "b", "c"],
            "model": "m",
            "payload": {"prompt": "p", "seed": 10},
            "ttl": 150,
            **extra,
        }
    )


async def held(job: PopResponse) -> HeldJob:
    async def nothing() -> Prepared:
        return Prepared(job)

    ready = asyncio.create_task(nothing())
    await ready
    return HeldJob.popped(job, now=1000.0, ready=ready)


async def test_a_batch_is_held_with_a_seed_and_an_upload_link_per_id() -> None:
    job = await held(batch(r2_uploads=["u-a", "u-b", "u-c"], r2_upload="u-a"))
    assert job.ids == ("a", "b", "c")
    assert job.seeds == (10, 11, 12)
    assert job.deadline == 1150.0
    assert [job.upload_url(k) for k in range(3)] == ["u-a", "u-b", "u-c"]


async def test_upload_links_that_do_not_map_one_to_one_are_not_used() -> None:
    job = await held(batch(r2_uploads=["u-a", "u-b"], r2_upload="u-a"))
    assert [job.upload_url(k) for k in range(3)] == [None, None, None]
    single = await held(PopResponse(id="x", model="m", payload={"prompt": "p"}, r2_upload="u-x"))
    assert single.ids == ("x",)
    assert single.upload_url(0) == "u-x"


async def test_an_image_is_only_submitted_under_the_id_it_was_made_for() -> None:
    job = await held(batch())
    image = Outgoing("b", 11, b"webp", "ok", ())
    assert image_submit(job, 1, image, "R2").id == "b"
    with pytest.raises(ResultMismatch):
        image_submit(job, 0, image, "R2")
    with pytest.raises(ResultMismatch):
        image_submit(job, 5, image, "R2")


async def test_a_fault_answers_every_id_with_the_reason_last() -> None:
    job = await held(batch())
    notes = [GenMetadata(type="lora", value="download_failed", ref=str(n)) for n in range(80)]
    bodies = fault_submits(job, "the LoRA\n is a pickle", notes)
    assert [b.id for b in bodies] == ["a", "b", "c"]
    assert [b.seed for b in bodies] == [10, 11, 12]
    assert {b.state for b in bodies} == {"faulted"}
    assert {b.generation for b in bodies} == {FAULTED_GENERATION}
    assert len(bodies[0].gen_metadata) == MAX_METADATA
    assert bodies[0].gen_metadata[-1].ref == "the LoRA is a pickle"


def test_an_old_style_pop_without_ids_answers_its_id() -> None:
    assert job_ids(PopResponse(id="x")) == ("x",)
    assert job_ids(PopResponse()) == ()
