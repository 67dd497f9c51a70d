"""Run the emulator as a process: ``python -m akool_async.testing --port 8765 ...``.

Prints exactly one line containing ``http://127.0.0.1:PORT`` once it is serving, and exits
with status 0 on SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence
from typing import Any

from ._config import (
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


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """The command line of the emulator process (reused by ``akool-async emulator``)."""
    p = argparse.ArgumentParser(
        prog=prog,
        description="Run a local AKOOL Face Swap API emulator on 127.0.0.1.",
    )
    p.add_argument("--port", type=int, default=0, help="TCP port (0: pick a free one)")
    p.add_argument("--api-key", default=None, help="accepted x-api-key (default: the secret)")
    p.add_argument("--client-id", default=DEFAULT_CLIENT_ID)
    p.add_argument("--client-secret", default=DEFAULT_CLIENT_SECRET, help="16, 24 or 32 bytes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--clock-speed", type=float, default=1.0, help="emulator s per real s")
    p.add_argument("--queue-seconds", type=float, nargs=2, metavar=("MIN", "MAX"))
    p.add_argument("--image-seconds", type=float, nargs=2, metavar=("MIN", "MAX"))
    p.add_argument("--video-seconds", type=float, nargs=2, metavar=("MIN", "MAX"))
    p.add_argument("--latency-scale", type=float, default=1.0)
    p.add_argument("--failure-rate", type=float, default=0.0)
    p.add_argument("--concurrency", type=int, default=None, help="processing slots")
    p.add_argument("--rps", type=float, default=None, help="global requests/second (1005)")
    p.add_argument("--burst", type=int, default=None, help="rate-limit bucket size")
    p.add_argument("--credit", type=float, default=10_000)
    p.add_argument("--video-size", type=int, default=None, help="bytes per result MP4")
    p.add_argument(
        "--fault-rate",
        type=_fault_rate,
        action="append",
        default=[],
        metavar="ENDPOINT:KIND=RATE",
        help="random fault, repeatable (endpoint may be '*' or 'webhook')",
    )
    p.add_argument(
        "--fetch-inputs",
        action="store_true",
        help="GET every input URL of a submit first; an unreachable one fails the job",
    )
    p.add_argument("--webhook-statuses", type=int, nargs="+", default=None, help="default: 3 4")
    p.add_argument(
        "--detector-auth-errors",
        choices=["standard", "native"],
        default="standard",
        help="detectors' auth failures: {code, msg} (standard) or their own envelope on "
        "HTTP 401/403 (native); UNCONFIRMED",
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
            print(f"AKOOL emulator listening on {emu.base_url}", flush=True)
            await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return 0


def main(argv: Sequence[str] | None = None, *, prog: str = PROG) -> int:
    """Run the emulator until SIGINT/SIGTERM; return the exit status.

    Args:
        argv: The arguments (default: ``sys.argv[1:]``).
        prog: The command name in usage and help.
    """
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
        return asyncio.run(_serve(args, config))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
