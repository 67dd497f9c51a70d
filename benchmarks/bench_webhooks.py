"""listbyids calls and wall time of one swap_many batch: webhooks off, on, and on with losses.

Run ``python benchmarks/bench_webhooks.py [--jobs 1000] [--lost 0.2]``. The emulator runs on
its own thread (real clock); the client and its ``WebhookReceiver`` share the main loop. Jobs
take 0.1-0.35 s (the emulator's defaults times ``--scale``); every mode uses the same
``PollConfig`` (the defaults times ``--scale``, so a first poll after 0.15 s) with a safety
net of ``--safety-net`` seconds, well above a job's duration. Each mode gets a fresh emulator
state (``reset()``), the same requests and the same seed. Prints one JSON object per mode.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from akool_async import (
    AsyncClient,
    PlusSwap,
    PollConfig,
    WebhookReceiver,
    WebhookVerifier,
)
from akool_async.testing import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    EmulatorConfig,
    EmulatorThread,
)


def _requests(jobs: int) -> Any:
    for i in range(jobs):
        yield PlusSwap(
            source_url=f"https://example.com/face-{i}.jpg",
            target_url=f"https://example.com/target-{i}.jpg",
        )


async def _batch(
    runner: EmulatorThread, poll: PollConfig, jobs: int, mode: str, lost: float
) -> dict[str, Any]:
    emu = runner.emulator
    runner.call(emu.reset)
    if mode == "lost":
        runner.call(lambda: emu.configure(fault_rates={"webhook": {"lost": lost}}))
    verifier = WebhookVerifier(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, now=emu.clock.now)
    client = AsyncClient(api_key=emu.api_key, base_url=runner.base_url)
    client.poll_config = poll
    async with WebhookReceiver(verifier) as receiver, client:
        if mode != "off":
            client.use_webhooks(receiver, url=receiver.url)
        started = time.perf_counter()
        async with client.swap_many(_requests(jobs), concurrency=64) as batch:
            failed = sum([not outcome.ok async for outcome in batch])
        wall = time.perf_counter() - started
    attempts = list(emu.webhook_attempts)
    return {
        "mode": mode,
        "jobs": jobs,
        "failed": failed,
        "listbyids": emu.stats.requests["list_results"],
        "listbyids_per_job": round(emu.stats.requests["list_results"] / jobs, 4),
        "wall_s": round(wall, 2),
        "webhooks_delivered": sum(a.outcome == "delivered" for a in attempts),
        "webhooks_lost": sum(a.outcome == "lost" for a in attempts),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--lost", type=float, default=0.2, help="lost-delivery rate (mode 3)")
    parser.add_argument("--scale", type=float, default=0.1, help="job durations and polling")
    parser.add_argument("--safety-net", type=float, default=2.0, help="seconds")
    args = parser.parse_args()
    scale = args.scale
    config = EmulatorConfig(latency_scale=scale, credit=10 * args.jobs, seed=1)
    poll = PollConfig(
        image_first=1.5 * scale,
        image_max=15.0 * scale,
        miss_grace=30.0 * scale,
        retry_delay=2.0 * scale,
        safety_net_interval=args.safety_net,
    )
    with EmulatorThread(config=config) as runner:
        for mode in ("off", "on", "lost"):
            print(json.dumps(asyncio.run(_batch(runner, poll, args.jobs, mode, args.lost))))


if __name__ == "__main__":
    main()
