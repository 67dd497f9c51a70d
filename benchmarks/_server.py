"""The benchmark's AKOOL emulator, in a process of its own, with an introspection port.

``python benchmarks/_server.py --slots 500 --image-seconds 2 4`` runs an ``Emulator`` (fixed
configuration: no queue time, uniform image processing time, ``--slots`` processing slots,
plenty of credit, no rate limit unless ``--rate-limit``, results listed in request order so
that polling never consumes the job planner's random numbers) and, on a second 127.0.0.1
port of the same process, a small admin app:

* ``GET /stats``: requests by endpoint, jobs created, this process's CPU seconds;
* ``GET /jobs``: every job in creation order as ``[_id, created, started, finished, ok]``,
  times on the wall clock (``time.time()``, which every process on the host shares);
* ``POST /reset``: ``emu.reset()``.

It prints one JSON line ``{"base_url": ..., "admin_url": ...}`` once both are serving, and
stops on SIGTERM/SIGINT or when its stdin closes (its parent died).
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import signal
import sys
import time
from typing import Any

from aiohttp import web

from akool_async.testing import Emulator, EmulatorConfig


def _config(args: argparse.Namespace) -> EmulatorConfig:
    return EmulatorConfig(
        seed=args.seed,
        concurrency=args.slots,
        queue_seconds=(0.0, 0.0),
        image_seconds=(args.image_seconds[0], args.image_seconds[1]),
        credit=args.credit,
        result_order="request",
        rate_limit=args.rate_limit,
    )


def _admin(emu: Emulator) -> web.Application:
    def offset() -> float:
        # Emulator time minus wall time, read now: converts job times to the shared clock.
        return emu.clock.now() - time.time()

    async def stats(request: web.Request) -> web.Response:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return web.json_response(
            {
                "requests": dict(emu.stats.requests),
                "responses": {f"{k[0]} {k[1]}": n for k, n in emu.stats.responses.items()},
                "codes": {f"{k[0]} {k[1]}": n for k, n in emu.stats.codes.items()},
                "jobs": len(emu.jobs),
                "cpu_s": usage.ru_utime + usage.ru_stime,
            }
        )

    async def jobs(request: web.Request) -> web.Response:
        shift = offset()
        rows: list[list[Any]] = [
            [
                job.id,
                round(job.created_at - shift, 6),
                round(job.start_at - shift, 6),
                round(job.finish_at - shift, 6),
                job.succeeds,
            ]
            for job in emu.jobs.values()
        ]
        return web.json_response({"slots": emu.config.concurrency, "jobs": rows})

    async def reset(request: web.Request) -> web.Response:
        emu.reset()
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/stats", stats)
    app.router.add_get("/jobs", jobs)
    app.router.add_post("/reset", reset)
    return app


async def _serve(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # The parent holds our stdin: EOF means it is gone, so never outlive it.
    loop.add_reader(sys.stdin.fileno(), lambda: sys.stdin.buffer.read1(4096) or stop.set())
    async with Emulator(config=_config(args)) as emu:
        runner = web.AppRunner(_admin(emu), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        admin = f"http://127.0.0.1:{runner.addresses[0][1]}"
        print(f'{{"base_url": "{emu.base_url}", "admin_url": "{admin}"}}', flush=True)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--slots", type=int, required=True, help="emulator processing slots")
    p.add_argument("--image-seconds", type=float, nargs=2, default=(2.0, 4.0))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--credit", type=float, default=1e9)
    p.add_argument(
        "--rate-limit", type=float, default=None, help="account-wide requests/s (1005 beyond)"
    )
    asyncio.run(_serve(p.parse_args()))


if __name__ == "__main__":
    main()
