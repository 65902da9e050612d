"""``hordebot horde``: run the embedded, horde-compatible local horde and add its users.

``hordebot horde serve`` logs ``horde listening on http://HOST:PORT/api`` once it accepts
connections (with ``--port 0`` that line tells the chosen port); ``hordebot horde user add NAME``
prints the new API key alone on its last line.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from core.errors import UserError
from core.horde.server import EmbeddedHorde, HordeSettings, HordeSettingsError, add_user
from core.horde.server.settings import DEFAULT_DB_URL

DEFAULT_PORT = 7001


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("a port is between 0 and 65535 (0: any free port)")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("give a number of seconds above 0")
    return value


def _kudos(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of kudos") from None
    if value != value or abs(value) > 1e12:
        raise argparse.ArgumentTypeError("give kudos as a plain number")
    return value


def register(subparsers: Any) -> None:
    """Add ``horde serve`` and ``horde user add`` to the ``hordebot`` parser."""
    horde = subparsers.add_parser("horde", help="the embedded, horde-compatible local horde")
    commands = horde.add_subparsers(dest="horde_command", required=True)

    serve = commands.add_parser("serve", help="serve the AI Horde v2 API under /api/v2/")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument(
        "--port", type=_port, default=DEFAULT_PORT, help="port (0: any free port; logged)"
    )
    serve.add_argument("--db", default=DEFAULT_DB_URL, help="SQLAlchemy URL of the database")
    serve.add_argument(
        "--images", type=Path, default=None, help="image folder (default: next to the database)"
    )
    serve.add_argument(
        "--job-ttl",
        type=_seconds,
        default=None,
        help="seconds a worker has per job (default: the horde's formula, at least 150)",
    )
    serve.add_argument(
        "--maintenance-interval",
        type=_seconds,
        default=60.0,
        help="seconds between expiry/timeout sweeps",
    )
    serve.add_argument("--public-url", default=None, help="base URL for image links (…/api)")
    serve.set_defaults(handler=_serve)

    user = commands.add_parser("user", help="manage the embedded horde's accounts")
    user_commands = user.add_subparsers(dest="user_command", required=True)
    add = user_commands.add_parser("add", help="create an account; prints its API key last")
    add.add_argument("name", help="the account's alias (shown as NAME#ID)")
    add.add_argument("--kudos", type=_kudos, default=0.0, help="starting kudos")
    add.add_argument("--trusted", action="store_true", help="a trusted account")
    add.add_argument("--db", default=DEFAULT_DB_URL, help="SQLAlchemy URL of the database")
    add.set_defaults(handler=_user_add)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed (it roughly halves the horde's per-request CPU), else asyncio's."""
    try:
        import uvloop  # optional: not a declared dependency
    except ImportError:
        return None
    return uvloop.new_event_loop


def _fail(error: UserError) -> int:
    print(f"hordebot horde: {error}", file=sys.stderr)
    return 2


def _serve(args: argparse.Namespace) -> int:
    try:
        settings = HordeSettings(
            db_url=args.db,
            images_dir=args.images,
            job_ttl_s=args.job_ttl,
            maintenance_interval_s=args.maintenance_interval,
            public_url=args.public_url,
        )
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(_run(settings, args.host, args.port))
    except UserError as error:
        return _fail(error)
    except HordeSettingsError as error:
        return _fail(UserError(str(error)))
    return 0


async def _run(settings: HordeSettings, host: str, port: int) -> None:
    embedded = EmbeddedHorde(settings, host=host, port=port)
    try:
        await embedded.start()
    except (SQLAlchemyError, ImportError) as error:
        raise UserError(
            f"cannot open the horde database {settings.db_url}: {error}",
            hint="check --db",
        ) from error
    except OSError as error:
        raise UserError(
            f"cannot start on {host}:{port}: {error.strerror or error}",
            hint="pick another --port or --host, or check --db and --images",
        ) from error
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        stopped = asyncio.create_task(stop.wait())
        serving = asyncio.create_task(embedded.serve_forever())
        await asyncio.wait({stopped, serving}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        serving.cancel()
    finally:
        await embedded.stop()


def _user_add(args: argparse.Namespace) -> int:
    try:
        user, key = add_user(args.db, args.name, kudos=args.kudos, trusted=args.trusted)
    except HordeSettingsError as error:
        return _fail(UserError(str(error)))
    except ValueError as error:
        return _fail(UserError(str(error), hint="choose another NAME"))
    except (SQLAlchemyError, ImportError, OSError) as error:
        return _fail(
            UserError(f"cannot open the horde database {args.db}: {error}", hint="check --db")
        )
    print(f"added {user.username} with {user.kudos:g} kudos to {args.db}; API key:")
    print(key)
    return 0
