"""The naive baseline: what callers write today (contract section 7), with plain aiohttp.

``C`` workers; each takes the next input, submits it, then polls that one job alone with
listbyids every ``--interval`` seconds (4.5 s: public callers use 4-10 s) until it is
finished, then takes the next input. That is ``asyncio.gather`` over a
``swap_and_wait(input)`` coroutine behind an ``asyncio.Semaphore(C)``: at most C requests in
flight, exactly like ``swap_many(concurrency=C)`` has at most C submits in flight.

A 1005 ("Operation is too frequent", the account's rate limit) is what such code handles
with sleep-and-retry: a refused submit is sent again after ``--throttle-sleep`` seconds
(1 s), a refused poll after the next polling interval.

Records, per job, when the client learnt that it had finished (wall clock).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import API_KEY, LIST_PATH, SUBMIT_PATH, Usage, emit, request_body
from _common import run as run_process


async def run(
    base_url: str, jobs: int, concurrency: int, interval: float, throttle_sleep: float = 1.0
) -> dict[str, Any]:
    usage = Usage()
    detected: dict[str, float] = {}
    requests = {"submit": 0, "list_results": 0}
    errors = 0
    throttled = 0
    inputs = iter(range(jobs))
    headers = {"x-api-key": API_KEY}

    async def swap_and_wait(session: aiohttp.ClientSession, index: int) -> None:
        nonlocal errors, throttled
        while True:
            requests["submit"] += 1
            async with session.post(
                base_url + SUBMIT_PATH, json=request_body(index), headers=headers
            ) as response:
                answer = await response.json()
            if answer.get("code") != 1005:
                break
            throttled += 1
            await asyncio.sleep(throttle_sleep)
        if answer.get("code") != 1000:
            errors += 1
            return
        job_id = answer["data"]["_id"]
        while True:
            await asyncio.sleep(interval)
            requests["list_results"] += 1
            async with session.get(
                base_url + LIST_PATH, params={"_ids": job_id}, headers=headers
            ) as response:
                page = await response.json()
            if page.get("code") == 1005:
                throttled += 1
                continue  # asked again after the next interval
            items = page.get("data", {}).get("result", [])
            if items and items[0]["faceswap_status"] in (3, 4):
                detected[job_id] = time.time()
                if items[0]["faceswap_status"] == 4:
                    errors += 1
                return

    async def worker(session: aiohttp.ClientSession) -> None:
        for index in inputs:
            await swap_and_wait(session, index)

    usage.start()
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    usage.stop()
    return {
        **usage.as_dict(),
        "jobs": jobs,
        "errors": errors,
        "detected": detected,
        "client_requests": requests,
        "throttled": throttled,
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--base-url", required=True)
    p.add_argument("--jobs", type=int, required=True)
    p.add_argument("--concurrency", type=int, required=True)
    p.add_argument("--interval", type=float, default=4.5)
    p.add_argument("--throttle-sleep", type=float, default=1.0)
    args = p.parse_args()
    emit(
        run_process(
            run(args.base_url, args.jobs, args.concurrency, args.interval, args.throttle_sleep)
        )
    )


if __name__ == "__main__":
    main()
