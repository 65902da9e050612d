"""A worker node put together from its ``[worker]`` config, run until SIGINT/SIGTERM.

This is the worker's composition root (``hordebot worker`` and ``python -m worker_node`` both end
here): it checks the config against the disk and the environment, loads the models once (a model
that does not load is a start error, not a fault on every job), builds the horde client, the asset
store, the optional safety classifier and the engine, and runs ``WorkerLoop``. Every problem an
operator can fix is one ``error: ...`` line and exit status 2; a horde that refuses the worker is
exit status 1. The first signal lets the running job finish, the second faults it and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from core.horde.client import HordeClient
from worker_node.assets import AssetStore, cache_bytes_from_gb
from worker_node.config import (
    WorkerConfig,
    WorkerConfigError,
    load_worker_config,
    parse_worker_config,
)
from worker_node.engine import Engine, ModelSpec
from worker_node.jobs import one_line
from worker_node.loop import LoopSettings, WorkerLoop, WorkerStopped, inference_executor
from worker_node.pipelines import ModelLoadError, quiet_libraries
from worker_node.safety import ImageClassifierSafety, SafetyCheck, SafetyModelError

log = logging.getLogger(__name__)

EXIT_OK, EXIT_REFUSED, EXIT_CONFIG, EXIT_INTERRUPTED = 0, 1, 2, 130


class StartError(Exception):
    """The worker cannot start as configured; one line naming the key and what to change."""


def loop_settings(config: WorkerConfig) -> LoopSettings:
    """What the loop advertises and how it paces itself, from the config."""
    return LoopSettings(
        name=config.name,
        models=tuple(m.name for m in config.models),
        baselines=tuple((m.name, m.baseline) for m in config.models),
        nsfw=config.nsfw,
        max_pixels=config.max_pixels,
        blacklist=config.blacklist,
        allow_img2img=config.allow_img2img,
        allow_lora=config.allow_lora,
        threads=config.max_threads,
        queue_size=config.queue_size,
        asset_failure=config.asset_failure,
        pause_after_faults=config.pause_after_faults,
        fault_pause_s=config.fault_pause_s,
        stats_interval_s=config.stats_interval_s,
        noise_models=frozenset(m.name for m in config.models if m.tiny),
    )


def model_specs(config: WorkerConfig) -> list[ModelSpec]:
    """The served models as the engine takes them, after checking each is on disk."""
    if not config.models:
        raise StartError(
            "worker.models: list at least one model to serve ([[worker.models]] name and path)"
        )
    specs = []
    for index, model in enumerate(config.models):
        key = f"worker.models[{index}]"
        path = Path(model.path).expanduser()
        if not path.exists():
            hint = f"; build it with `hordebot worker tiny-model {path}`" if model.tiny else ""
            raise StartError(f"{key}.path: {path} does not exist{hint}")
        if path.is_dir():
            if not (path / "model_index.json").is_file():
                raise StartError(
                    f"{key}.path: {path} is not a diffusers folder (no model_index.json)"
                )
        elif path.suffix.lower() != ".safetensors":
            raise StartError(
                f"{key}.path: {path} must be a .safetensors file or a diffusers folder"
            )
        folder = Path(model.config).expanduser() if model.config else None
        if folder is not None and not (folder / "model_index.json").is_file():
            raise StartError(f"{key}.config: {folder} is not a diffusers folder")
        specs.append(ModelSpec(model.name, path, model.baseline, config=folder))
    return specs


def check_start(config: WorkerConfig) -> str:
    """The horde API key, once everything that can be checked before loading is in order."""
    model_specs(config)
    if not config.horde_url.startswith(("http://", "https://")):
        raise StartError(
            f"worker.horde_url is {config.horde_url!r}: `hordebot run` gives the worker the "
            "embedded horde's address; to run it alone, set an http(s) URL"
        )
    if config.safety_model is not None and not Path(config.safety_model).expanduser().is_dir():
        raise StartError(f"worker.safety_model: {config.safety_model} is not a folder")
    api_key = config.api_key()
    if api_key is None:
        raise StartError(
            f"set the environment variable {config.api_key_env} (worker.api_key_env) to the "
            "worker's AI Horde API key"
        )
    return api_key


async def build_engine(config: WorkerConfig, executor: ThreadPoolExecutor) -> Engine:
    """The engine with every model loaded and run once (on the inference threads), so a broken
    model stops the start instead of faulting every job."""
    engine = Engine(model_specs(config), device=config.device)
    loop = asyncio.get_running_loop()
    for name in engine.models:
        try:
            seconds = await loop.run_in_executor(executor, engine.warmup, name)
        except ModelLoadError as exc:
            raise StartError(one_line(str(exc))) from None
        log.info("model %s ready in %.1f s", name, seconds)
    return engine


async def load_safety(config: WorkerConfig, device: str) -> SafetyCheck | None:
    """The NSFW classifier, or None (then censor jobs are refused; said here once)."""
    if config.safety_model is None:
        log.warning(
            "no worker.safety_model: jobs that ask for the NSFW censor will be handed back "
            "(faulted) for a worker that can censor%s%s",
            "; with nsfw = false that is most jobs" if not config.nsfw else "",
            " (random-weight demo models draw noise and serve them)"
            if any(m.tiny for m in config.models)
            else "",
        )
        return None
    try:
        return await asyncio.to_thread(
            ImageClassifierSafety.load, config.safety_model, config.safety_threshold, device
        )
    except SafetyModelError as exc:
        raise StartError(one_line(f"worker.safety_model: {exc}")) from None


def build_store(config: WorkerConfig) -> AssetStore:
    """The LoRA/TI store under ``cache_dir/assets``."""
    return AssetStore(
        Path(config.cache_dir).expanduser() / "assets",
        config.civitai_url,
        config.civitai_token(),
        max_cache_bytes=cache_bytes_from_gb(config.max_lora_cache_size),
    )


async def serve(config: WorkerConfig, api_key: str, *, handle_signals: bool = True) -> None:
    """Build the node and run it until stopped (signals) or refused (``WorkerStopped``)."""
    quiet_libraries()
    if config.allow_post_processing:
        log.warning("this worker has no post-processors; it advertises allow_post_processing off")
    if config.max_threads > 1:
        log.warning(
            "the engine runs one job at a time; max_threads %d only overlaps downloads and submits",
            config.max_threads,
        )
    executor = inference_executor(config.max_threads)
    try:
        await _serve(config, api_key, executor, handle_signals)
    finally:
        executor.shutdown(wait=False)


async def _serve(
    config: WorkerConfig, api_key: str, executor: ThreadPoolExecutor, handle_signals: bool
) -> None:
    engine = await build_engine(config, executor)
    safety = await load_safety(config, engine.device)
    client = HordeClient(api_key, base_url=config.horde_url)
    store = build_store(config)
    worker = WorkerLoop(loop_settings(config), client, engine, store, safety, executor=executor)
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM) if handle_signals else ()
    received = 0

    def on_signal() -> None:
        nonlocal received
        received += 1
        if received == 1:
            log.info("stopping: finishing the running job (signal again to fault it and quit)")
        worker.stop(abort=received > 1)

    for sig in signals:
        loop.add_signal_handler(sig, on_signal)
    try:
        await worker.run()
    finally:
        for sig in signals:
            with contextlib.suppress(ValueError, RuntimeError):
                loop.remove_signal_handler(sig)
        await store.aclose()
        await client.aclose()


def run_worker(config_path: str | None) -> int:
    """The whole command: load and check the config, serve, and return the exit status."""
    try:
        config = load_worker_config(config_path) if config_path else parse_worker_config({})
        api_key = check_start(config)
        asyncio.run(serve(config, api_key))
    except (WorkerConfigError, StartError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_CONFIG
    except WorkerStopped as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_REFUSED
    except KeyboardInterrupt:  # Ctrl-C while the models load, before the loop handles signals
        return EXIT_INTERRUPTED
    return EXIT_OK
