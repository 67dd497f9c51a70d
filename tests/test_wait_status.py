"""``wait(on_status=...)``: a waiting caller hears of each new non-terminal status."""

from __future__ import annotations

import anyio
import pytest

from akool_async import AsyncClient, PollConfig, SwapResult, SwapStatus
from akool_async.testing import Emulator, EmulatorConfig
from tests._support import FAST_POLL

pytestmark = pytest.mark.anyio


@pytest.fixture
def akool_emulator_config() -> EmulatorConfig:
    """Jobs that move only when the test advances the emulator's clock."""
    return EmulatorConfig(clock="manual", queue_seconds=(5, 5), image_seconds=(5, 5))


@pytest.fixture
def client_poll_config() -> PollConfig:
    """Quick polling: the statuses are seen as soon as the clock moves."""
    return FAST_POLL


async def test_wait_reports_each_new_status(emu: Emulator, client: AsyncClient) -> None:
    """on_status gets queued, then processing, then wait returns the success."""
    job = await client.faceswap_plus(
        source_url="https://example.com/me.jpg", target_url="https://example.com/photo.jpg"
    )
    seen: list[SwapStatus] = []
    changed = anyio.Event()

    def on_status(result: SwapResult) -> None:
        nonlocal changed
        seen.append(result.status)
        changed.set()

    final: list[SwapResult] = []

    async def waiting() -> None:
        final.append(await client.wait(job, timeout=60, on_status=on_status))

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiting)
        await changed.wait()
        changed = anyio.Event()
        await emu.advance(6)  # queued -> processing
        await changed.wait()
        await emu.advance(6)  # processing -> success
    assert (seen, final[0].status) == (
        [SwapStatus.QUEUED, SwapStatus.PROCESSING],
        SwapStatus.SUCCESS,
    )
