"""akool-async's ``swap_many`` on N image swaps: one benchmark process.

``--mode makespan``: run the whole batch with swap_many's defaults except ``concurrency``
(and ``journal`` with ``--journal PATH``); record when each outcome reached the caller (wall
clock). ``--mode submit``: the submit path
alone, with ``max_pending`` = N so that nothing but submitting limits it; record when the
last job was created, then stop the batch.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import API_KEY, Usage, emit, request_body, run

from akool_async import AsyncClient, BatchEvent, PlusSwap

try:
    from akool_async._speedups import ORJSON, UVLOOP
except ImportError:  # an older akool_async (run.py --baseline): no speedups
    ORJSON = UVLOOP = False


def _client(base_url: str) -> AsyncClient:
    """The client as anyone would open it: every option at its default."""
    return AsyncClient(api_key=API_KEY, base_url=base_url)


def _requests(jobs: int) -> Any:
    for index in range(jobs):
        body = request_body(index)
        yield PlusSwap(source_url=body["source_url"], target_url=body["target_url"])


async def makespan(
    base_url: str, jobs: int, concurrency: int, journal: str | None = None
) -> dict[str, Any]:
    usage = Usage()
    detected: dict[str, float] = {}
    errors = 0
    usage.start()
    async with _client(base_url) as client:
        batch = client.swap_many(_requests(jobs), concurrency=concurrency, journal=journal)
        async with batch:
            async for outcome in batch:
                now = time.time()
                if outcome.job is not None:
                    detected[outcome.job.id] = now
                if outcome.error is not None:
                    errors += 1
        stats = batch.statistics()
        client_stats = client.statistics()
        poller = client.poller_statistics()
    usage.stop()
    return {
        **usage.as_dict(),
        "jobs": jobs,
        "errors": errors,
        "detected": detected,
        "batch_requests": dict(stats.requests),
        "client_requests": dict(client_stats.requests),
        "ids_polled": poller.ids_polled,
        "speedups": [name for name, used in (("orjson", ORJSON), ("uvloop", UVLOOP)) if used],
        "retries": stats.retries,
    }


async def submit(base_url: str, jobs: int, concurrency: int) -> dict[str, Any]:
    usage = Usage()
    submitted = 0
    last = 0.0
    done = asyncio.Event()

    def on_event(event: BatchEvent) -> None:
        nonlocal submitted, last
        if event.kind == "submitted":
            submitted += 1
            if submitted == jobs:
                last = time.time()
                done.set()

    usage.start()
    async with _client(base_url) as client:
        batch = client.swap_many(
            _requests(jobs), concurrency=concurrency, max_pending=jobs, on_event=on_event
        )
        async with batch:
            await done.wait()
            cpu = time.process_time() - usage.cpu_start
    usage.stop()
    return {
        **usage.as_dict(),
        "jobs": jobs,
        "submitted": submitted,
        "submit_s": last - usage.wall_start,
        "submit_cpu_s": cpu,
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--base-url", required=True)
    p.add_argument("--jobs", type=int, required=True)
    p.add_argument("--concurrency", type=int, required=True)
    p.add_argument("--mode", choices=("makespan", "submit"), default="makespan")
    p.add_argument("--journal", help="makespan mode: journal the batch in this (new) file")
    args = p.parse_args()
    if args.mode == "makespan":
        result = run(makespan(args.base_url, args.jobs, args.concurrency, args.journal))
    else:
        result = run(submit(args.base_url, args.jobs, args.concurrency))
    emit(result)


if __name__ == "__main__":
    main()
