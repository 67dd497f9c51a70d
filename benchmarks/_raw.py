"""The submit limit: raw aiohttp POSTs of pre-built JSON bodies, C at a time.

Nothing is validated, decoded beyond the status line, or retried: the fastest any Python
client could create N jobs on this server at this concurrency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import API_KEY, SUBMIT_PATH, Usage, emit, request_body
from _common import run as run_process


async def run(base_url: str, jobs: int, concurrency: int) -> dict[str, Any]:
    bodies = [json.dumps(request_body(i)).encode() for i in range(jobs)]
    inputs = iter(bodies)
    headers = {"x-api-key": API_KEY, "Content-Type": "application/json"}
    url = base_url + SUBMIT_PATH
    failed = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal failed
        for body in inputs:
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                if response.status != 200:
                    failed += 1

    usage = Usage()
    usage.start()
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        last = time.time()
    usage.stop()
    return {**usage.as_dict(), "jobs": jobs, "failed": failed, "submit_s": last - usage.wall_start}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--base-url", required=True)
    p.add_argument("--jobs", type=int, required=True)
    p.add_argument("--concurrency", type=int, required=True)
    args = p.parse_args()
    emit(run_process(run(args.base_url, args.jobs, args.concurrency)))


if __name__ == "__main__":
    main()
