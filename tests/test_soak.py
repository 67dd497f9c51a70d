"""Soak (small): a long streamed batch leaks no memory, sockets, descriptors or tasks.

The engine is ``benchmarks/_chaos_lib.py``; ``benchmarks/chaos.py --soak`` runs 50,000 jobs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from _chaos_lib import SoakFigures, run_soak

pytestmark = pytest.mark.anyio

QUICK_JOBS = 1500
#: Allowed growth of the second half's memory peak over the first half's.
SLACK = 1.25


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """The module-scoped figures fixture runs on asyncio too."""
    return "asyncio"


@pytest.fixture(scope="module")
async def figures(tmp_path_factory: pytest.TempPathFactory) -> SoakFigures:
    """One soak run of ``QUICK_JOBS`` jobs against an emulator process."""
    return await run_soak(QUICK_JOBS, tmp_path_factory.mktemp("soak"), samples=20)


async def test_every_job_succeeds(figures: SoakFigures) -> None:
    """All jobs of the soak succeed and are downloaded."""
    assert figures.succeeded == QUICK_JOBS


async def test_memory_is_flat(figures: SoakFigures) -> None:
    """The second half's traced-memory peak is not materially above the first half's."""
    limit = figures.traced_first_half_peak * SLACK
    assert (figures.traced_second_half_peak <= limit, figures.traced_first_half_peak > 0) == (
        True,
        True,
    )


async def test_no_leaked_descriptors_or_sockets(figures: SoakFigures) -> None:
    """Every descriptor and socket opened during the run is closed after the client closes."""
    assert (figures.fds_after, figures.sockets_after) == (
        figures.fds_before,
        figures.sockets_before,
    )
    assert figures.sockets_during > figures.sockets_before  # connections were pooled meanwhile


async def test_no_leaked_tasks(figures: SoakFigures) -> None:
    """No asyncio task outlives the client."""
    assert figures.tasks_after == figures.tasks_before
