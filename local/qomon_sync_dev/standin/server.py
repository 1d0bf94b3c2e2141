"""Runs the stand-in on 127.0.0.1: in a background thread for tests (`StandinServer`), or in
the foreground for `qomon-sync standin` until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import signal
import sys
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from qomon_sync_dev.standin.app import build_app
from qomon_sync_dev.standin.common import SeedError
from qomon_sync_dev.standin.config import StandinConfig
from qomon_sync_dev.standin.seed import build_seed

HOST = "127.0.0.1"
SHUTDOWN_GRACE_S = 0.25
"""How long a stop waits for calls in flight; a "timeout" fault may be hanging for minutes."""


def load_seed(seed_path: str | Path | None) -> dict[str, Any]:
    """The seed file's forms and contacts; without a path, the generated campaign seed."""
    if seed_path is None:
        return build_seed()
    try:
        seed = json.loads(Path(seed_path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SeedError(f"cannot read the seed {seed_path}: {error}") from None
    if not isinstance(seed, dict):
        raise SeedError(f'the seed {seed_path} must be an object {{"forms", "contacts"}}')
    return seed


async def _start_site(app: web.Application, port: int) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_GRACE_S)
    await runner.setup()
    site = web.TCPSite(runner, HOST, port)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner, _bound_port(runner, port)


def _bound_port(runner: web.AppRunner, requested: int) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return requested


class StandinServer:
    """A stand-in on 127.0.0.1 served from a background thread with its own event loop.

    Use it as a context manager, or call `start()` and `stop()`. Port 0 takes a free port;
    `url` and `port` tell which one once started.
    """

    def __init__(
        self, config: StandinConfig, seed_path: str | Path | None = None, port: int = 0
    ) -> None:
        self.config = config
        self._seed = load_seed(seed_path)
        self._requested_port = port
        self._port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the stand-in is not started")
        return self._port

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> StandinServer:
        if self._thread is not None:
            raise RuntimeError("the stand-in is already started")
        app = build_app(self.config, self._seed)
        ready = threading.Event()
        failure: list[BaseException] = []
        thread = threading.Thread(
            target=self._serve, args=(app, ready, failure), name="qomon-standin", daemon=True
        )
        thread.start()
        ready.wait()
        if failure:
            thread.join()
            raise failure[0]
        self._thread = thread
        return self

    def _serve(
        self, app: web.Application, ready: threading.Event, failure: list[BaseException]
    ) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            runner, self._port = loop.run_until_complete(_start_site(app, self._requested_port))
        except BaseException as error:
            failure.append(error)
            loop.close()
            ready.set()
            return
        self._loop = loop
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            # Calls still hanging on an injected timeout end with the loop.
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._thread = None
        self._loop = None
        self._port = None

    def __enter__(self) -> StandinServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


# -- the command line -------------------------------------------------------------------


def _probability(text: str) -> float:
    value = _number(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a probability from 0 to 1")
    return value


def _non_negative(text: str) -> float:
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be 0 or more")
    return value


def _positive(text: str) -> float:
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be more than 0")
    return value


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


def _port(text: str) -> int:
    value = _integer(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port from 0 to 65535 (0: any free)")
    return value


def _burst(text: str) -> int:
    value = _integer(text)
    if value < 5:
        raise argparse.ArgumentTypeError(
            f"{text!r} is too small: a write costs 5 tokens, so the burst must be at least 5"
        )
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--port", type=_port, default=8765, help="port on 127.0.0.1; 0 takes a free one"
    )
    parser.add_argument("--token", required=True, help="the API key the stand-in accepts")
    parser.add_argument(
        "--seed",
        metavar="FILE",
        help='a {"forms", "contacts"} JSON file (default: the generated campaign seed)',
    )
    parser.add_argument("--naming", choices=("current", "legacy"), default="current")
    parser.add_argument("--burst", type=_burst, default=100, help="token bucket size")
    parser.add_argument("--refill", type=_positive, default=10.0, help="tokens per second")
    parser.add_argument("--latency-ms", type=_non_negative, default=0.0)
    parser.add_argument("--fail-rate", type=_probability, default=0.0, help="random 5xx")
    parser.add_argument("--drop-rate", type=_probability, default=0.0, help="dropped connections")
    parser.add_argument("--timeout-rate", type=_probability, default=0.0, help="hung answers")
    parser.add_argument("--hang-s", type=_non_negative, default=30.0, help="how long a hang lasts")
    parser.add_argument("--random-seed", type=_integer, default=None)
    parser.add_argument("--retry-after", choices=("seconds", "date", "none"), default="seconds")
    parser.add_argument("--validation-status", type=int, choices=(400, 422), default=422)
    parser.add_argument("--error-style", choices=("problem", "legacy"), default="problem")
    parser.add_argument(
        "--lenient-types",
        dest="strict_types",
        action="store_false",
        help="take writes whose values are not of the documented types (numbers as text, ...)",
    )
    parser.add_argument(
        "--no-v1-forms",
        dest="forms_v1",
        action="store_false",
        help="answer 404 on /v1/forms/type/{type}, like an older space",
    )
    parser.add_argument(
        "--include-deleted",
        action="store_true",
        help="GET also returns soft-deleted entries, as observed live",
    )
    parser.add_argument(
        "--search-max-conditions",
        type=int,
        default=250,
        help="refuse (422) a search holding more conditions (Qomon documents no limit)",
    )


def config_from_args(args: argparse.Namespace) -> StandinConfig:
    return StandinConfig(
        token=args.token,
        naming=args.naming,
        burst=args.burst,
        refill=args.refill,
        latency_ms=args.latency_ms,
        fail_rate=args.fail_rate,
        drop_rate=args.drop_rate,
        timeout_rate=args.timeout_rate,
        hang_s=args.hang_s,
        random_seed=args.random_seed,
        retry_after=args.retry_after,
        validation_status=args.validation_status,
        error_style=args.error_style,
        strict_types=args.strict_types,
        forms_v1=args.forms_v1,
        include_deleted=args.include_deleted,
        search_max_conditions=args.search_max_conditions,
    )


def run_from_args(args: argparse.Namespace) -> int:
    try:
        app = build_app(config_from_args(args), load_seed(args.seed))
    except (SeedError, ValidationError) as error:
        print(f"qomon-sync standin: {error}", file=sys.stderr)
        return 2
    return asyncio.run(_serve_until_signalled(app, args.port))


async def _serve_until_signalled(app: web.Application, port: int) -> int:
    try:
        runner, bound = await _start_site(app, port)
    except OSError as error:
        print(f"qomon-sync standin: cannot listen on {HOST}:{port}: {error}", file=sys.stderr)
        return 1
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    print(f"Qomon stand-in listening on http://{HOST}:{bound}", flush=True)
    try:
        await stopping.wait()
    finally:
        await runner.cleanup()
    return 0
