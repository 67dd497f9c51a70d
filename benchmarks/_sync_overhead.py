"""Per-call overhead of the blocking ``Client`` over ``await AsyncClient``: one process.

Runs ``benchmarks/bench_sync.py``'s ``measure_sync_overhead`` against the benchmark's emulator
process. If that module is absent, measures here instead: the same cheap call
(``get_credit``: one GET) through both clients, in interleaved rounds so that the machine's
drift hits both alike; the overhead is the median over rounds of (blocking per-call time -
async per-call time).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import API_KEY, emit

from akool_async import AsyncClient, Client


def measure(base_url: str, calls: int, rounds: int) -> dict[str, Any]:
    async def main() -> tuple[list[float], list[float]]:
        async_times: list[float] = []
        sync_times: list[float] = []
        async with AsyncClient(api_key=API_KEY, base_url=base_url) as aclient:
            # Calling the blocking client from inside a running loop is supported: it just
            # blocks this thread while the call runs on the client's own portal thread.
            with Client(api_key=API_KEY, base_url=base_url) as client:
                for _ in range(3):  # warm connections and code paths on both
                    client.get_credit()
                    await aclient.get_credit()
                for _ in range(rounds):
                    start = time.perf_counter()
                    for _ in range(calls):
                        await aclient.get_credit()
                    async_times.append((time.perf_counter() - start) / calls)
                    start = time.perf_counter()
                    for _ in range(calls):
                        client.get_credit()
                    sync_times.append((time.perf_counter() - start) / calls)
        return async_times, sync_times

    async_times, sync_times = asyncio.run(main())
    diffs = [s - a for s, a in zip(sync_times, async_times, strict=True)]
    return {
        "source": "benchmarks/_sync_overhead.py",
        "async_us": statistics.median(async_times) * 1e6,
        "sync_us": statistics.median(sync_times) * 1e6,
        "overhead_us": statistics.median(diffs) * 1e6,
        "calls": calls * rounds,
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--base-url", required=True)
    p.add_argument("--calls", type=int, default=200)
    p.add_argument("--rounds", type=int, default=15)
    args = p.parse_args()
    try:
        from bench_sync import measure_sync_overhead
    except ImportError:
        emit(measure(args.base_url, args.calls, args.rounds))
        return
    result = dict(measure_sync_overhead(base_url=args.base_url))
    result["source"] = "benchmarks/bench_sync.py"
    emit(result)


if __name__ == "__main__":
    main()
