"""The ``hordebot worker`` command group: run the worker, or build a tiny model to run it on.

``hordebot worker tiny-model PATH`` writes a tiny random-weight SD1.5-architecture model (and with
``--single-file`` also an original-layout checkpoint) so the whole stack can be demonstrated and
tested offline in seconds. torch and diffusers are imported only when a command runs, so
``hordebot --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

TINY_MODEL_NAME = "tiny-sd"


def register(subparsers: Any) -> None:
    """Add ``worker`` and its sub-commands to the ``hordebot`` parser."""
    worker = subparsers.add_parser(
        "worker",
        help="run a GPU worker for a horde, or build a tiny offline model",
        description="Run a horde worker node (torch + diffusers).",
    )
    worker.add_argument("--config", metavar="FILE", help="the TOML config with a [worker] section")
    worker.set_defaults(handler=_run_worker)
    commands = worker.add_subparsers(dest="worker_command", metavar="COMMAND")

    tiny = commands.add_parser(
        "tiny-model",
        help="write a tiny random-weight SD1.5-architecture model for offline demos and tests",
        description=(
            "Write a tiny random-weight model (diffusers folder, tokenizer included) that the "
            "worker serves like any other; the same seed gives the same model."
        ),
    )
    tiny.add_argument("path", type=Path, metavar="PATH", help="folder to write (new or empty)")
    tiny.add_argument("--seed", type=int, default=0, help="weight seed (default 0)")
    tiny.add_argument("--sdxl", action="store_true", help="SDXL architecture instead of SD1.5")
    tiny.add_argument(
        "--single-file",
        type=Path,
        metavar="FILE",
        help="also write FILE.safetensors in the original single-file layout (SD1.5 only)",
    )
    tiny.add_argument(
        "--name",
        default=TINY_MODEL_NAME,
        help=f"horde model name to print (default {TINY_MODEL_NAME})",
    )
    tiny.set_defaults(handler=_tiny_model)


def _run_worker(args: argparse.Namespace) -> int:
    from worker_node.node import run_worker

    return run_worker(args.config)


def _problem(args: argparse.Namespace) -> str | None:
    path: Path = args.path
    if path.exists() and not path.is_dir():
        return f"{path} is a file; give a folder path for the tiny model"
    if path.is_dir() and any(path.iterdir()) and not (path / "model_index.json").is_file():
        return f"{path} is a folder that is not empty; choose a new folder"
    single: Path | None = args.single_file
    if single is not None:
        if args.sdxl:
            return "--single-file is only written for SD1.5 models; drop --sdxl or --single-file"
        if single.suffix.lower() != ".safetensors":
            return f"{single.name} must end in .safetensors"
        if single.is_dir():
            return f"{single} is a folder; give a file path ending in .safetensors"
    if args.seed < 0:
        return "--seed must be 0 or more"
    return None


def _tiny_model(args: argparse.Namespace) -> int:
    problem = _problem(args)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    from worker_node.pipelines import quiet_libraries
    from worker_node.tiny_model import SD1, SDXL, build_tiny_model, write_single_file

    quiet_libraries()
    baseline = SDXL if args.sdxl else SD1
    folder = build_tiny_model(args.path, seed=args.seed, baseline=baseline)
    lines = ["[[worker.models]]", f'name = "{args.name}"', f'path = "{folder.resolve()}"']
    lines.append(f'baseline = "{baseline}"')
    if args.single_file is not None:
        single = write_single_file(folder, args.single_file)
        lines += [
            "",
            "# the same weights as one checkpoint; configs and tokenizer come from the folder",
            "[[worker.models]]",
            f'name = "{args.name}-single"',
            f'path = "{single.resolve()}"',
            f'baseline = "{baseline}"',
            f'config = "{folder.resolve()}"',
        ]
    print(f"wrote a tiny {baseline} model to {folder}")
    print("\n".join(lines))
    return 0
