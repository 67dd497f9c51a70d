"""Memory per tracked job: 100,000 jobs waited for at once through one client's poller.

Each job is one ``client.wait(job_id)`` task with its default 600 s timeout: what any caller
waiting on a job holds (the poller's entry, waiter, future and deadline, plus the task and its
coroutine frames, about 1 KB of which is the caller's own task). Polling is paused (first
poll after an hour) so nothing completes or is sent while we measure. Reports the
resident-set growth (``/proc/self/statm``, after ``gc.collect()``) divided by the number of
jobs; ``--tracemalloc`` reports traced Python allocations instead.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import API_KEY, emit

from akool_async import AsyncClient, PollConfig

_PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


def _measure() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else _rss()


async def run(base_url: str, jobs: int) -> dict[str, Any]:
    ids = [f"{i:024x}" for i in range(jobs)]  # made before the baseline: the caller's data
    client = AsyncClient(api_key=API_KEY, base_url=base_url)
    client.poll_config = PollConfig(image_first=3600.0, image_max=3600.0)
    async with client:
        # Warm up allocator pools and code paths with a few waiters first.
        warm = [asyncio.create_task(client.wait(f"{i:024x}")) for i in range(100)]
        await asyncio.sleep(0.1)
        for task in warm:
            task.cancel()
        await asyncio.gather(*warm, return_exceptions=True)
        before = _measure()
        tasks = [asyncio.create_task(client.wait(job_id)) for job_id in ids]
        await asyncio.sleep(0.5)  # every task has started and registered its waiter
        tracked = client.poller_statistics().tracked
        after = _measure()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "jobs": jobs,
        "tracked": tracked,
        "bytes": after - before,
        "bytes_per_job": (after - before) / jobs,
        "how": "tracemalloc" if tracemalloc.is_tracing() else "rss",
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--base-url", required=True)
    p.add_argument("--jobs", type=int, default=100_000)
    p.add_argument("--tracemalloc", action="store_true")
    args = p.parse_args()
    if args.tracemalloc:
        tracemalloc.start()
    emit(asyncio.run(run(args.base_url, args.jobs)))


if __name__ == "__main__":
    main()
