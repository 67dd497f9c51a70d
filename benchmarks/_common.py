"""Shared pieces of the benchmark processes: the workload's requests, resource usage, output.

Every client workload runs in a process of its own (``python benchmarks/_<name>.py ...``) so
that its CPU time and peak RSS are its own; it prints exactly one JSON object as the last line
of its stdout, which ``run.py`` reads.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

from akool_async.testing import DEFAULT_API_KEY

__all__ = [
    "API_KEY",
    "TUNED",
    "LIST_PATH",
    "SUBMIT_PATH",
    "Usage",
    "emit",
    "request_body",
    "run",
]

T = TypeVar("T")

API_KEY = DEFAULT_API_KEY
#: ``run.py --tuned``: client processes run on uvloop (if installed) with ``tune_gc()``, what
#: a program that owns its process may opt into. Default: plain ``asyncio.run``.
TUNED = os.environ.get("AKOOL_BENCH_TUNED", "") not in ("", "0")
#: Face Swap Plus (contract 3.1): what every workload submits.
SUBMIT_PATH = "/api/open/v4/faceswap/faceswapPlusByImage"
#: listbyids (contract 3.5).
LIST_PATH = "/api/open/v3/faceswap/result/listbyids"


def request_body(index: int) -> dict[str, Any]:
    """The JSON body of the ``index``-th swap: a single-face image swap, as the SDK sends it."""
    return {
        "source_url": f"https://example.com/faces/face-{index}.jpg",
        "target_url": f"https://example.com/photos/photo-{index}.jpg",
        "single_face_mode": True,
        "face_enhance": False,
        "model_style": "realistic",
    }


class Usage:
    """CPU time of this process between ``start()`` and ``stop()``, and its peak RSS."""

    def __init__(self) -> None:
        self.cpu_start = self.cpu = 0.0
        self.wall_start = self.wall = 0.0

    def start(self) -> None:
        self.wall_start = time.time()
        self.cpu_start = time.process_time()

    def stop(self) -> None:
        self.cpu = time.process_time() - self.cpu_start
        self.wall = time.time() - self.wall_start

    @staticmethod
    def peak_rss() -> int:
        """Peak resident set size of this process, in bytes (Linux reports KiB)."""
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def as_dict(self) -> dict[str, Any]:
        return {
            "wall_s": self.wall,
            "cpu_s": self.cpu,
            "started_at": self.wall_start,
            "peak_rss": self.peak_rss(),
        }


def emit(result: dict[str, Any]) -> None:
    """Print the process's result as the last line of stdout."""
    sys.stdout.write(json.dumps(result, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)``; with ``TUNED``, on uvloop (when installed) after ``tune_gc()``."""
    if not TUNED:
        return asyncio.run(main)
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, *gc.get_threshold()[1:])
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)
