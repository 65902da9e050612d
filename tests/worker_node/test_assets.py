"""AssetStore against the fake CivitAI over real HTTP on 127.0.0.1.

The store must resolve, verify, cache and share downloads, and it must refuse pickles, tampered or
oversized files. Every refusal must leave no file behind and keep the store serving.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import pickle
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import save

from core.horde.wire import GenMetadata, LoraSpec, TISpec
from tests.peers.civitai import FakeCivitai, FakeFile
from worker_node.assets import Asset, AssetError, AssetStore

MakeStore = Callable[..., AssetStore]


def lora_bytes(width: int = 16, seed: int = 0) -> bytes:
    """A real (tiny) kohya-style LoRA in safetensors format."""
    rng = np.random.default_rng(seed)
    return save(
        {
            "lora_unet_down_blocks_0_attn1_to_q.lora_down.weight": rng.standard_normal(
                (4, width), dtype=np.float32
            ),
            "lora_unet_down_blocks_0_attn1_to_q.lora_up.weight": rng.standard_normal(
                (width, 4), dtype=np.float32
            ),
            "lora_unet_down_blocks_0_attn1_to_q.alpha": np.array(4.0, dtype=np.float32),
        },
        metadata={"ss_network_dim": "4"},
    )


def ti_bytes(seed: int = 0) -> bytes:
    """A real (tiny) textual inversion embedding in safetensors format."""
    rng = np.random.default_rng(seed)
    return save({"emb_params": rng.standard_normal((2, 32), dtype=np.float32)})


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _Trap:
    """Pickles to bytes that create ``marker`` when unpickled: proof nothing was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (str(self.marker),))


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def leftovers(store: AssetStore) -> set[Path]:
    """Downloaded-but-unverified or asset files: what a refusal must not leave."""
    root = store.cache_dir
    return files_under(root / "partial") | files_under(root / "lora") | files_under(root / "ti")


@pytest.fixture
def civitai() -> Iterator[FakeCivitai]:
    with FakeCivitai() as fake:
        yield fake


@pytest.fixture
async def make_store(tmp_path: Path, civitai: FakeCivitai) -> AsyncIterator[MakeStore]:
    stores: list[AssetStore] = []

    def make(**options: Any) -> AssetStore:
        options.setdefault("retry_delay_s", 0.0)
        options.setdefault("retries", 1)
        cache_dir = options.pop("cache_dir", tmp_path / "cache")
        store = AssetStore(cache_dir, civitai.base_url, **options)
        stores.append(store)
        return store

    yield make
    for store in stores:
        await store.aclose()


@pytest.fixture
def foxy(civitai: FakeCivitai) -> dict[int, bytes]:
    """Model 55 "Foxy Style": versions 101 (older) and 102 (newest public), 103 early access."""
    payloads = {101: lora_bytes(seed=1), 102: lora_bytes(seed=2), 103: lora_bytes(seed=3)}
    civitai.add_version(
        55, 101, [FakeFile(payloads[101])], name="Foxy Style", trained_words=["old"]
    )
    civitai.add_version(
        55,
        102,
        [FakeFile(payloads[102])],
        name="Foxy Style",
        trained_words=["<lora:foxy:0.8>", " fox ears ", "fox ears", ""],
        base_model="SD 1.5",
    )
    civitai.add_version(55, 103, [FakeFile(payloads[103])], availability="EarlyAccess")
    return payloads


# ---- resolution ----------------------------------------------------------------------------


async def test_model_id_gives_latest_public_version_with_triggers(
    make_store: MakeStore, foxy: dict[int, bytes]
) -> None:
    store = make_store()
    asset = await store.lora(LoraSpec(name="55"))
    assert (asset.kind, asset.model_id, asset.version_id) == ("lora", 55, 102)
    assert asset.triggers == ("foxy", "fox ears")
    assert asset.base_model == "SD 1.5"
    assert asset.path.read_bytes() == foxy[102]
    assert asset.sha256 == sha(foxy[102])
    assert asset.path.parent == store.cache_dir / "lora"


async def test_version_id_gives_that_version(
    make_store: MakeStore, civitai: FakeCivitai, foxy: dict[int, bytes]
) -> None:
    asset = await make_store().lora(LoraSpec(name="101", is_version=True))
    assert (asset.model_id, asset.version_id, asset.triggers) == (55, 101, ("old",))
    assert asset.path.read_bytes() == foxy[101]
    assert civitai.count("/api/v1/model-versions/101") == 1
    assert civitai.count("/api/v1/models") == 0


async def test_name_search_finds_the_lora(
    make_store: MakeStore, civitai: FakeCivitai, foxy: dict[int, bytes]
) -> None:
    asset = await make_store().lora(LoraSpec(name="foxy style"))
    assert asset.version_id == 102
    searches = [s for s in civitai.seen if s.path == "/api/v1/models"]
    assert len(searches) == 1
    assert "types=LORA" in searches[0].query
    assert "query=foxy+style" in searches[0].query


async def test_ti_by_name_and_by_model_id(make_store: MakeStore, civitai: FakeCivitai) -> None:
    payload = ti_bytes()
    civitai.add_version(
        77, 701, [FakeFile(payload)], name="Bad Hands", type="TextualInversion",
        trained_words=["bad_hands"],
    )  # fmt: skip
    civitai.add_version(55, 501, [FakeFile(lora_bytes())], name="Bad Hands Fixer LoRA")
    store = make_store()
    by_name = await store.ti(TISpec(name="bad hands"))
    assert (by_name.kind, by_name.version_id, by_name.triggers) == ("ti", 701, ("bad_hands",))
    assert by_name.path.read_bytes() == payload
    assert by_name.path.parent == store.cache_dir / "ti"
    search = next(s for s in civitai.seen if s.path == "/api/v1/models")
    assert "types=TextualInversion" in search.query
    assert (await store.ti(TISpec(name="77"))).path == by_name.path


async def test_a_checkpoint_is_not_taken_as_a_lora(
    make_store: MakeStore, civitai: FakeCivitai
) -> None:
    civitai.add_version(9, 901, [FakeFile(lora_bytes())], type="Checkpoint")
    with pytest.raises(AssetError, match="is a Checkpoint, not a LoRA") as caught:
        await make_store().lora(LoraSpec(name="9"))
    assert caught.value.reason == "download_failed"
    assert civitai.downloads == 0


async def test_unknown_model_is_download_failed(make_store: MakeStore) -> None:
    with pytest.raises(AssetError, match="not found on CivitAI") as caught:
        await make_store().lora(LoraSpec(name="424242"))
    assert caught.value.gen_metadata() == GenMetadata(
        type="lora", value="download_failed", ref="424242"
    )


# ---- only safetensors, verified ---------------------------------------------------------------


async def test_pickle_only_version_is_refused_without_downloading(
    make_store: MakeStore, civitai: FakeCivitai, tmp_path: Path
) -> None:
    trap = pickle.dumps(_Trap(tmp_path / "unpickled"))
    civitai.add_version(
        60, 601, [FakeFile(trap, name="style.pt", format="PickleTensor")], name="Pickled"
    )
    store = make_store()
    with pytest.raises(AssetError, match="no safetensors file") as caught:
        await store.lora(LoraSpec(name="60"))
    assert caught.value.reason == "download_failed"
    assert civitai.downloads == 0
    assert leftovers(store) == set()


async def test_pickle_labelled_safetensors_is_refused_and_never_unpickled(
    make_store: MakeStore, civitai: FakeCivitai, foxy: dict[int, bytes], tmp_path: Path
) -> None:
    marker = tmp_path / "unpickled"
    trap = pickle.dumps(_Trap(marker))
    civitai.add_version(61, 611, [FakeFile(trap, name="style.safetensors")], name="Liar")
    store = make_store()
    with pytest.raises(AssetError, match="not safetensors") as caught:
        await store.lora(LoraSpec(name="61"))
    assert caught.value.reason == "parse_failed"
    assert civitai.downloads == 1
    assert not marker.exists()
    assert leftovers(store) == set()
    # The refusal is not sticky for others: the store goes on serving.
    assert (await store.lora(LoraSpec(name="55"))).version_id == 102


async def test_safetensors_file_is_chosen_over_a_primary_pickle(
    make_store: MakeStore, civitai: FakeCivitai, tmp_path: Path
) -> None:
    good = lora_bytes(seed=9)
    trap = pickle.dumps(_Trap(tmp_path / "unpickled"))
    civitai.add_version(
        62,
        621,
        [
            FakeFile(trap, name="style.ckpt", format="PickleTensor", primary=True),
            FakeFile(good, name="style.safetensors", primary=False),
        ],
    )
    asset = await make_store().lora(LoraSpec(name="62"))
    assert asset.path.read_bytes() == good
    assert civitai.downloads == 1


async def test_hash_mismatch_is_refused_and_removed(
    make_store: MakeStore, civitai: FakeCivitai, foxy: dict[int, bytes]
) -> None:
    civitai.add_version(63, 631, [FakeFile(lora_bytes(), sha256="ab" * 32)])
    store = make_store()
    with pytest.raises(AssetError, match="SHA256 mismatch") as caught:
        await store.lora(LoraSpec(name="63"))
    assert caught.value.reason == "download_failed"
    assert leftovers(store) == set()
    assert (await store.lora(LoraSpec(name="55"))).version_id == 102


async def test_file_without_sha256_is_refused(make_store: MakeStore, civitai: FakeCivitai) -> None:
    civitai.add_version(64, 641, [FakeFile(lora_bytes(), sha256="")])
    with pytest.raises(AssetError, match="no SHA256"):
        await make_store(retries=0).lora(LoraSpec(name="64"))
    assert civitai.downloads == 0


# ---- size caps --------------------------------------------------------------------------------


async def test_announced_oversize_is_refused_before_downloading(
    make_store: MakeStore, civitai: FakeCivitai
) -> None:
    civitai.add_version(65, 651, [FakeFile(lora_bytes(width=256))])
    store = make_store(lora_cap=4096)
    with pytest.raises(AssetError, match="over the 4 KB LoRA cap") as caught:
        await store.lora(LoraSpec(name="65"))
    assert caught.value.reason == "download_failed"
    assert civitai.downloads == 0


@pytest.mark.parametrize("send_length", [True, False], ids=["content-length", "chunked"])
async def test_understated_size_is_aborted_while_streaming(
    make_store: MakeStore, civitai: FakeCivitai, foxy: dict[int, bytes], send_length: bool
) -> None:
    civitai.send_length = send_length
    civitai.add_version(66, 661, [FakeFile(lora_bytes(width=1024), size_kb=1.0)])
    store = make_store(lora_cap=8192)
    with pytest.raises(AssetError, match="cap") as caught:
        await store.lora(LoraSpec(name="66"))
    assert caught.value.reason == "download_failed"
    assert civitai.downloads == 1
    assert leftovers(store) == set()
    assert (await store.lora(LoraSpec(name="55"))).version_id == 102


async def test_ti_cap_applies_to_tis_only(make_store: MakeStore, civitai: FakeCivitai) -> None:
    civitai.add_version(67, 671, [FakeFile(ti_bytes())], name="emb", type="TextualInversion")
    civitai.add_version(68, 681, [FakeFile(lora_bytes())], name="lora")
    store = make_store(ti_cap=64)
    with pytest.raises(AssetError, match="TI cap"):
        await store.ti(TISpec(name="67"))
    assert (await store.lora(LoraSpec(name="68"))).version_id == 681


# ---- cache ----------------------------------------------------------------------------------


async def test_cache_hit_makes_no_http_request(
    make_store: MakeStore, civitai: FakeCivitai, tmp_path: Path, foxy: dict[int, bytes]
) -> None:
    store = make_store()
    first = await store.lora(LoraSpec(name="55"))
    await store.lora(LoraSpec(name="101", is_version=True))
    await store.lora(LoraSpec(name="Foxy Style"))
    before = len(civitai.seen)
    assert await store.lora(LoraSpec(name="55")) == first
    assert (await store.lora(LoraSpec(name="101", is_version=True))).version_id == 101
    assert await store.lora(LoraSpec(name="foxy style")) == first
    assert len(civitai.seen) == before
    # A restarted worker finds its cache again.
    await store.aclose()
    again = await make_store().lora(LoraSpec(name="55"))
    assert again == first
    assert len(civitai.seen) == before


async def test_expired_resolution_picks_up_a_new_version(
    make_store: MakeStore, civitai: FakeCivitai, foxy: dict[int, bytes]
) -> None:
    store = make_store(resolve_ttl_s=0.0)
    assert (await store.lora(LoraSpec(name="55"))).version_id == 102
    civitai.add_version(55, 104, [FakeFile(lora_bytes(seed=4))])
    assert (await store.lora(LoraSpec(name="55"))).version_id == 104


async def test_cached_asset_is_served_while_civitai_is_down(
    make_store: MakeStore, civitai: FakeCivitai, foxy: dict[int, bytes]
) -> None:
    store = make_store(resolve_ttl_s=0.0)
    first = await store.lora(LoraSpec(name="55"))
    civitai.fail_next(100)
    assert await store.lora(LoraSpec(name="55")) == first


async def test_outage_is_download_failed_and_the_store_recovers(
    make_store: MakeStore, civitai: FakeCivitai, foxy: dict[int, bytes]
) -> None:
    store = make_store(retries=2)
    civitai.fail_next(100, status=502)
    with pytest.raises(AssetError, match=r"HTTP 502 \(3 tries\)") as caught:
        await store.lora(LoraSpec(name="55"))
    assert caught.value.reason == "download_failed"
    assert civitai.api_calls == 3
    civitai.fail_next(0)
    assert (await store.lora(LoraSpec(name="55"))).version_id == 102


async def test_transient_5xx_is_retried(
    make_store: MakeStore, civitai: FakeCivitai, foxy: dict[int, bytes]
) -> None:
    civitai.fail_next(2)
    asset = await make_store(retries=3).lora(LoraSpec(name="55"))
    assert asset.path.read_bytes() == foxy[102]


async def test_lru_eviction_keeps_the_cache_within_budget(
    make_store: MakeStore, civitai: FakeCivitai
) -> None:
    payloads = {v: lora_bytes(width=128, seed=v) for v in (1, 2, 3)}
    for v, data in payloads.items():
        civitai.add_version(v, 100 + v, [FakeFile(data)], name=f"L{v}")
    size = len(payloads[1])
    store = make_store(max_cache_bytes=2 * size + size // 2)
    a = await store.lora(LoraSpec(name="1"))
    b = await store.lora(LoraSpec(name="2"))
    await store.lora(LoraSpec(name="1"))  # a is now the most recently used
    c = await store.lora(LoraSpec(name="3"))
    assert a.path.exists()
    assert c.path.exists()
    assert not b.path.exists()
    assert sum(p.stat().st_size for p in files_under(store.cache_dir / "lora")) <= 2.5 * size
    downloads = civitai.downloads
    again = await store.lora(LoraSpec(name="2"))
    assert civitai.downloads == downloads + 1
    assert again.path.read_bytes() == payloads[2]
    assert not a.path.exists()  # after b came back, a was the least recently used
    assert c.path.exists()


async def test_file_larger_than_the_whole_cache_is_refused(
    make_store: MakeStore, civitai: FakeCivitai
) -> None:
    civitai.add_version(70, 701, [FakeFile(lora_bytes(width=512))])
    with pytest.raises(AssetError, match="larger than the whole asset cache"):
        await make_store(max_cache_bytes=1024).lora(LoraSpec(name="70"))
    assert civitai.downloads == 0


async def test_prefetch_protects_its_siblings_from_eviction(
    make_store: MakeStore, civitai: FakeCivitai
) -> None:
    payloads = {v: lora_bytes(width=128, seed=v) for v in (1, 2)}
    for v, data in payloads.items():
        civitai.add_version(v, 100 + v, [FakeFile(data)], name=f"L{v}")
    store = make_store(max_cache_bytes=len(payloads[1]) + 100)
    results = await store.prefetch([LoraSpec(name="1"), LoraSpec(name="2")], [])
    # Both cannot fit; the first to land is kept, the second is refused instead of evicting it.
    kept = [r for r in results if isinstance(r, Asset)]
    refused = [r for r in results if isinstance(r, AssetError)]
    assert len(kept) == 1
    assert len(refused) == 1
    assert kept[0].path.exists()
    assert "full" in refused[0].message


# ---- sharing downloads -------------------------------------------------------------------------


async def test_concurrent_requests_share_one_download(
    make_store: MakeStore, civitai: FakeCivitai, foxy: dict[int, bytes]
) -> None:
    civitai.chunk_delay_s = 0.005  # several chunks, so the download spans many loop turns
    store = make_store()
    specs = [LoraSpec(name="55")] * 5 + [LoraSpec(name="102", is_version=True)] * 3
    assets = await asyncio.gather(*(store.lora(s) for s in specs))
    assert civitai.downloads == 1
    assert civitai.count("/api/v1/models/55") == 1
    assert len(set(assets)) == 1
    assert assets[0].path.read_bytes() == foxy[102]


async def test_a_cancelled_caller_does_not_cancel_the_others(
    make_store: MakeStore, civitai: FakeCivitai, foxy: dict[int, bytes]
) -> None:
    civitai.chunk_delay_s = 0.01
    store = make_store()
    impatient = asyncio.create_task(store.lora(LoraSpec(name="55")))
    patient = asyncio.create_task(store.lora(LoraSpec(name="55")))
    await asyncio.sleep(0)
    impatient.cancel()
    asset = await patient
    assert impatient.cancelled()
    assert asset.path.read_bytes() == foxy[102]
    assert civitai.downloads == 1


async def test_prefetch_returns_assets_and_errors_in_order(
    make_store: MakeStore, civitai: FakeCivitai, foxy: dict[int, bytes]
) -> None:
    civitai.add_version(77, 771, [FakeFile(ti_bytes())], name="emb", type="TextualInversion")
    store = make_store()
    results = await store.prefetch(
        [LoraSpec(name="55"), LoraSpec(name="999999")], [TISpec(name="77")]
    )
    assert [type(r) for r in results] == [Asset, AssetError, Asset]
    before = len(civitai.seen)
    assert (await store.lora(LoraSpec(name="55"))) == results[0]
    assert (await store.ti(TISpec(name="77"))) == results[2]
    assert len(civitai.seen) == before


async def test_lora_waits_for_a_prefetch_in_flight(
    make_store: MakeStore, civitai: FakeCivitai, foxy: dict[int, bytes]
) -> None:
    civitai.chunk_delay_s = 0.005
    store = make_store()
    prefetch = asyncio.create_task(store.prefetch([LoraSpec(name="55")], []))
    await asyncio.sleep(0)
    asset = await store.lora(LoraSpec(name="55"))
    assert (await prefetch) == [asset]
    assert civitai.downloads == 1


# ---- baselines, paths, tokens, timeouts ---------------------------------------------------------


async def test_baseline_mismatch_is_refused_before_downloading(
    make_store: MakeStore, civitai: FakeCivitai
) -> None:
    civitai.add_version(80, 801, [FakeFile(lora_bytes())], base_model="SDXL 1.0")
    store = make_store()
    with pytest.raises(AssetError) as caught:
        await store.lora(LoraSpec(name="80"), baseline="stable diffusion 1")
    assert caught.value.gen_metadata() == GenMetadata(
        type="lora", value="baseline_mismatch", ref="80"
    )
    assert "SDXL 1.0" in caught.value.message
    assert civitai.downloads == 0
    asset = await store.lora(LoraSpec(name="80"), baseline="stable_diffusion_xl")
    assert asset.base_model == "SDXL 1.0"


async def test_file_names_from_the_api_never_escape_the_cache(
    make_store: MakeStore, civitai: FakeCivitai, tmp_path: Path
) -> None:
    names = ["../../../escape.safetensors", "/tmp/abs.safetensors", "..\\..\\win.safetensors"]
    for n, name in enumerate(names):
        civitai.add_version(90 + n, 900 + n, [FakeFile(lora_bytes(seed=n), name=name)])
    store = make_store()
    for n in range(len(names)):
        asset = await store.lora(LoraSpec(name=str(90 + n)))
        assert asset.path == store.cache_dir / "lora" / f"{900 + n}.safetensors"
    outside = {p for p in files_under(tmp_path) if store.cache_dir not in p.parents}
    assert outside == set()
    assert not Path("/tmp/abs.safetensors").exists()


async def test_token_is_sent_as_bearer_and_never_logged(
    make_store: MakeStore,
    civitai: FakeCivitai,
    foxy: dict[int, bytes],
    caplog: pytest.LogCaptureFixture,
) -> None:
    token = "sekret-civitai-token-1234"
    civitai.add_version(63, 631, [FakeFile(lora_bytes(), sha256="ab" * 32)])
    caplog.set_level(logging.DEBUG)
    store = make_store(token=token)
    await store.lora(LoraSpec(name="55"))
    with pytest.raises(AssetError) as caught:
        await store.lora(LoraSpec(name="63"))
    assert civitai.seen
    assert {s.authorization for s in civitai.seen} == {f"Bearer {token}"}
    assert all(token not in s.query for s in civitai.seen)
    assert token not in caplog.text
    assert token not in str(caught.value)
    assert token not in repr(store)


async def test_no_authorization_header_without_a_token(
    make_store: MakeStore, civitai: FakeCivitai, foxy: dict[int, bytes]
) -> None:
    await make_store().lora(LoraSpec(name="55"))
    assert {s.authorization for s in civitai.seen} == {None}


async def test_login_gated_file_without_token_is_refused(
    make_store: MakeStore, civitai: FakeCivitai, foxy: dict[int, bytes]
) -> None:
    civitai.require_auth = True
    store = make_store()
    with pytest.raises(AssetError, match="needs a CivitAI login"):
        await store.lora(LoraSpec(name="55"))
    assert leftovers(store) == set()
    assert (await make_store(token="t0k", cache_dir=store.cache_dir.parent / "other").lora(
        LoraSpec(name="55")
    )).version_id == 102  # fmt: skip


async def test_stalled_download_times_out_and_leaves_nothing(
    make_store: MakeStore, civitai: FakeCivitai, foxy: dict[int, bytes]
) -> None:
    civitai.chunk_delay_s = 5.0
    store = make_store(read_timeout_s=0.2, retries=0)
    with pytest.raises(AssetError, match=r"download interrupted \(ReadTimeout\)") as caught:
        await store.lora(LoraSpec(name="55"))
    assert caught.value.reason == "download_failed"
    assert leftovers(store) == set()


async def test_token_is_not_sent_to_another_download_host(
    make_store: MakeStore, civitai: FakeCivitai, foxy: dict[int, bytes]
) -> None:
    civitai.file_host = "localhost"  # same server, but another origin than the API's
    asset = await make_store(token="sekret").lora(LoraSpec(name="55"))
    assert asset.path.read_bytes() == foxy[102]
    api = {s.authorization for s in civitai.seen if s.path.startswith("/api/v1/")}
    files = {s.authorization for s in civitai.seen if not s.path.startswith("/api/v1/")}
    assert api == {"Bearer sekret"}
    assert files == {None}
    assert civitai.downloads == 1
