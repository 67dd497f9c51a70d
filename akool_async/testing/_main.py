"""Run the emulator as a process: ``python -m akool_async.testing --port 8765 ...``.

Prints exactly one line containing ``http://127.0.0.1:PORT`` once it is serving, and exits
with status 0 on SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import signal
import sys
from collections.abc import Sequence
from typing import IO, Any, NoReturn

from ._config import (
    DEFAULT_API_KEY,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    EmulatorConfig,
)
from ._emulator import Emulator

__all__ = ["build_parser", "main"]


def _fault_rate(text: str) -> tuple[str, str, float]:
    try:
        where, rate = text.rsplit("=", 1)
        endpoint, kind = where.split(":", 1)
        return endpoint, kind, float(rate)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected ENDPOINT:KIND=RATE (e.g. '*:http_503=0.05'), got {text!r}"
        ) from None


#: The emulator's command name in usage and help, unless a caller names it otherwise.
PROG = "python -m akool_async.testing"

_EPILOG = f"""\
credentials it accepts (the same defaults as akool_async.testing):
  x-api-key      {DEFAULT_API_KEY}  (DEFAULT_API_KEY; --api-key to change)
  getToken       clientId {DEFAULT_CLIENT_ID}, clientSecret {DEFAULT_CLIENT_SECRET}

point a client at it:
  export AKOOL_BASE_URL=http://127.0.0.1:PORT AKOOL_API_KEY={DEFAULT_API_KEY}

Prints one line 'AKOOL emulator listening on http://127.0.0.1:PORT' once it serves, and exits
0 on Ctrl-C or SIGTERM (2 on a usage error, 1 when it cannot listen)."""


class UsageError(Exception):
    """A command-line mistake, reported as one ``error:`` line (exit 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """The command line of the emulator process (reused by ``akool-async emulator``)."""
    p = _Parser(
        prog=prog,
        description="Run a local AKOOL Face Swap API emulator on 127.0.0.1.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    p.add_argument(
        "--port", type=int, default=0, metavar="PORT", help="TCP port (default: 0, a free one)"
    )
    p.add_argument(
        "--api-key",
        default=None,
        metavar="KEY",
        help="the accepted x-api-key (default: the client secret)",
    )
    p.add_argument(
        "--client-id", default=DEFAULT_CLIENT_ID, metavar="ID", help="default: %(default)s"
    )
    p.add_argument(
        "--client-secret",
        default=DEFAULT_CLIENT_SECRET,
        metavar="SECRET",
        help="the AES key of webhooks, 16, 24 or 32 bytes (default: %(default)s)",
    )
    p.add_argument(
        "--seed", type=int, default=0, metavar="N", help="random seed (default: %(default)s)"
    )
    p.add_argument(
        "--clock-speed",
        type=float,
        default=1.0,
        metavar="X",
        help="emulator seconds per real second (default: %(default)s)",
    )
    config = EmulatorConfig()

    def span(name: str, what: str) -> None:
        low, high = getattr(config, name.replace("-", "_"))
        p.add_argument(
            f"--{name}",
            type=float,
            nargs=2,
            metavar=("MIN", "MAX"),
            help=f"{what} (default: {low:g} {high:g})",
        )

    span("queue-seconds", "seconds a job waits before processing")
    span("image-seconds", "seconds an image job processes")
    span("video-seconds", "seconds a video job processes")
    p.add_argument(
        "--latency-scale",
        type=float,
        default=1.0,
        metavar="X",
        help="multiplies every job duration (default: %(default)s)",
    )
    p.add_argument(
        "--failure-rate",
        type=float,
        default=0.0,
        metavar="RATE",
        help="share of jobs ending in status 4 (default: %(default)s)",
    )
    p.add_argument(
        "--concurrency",
        type=int,
        default=None,
        metavar="N",
        help="processing slots (default: unlimited)",
    )
    p.add_argument(
        "--rps",
        type=float,
        default=None,
        metavar="RPS",
        help="global requests per second before 1005 answers (default: unlimited)",
    )
    p.add_argument(
        "--burst",
        type=int,
        default=None,
        metavar="N",
        help="rate-limit bucket size (default: the rps, rounded up)",
    )
    p.add_argument(
        "--credit",
        type=float,
        default=10_000,
        metavar="N",
        help="starting balance (default: %(default)g)",
    )
    p.add_argument(
        "--video-size",
        type=int,
        default=None,
        metavar="BYTES",
        help=f"bytes per result MP4 (default: {config.video_size})",
    )
    p.add_argument(
        "--fault-rate",
        type=_fault_rate,
        action="append",
        default=[],
        metavar="ENDPOINT:KIND=RATE",
        help="random fault, repeatable (endpoint may be '*' or 'webhook')",
    )
    p.add_argument(
        "--submit-log",
        default=None,
        metavar="FILE",
        help="append one JSON line per job created (endpoint, _id, body), flushed at once",
    )
    p.add_argument(
        "--fetch-inputs",
        action="store_true",
        help="GET every input URL of a submit first; an unreachable one fails the job",
    )
    p.add_argument(
        "--webhook-statuses",
        type=int,
        nargs="+",
        default=None,
        metavar="STATUS",
        help="statuses that trigger a callback (default: 3 4)",
    )
    p.add_argument(
        "--detector-auth-errors",
        choices=["standard", "native"],
        default="standard",
        help="detectors' auth failures: {code, msg} (standard) or their own envelope on "
        "HTTP 401/403 (native); UNCONFIRMED (default: %(default)s)",
    )
    return p


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    """An ``EmulatorConfig`` from parsed command-line arguments."""
    rates: dict[str, dict[str, float]] = {}
    for endpoint, kind, rate in args.fault_rate:
        rates.setdefault(endpoint, {})[kind] = rate
    options: dict[str, Any] = {
        "seed": args.seed,
        "clock_speed": args.clock_speed,
        "latency_scale": args.latency_scale,
        "failure_rate": args.failure_rate,
        "concurrency": args.concurrency,
        "rate_limit": args.rps,
        "rate_burst": args.burst,
        "credit": args.credit,
        "fault_rates": rates,
        "detector_auth_errors": args.detector_auth_errors,
        "fetch_inputs": bool(getattr(args, "fetch_inputs", False)),
    }
    for name in ("queue_seconds", "image_seconds", "video_seconds", "webhook_statuses"):
        if getattr(args, name):
            options[name] = tuple(getattr(args, name))
    if args.video_size is not None:
        options["video_size"] = args.video_size
    return EmulatorConfig(**options)


async def _serve(args: argparse.Namespace, config: EmulatorConfig) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with Emulator(
            api_key=args.api_key,
            client_id=args.client_id,
            client_secret=args.client_secret,
            config=config,
            port=args.port,
        ) as emu:
            log = _submit_log(emu, args.submit_log) if args.submit_log else None
            print(f"AKOOL emulator listening on {emu.base_url}", flush=True)
            await stop.wait()
            if log is not None:
                log.close()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return 0


def _submit_log(emu: Emulator, path: str) -> IO[str]:
    """Log every created job to ``path`` (line-buffered: a killed client cannot lose one)."""
    handle = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - closed by _serve

    def write(job: Any) -> None:
        record = {"endpoint": job.endpoint, "id": job.id, "body": job.request}
        handle.write(json.dumps(record, sort_keys=True) + "\n")

    emu.submit_listeners.append(write)
    return handle


def main(argv: Sequence[str] | None = None, *, prog: str = PROG) -> int:
    """Run the emulator until SIGINT/SIGTERM; return the exit status.

    Args:
        argv: The arguments (default: ``sys.argv[1:]``).
        prog: The command name in usage and help.
    """
    parser = build_parser(prog)
    try:
        args = parser.parse_args(argv)
        config = config_from_args(args)
    except (UsageError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else 0
    try:
        return asyncio.run(_serve(args, config))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        reason = "the port is in use" if exc.errno == errno.EADDRINUSE else exc.strerror or exc
        print(f"error: cannot listen on 127.0.0.1:{args.port}: {reason}", file=sys.stderr)
        return 1
