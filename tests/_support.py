"""Helpers shared by several test files: constants, request builders, the CLI runner's result.

Fixtures live in ``conftest.py``; this module holds the plain values and functions they and
the tests use.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import attrs

from akool_async import PlusSwap, PollConfig, RetryPolicy
from akool_async.testing import EmulatorConfig, EmulatorThread

T = TypeVar("T")

#: Retries with delays of a few milliseconds.
FAST_RETRY = RetryPolicy(max_attempts=3, initial_delay=0.001, max_delay=0.005, jitter=False)

#: Polling every few tens of milliseconds, giving up on a missing job quickly.
FAST_POLL = PollConfig(
    image_first=0.02,
    image_max=0.1,
    video_first=0.05,
    video_max=0.2,
    jitter=0.1,
    retry_delay=0.02,
    miss_limit=2,
    miss_grace=0.05,
)

#: Jobs of 10-30 ms (images) and 50-150 ms (videos).
QUICK_JOBS = EmulatorConfig(latency_scale=0.01, queue_seconds=(0.0, 0.5))

#: Fast jobs and small videos, so that waiting CLI commands return quickly.
CLI_JOBS = EmulatorConfig(
    queue_seconds=(0, 0), image_seconds=(0.05, 0.1), video_seconds=(0.1, 0.2), video_size=4096
)


def swap(i: int, *, target: str | None = None, **changes: Any) -> PlusSwap:
    """A distinct Plus request, the same for the same ``i`` (its target URL identifies it)."""
    fields: dict[str, Any] = {
        "source_url": f"https://example.com/face-{i}.jpg",
        "target_url": target or f"https://example.com/target-{i}.jpg",
    }
    fields.update(changes)
    return PlusSwap(**fields)


def on_emulator(runner: EmulatorThread, func: Callable[..., T], /, *args: Any, **kw: Any) -> T:
    """Run ``func(*args, **kw)`` on the emulator's loop (it is not thread-safe)."""
    return runner.call(functools.partial(func, *args, **kw))


@attrs.frozen
class Run:
    """What one in-process CLI run gave: exit code, stdout and stderr."""

    code: int
    out: str
    err: str


Cli = Callable[..., Run]

#: A fenced code block of a Markdown page: its language and its body.
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.DOTALL | re.MULTILINE)


def run_example(code: str, folder: Path) -> None:
    """Run a documentation example as a user would, and fail the test if it fails.

    It runs in a fresh interpreter in ``folder`` without AKOOL_* variables, with leak warnings
    as errors; one that defines tests runs under pytest. If it wrote files it runs a second
    time in the same folder (examples must be re-runnable).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("AKOOL_")}
    warnings = ["-W", "error::ResourceWarning", "-W", "error::RuntimeWarning"]
    if "def test_" in code:
        script = folder / "test_example.py"
        command = [sys.executable, *warnings, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        command.append(str(script))
    else:
        script = folder / "example.py"
        command = [sys.executable, *warnings, str(script)]
    script.write_text(code, encoding="utf-8")
    done = subprocess.run(
        command, cwd=folder, env=env, capture_output=True, text=True, timeout=110, check=False
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    left = sorted(p.name for p in folder.iterdir() if p != script and p.name != "__pycache__")
    if left:  # it wrote files: a second run in the same folder must work too (re-runnable)
        again = subprocess.run(
            command, cwd=folder, env=env, capture_output=True, text=True, timeout=110, check=False
        )
        assert again.returncode == 0, f"second run, after {left}:\n{again.stderr}"
