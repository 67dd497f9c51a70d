"""Per-call overhead of the blocking ``Client`` over ``await AsyncClient``.

Run ``python benchmarks/bench_sync.py``. Two call paths are timed through both clients in the
same run, alternating one async call and one blocking call, so that whatever the machine does
meanwhile hits both alike; the overhead is the median of the per-pair differences (blocking
minus async):

* ``get_credit()``: one GET against the same emulator (in this process, on its own thread,
  unless ``--base-url`` points at another one): what a real call pays;
* ``statistics()``: no I/O, so the blocking figure is the shim alone (one hop into the portal
  thread and one back).

For reference the trivial path is also timed through anyio's ``BlockingPortal.call`` (the call
path of ``start_blocking_portal``).

``measure_sync_overhead()`` returns the figures as a dict (``benchmarks/run.py`` imports it);
the target is ``overhead_us <= 1.5 * sync_floor_us`` (``measure_sync_floor``: a bare
cross-thread round trip, measured in the same run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import time
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from typing import Any

from anyio.from_thread import start_blocking_portal

from akool_async import AsyncClient, Client
from akool_async.testing import DEFAULT_API_KEY, EmulatorThread

__all__ = ["measure_sync_overhead"]


async def _pairs(
    run_async: Callable[[], Awaitable[object]], run_blocking: Callable[[], object], pairs: int
) -> tuple[list[float], list[float]]:
    """Alternate one async and one blocking call; their durations in seconds."""
    clock = time.perf_counter
    async_times, blocking_times = [], []
    for _ in range(pairs):
        start = clock()
        await run_async()
        middle = clock()
        run_blocking()
        end = clock()
        async_times.append(middle - start)
        blocking_times.append(end - middle)
    return async_times, blocking_times


def _summary(async_times: list[float], blocking_times: list[float]) -> dict[str, float]:
    diffs = sorted(b - a for a, b in zip(async_times, blocking_times, strict=True))
    async_us = statistics.median(async_times) * 1e6
    sync_us = statistics.median(blocking_times) * 1e6
    return {
        "async_us": async_us,
        "sync_us": sync_us,
        "overhead_us": statistics.median(diffs) * 1e6,
        "overhead_p25_us": diffs[len(diffs) // 4] * 1e6,
        "overhead_p75_us": diffs[3 * len(diffs) // 4] * 1e6,
        "ratio": sync_us / async_us,
    }


def measure_sync_floor(calls: int = 20000) -> dict[str, float]:
    """The bare cross-thread round trip a blocking call cannot avoid, on this machine, now.

    An idle asyncio loop in a thread of its own (uvloop when the SDK's portal uses it); the
    caller posts ``lock.release`` with ``call_soon_threadsafe`` and sleeps on the lock: one
    wake-up of the loop thread and one of the caller, nothing else.
    """
    import _thread
    import threading

    from akool_async._speedups import loop_factory

    factory = loop_factory()
    loop = factory() if factory is not None else asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        clock = time.perf_counter
        times = []
        for _ in range(calls):
            lock = _thread.allocate_lock()
            lock.acquire()
            start = clock()
            loop.call_soon_threadsafe(lock.release)
            lock.acquire()
            times.append(clock() - start)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
    times.sort()
    return {
        "sync_floor_us": statistics.median(times) * 1e6,
        "sync_floor_p25_us": times[len(times) // 4] * 1e6,
        "sync_floor_p75_us": times[3 * len(times) // 4] * 1e6,
    }


def measure_sync_overhead(
    *, calls: int = 3000, trivial_calls: int = 20000, base_url: str | None = None
) -> dict[str, Any]:
    """Time the blocking and the async client on the same calls, in the same run.

    Args:
        calls: ``get_credit`` call pairs (one async, one blocking).
        trivial_calls: ``statistics()`` call pairs.
        base_url: An emulator to call; by default one is started in this process, on a
            thread of its own.

    Returns:
        ``overhead_us`` (median of blocking minus async, per ``get_credit`` call, with
        ``overhead_p25_us`` / ``overhead_p75_us``), ``async_us``, ``sync_us``, ``ratio``; the
        same for ``statistics()`` under ``trivial_*``; ``anyio_portal_call_us`` (the trivial
        call through anyio's portal); ``sync_floor_us`` (``measure_sync_floor``); the setup.
    """
    with ExitStack() as stack:
        if base_url is None:
            base_url = stack.enter_context(EmulatorThread()).base_url
        client = stack.enter_context(Client(api_key=DEFAULT_API_KEY, base_url=base_url))

        async def run() -> dict[str, Any]:
            async with AsyncClient(api_key=DEFAULT_API_KEY, base_url=base_url) as aclient:

                async def astatistics() -> object:
                    return aclient.statistics()

                # Calling the blocking client from inside this running loop is supported: it
                # blocks this thread while the client's own portal thread runs the call.
                await _pairs(aclient.get_credit, client.get_credit, 50)  # warm up both
                real = _summary(*await _pairs(aclient.get_credit, client.get_credit, calls))
                trivial = _summary(*await _pairs(astatistics, client.statistics, trivial_calls))
                with start_blocking_portal("asyncio") as portal:
                    _, anyio_times = await _pairs(
                        astatistics, lambda: portal.call(aclient.statistics), trivial_calls // 4
                    )
            return {
                **real,
                **{f"trivial_{key}": value for key, value in trivial.items()},
                "anyio_portal_call_us": statistics.median(anyio_times) * 1e6,
            }

        result = asyncio.run(run())
        floor = measure_sync_floor(trivial_calls)
    return {
        "source": "benchmarks/bench_sync.py",
        **result,
        **floor,
        "calls": calls,
        "trivial_calls": trivial_calls,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="Per-call overhead of the blocking Client.")
    parser.add_argument("--calls", type=int, default=3000, help="get_credit call pairs")
    parser.add_argument("--trivial-calls", type=int, default=20000, help="statistics() pairs")
    parser.add_argument("--base-url", help="an emulator to use (default: one in-process)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()
    result = measure_sync_overhead(
        calls=args.calls, trivial_calls=args.trivial_calls, base_url=args.base_url
    )
    if args.json:
        print(json.dumps(result))
        return
    print(f"python {result['python']}, {result['cpus']} CPUs; medians of alternating pairs")
    for label, prefix, calls in (
        ("get_credit", "", result["calls"]),
        ("statistics", "trivial_", result["trivial_calls"]),
    ):
        print(
            f"{label:11s} async {result[prefix + 'async_us']:7.1f} us   blocking "
            f"{result[prefix + 'sync_us']:7.1f} us   overhead {result[prefix + 'overhead_us']:6.1f}"
            f" us/call (p25 {result[prefix + 'overhead_p25_us']:.1f}, p75 "
            f"{result[prefix + 'overhead_p75_us']:.1f})   ratio {result[prefix + 'ratio']:.2f}"
            f"   [{calls} pairs]"
        )
    print(f"anyio BlockingPortal.call, same trivial call: {result['anyio_portal_call_us']:.1f} us")
    floor = result["sync_floor_us"]
    print(f"bare call_soon_threadsafe + lock round trip (the floor): {floor:.1f} us")
    verdict = "OK" if result["overhead_us"] <= 1.5 * floor else "ABOVE TARGET"
    print(f"target overhead <= 1.5 x floor ({1.5 * floor:.1f} us/call): {verdict}")


if __name__ == "__main__":
    main()
