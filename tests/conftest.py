"""Shared test configuration: anyio's pytest plugin pinned to asyncio (aiohttp is asyncio-only)."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    """Run every ``@pytest.mark.anyio`` test on asyncio."""
    return "asyncio"
