"""pytest fixtures for the AKOOL emulator (registered through the ``pytest11`` entry point).

- ``akool_emulator_config``: the ``EmulatorConfig`` the other fixtures use; override it in
  your ``conftest.py`` or test module to change the behaviour.
- ``akool_emulator``: async (anyio tests): a running ``Emulator``, one per test.
- ``akool_emulator_thread``: sync: an ``EmulatorThread`` (emulator on a background loop).
- ``akool_emulator_url``: sync: that thread's base URL string.

The emulator is imported only when a fixture is used, so the plugin costs nothing otherwise.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from akool_async.testing import Emulator, EmulatorConfig, EmulatorThread

__all__ = [
    "akool_emulator",
    "akool_emulator_config",
    "akool_emulator_thread",
    "akool_emulator_url",
]


@pytest.fixture
def akool_emulator_config() -> EmulatorConfig:
    """The emulator configuration (defaults); override this fixture to customise."""
    from akool_async.testing import EmulatorConfig

    return EmulatorConfig()


@pytest.fixture
async def akool_emulator(akool_emulator_config: EmulatorConfig) -> AsyncIterator[Emulator]:
    """A running emulator on 127.0.0.1 for one anyio test."""
    from akool_async.testing import Emulator

    async with Emulator(config=akool_emulator_config) as emu:
        yield emu


@pytest.fixture
def akool_emulator_thread(akool_emulator_config: EmulatorConfig) -> Iterator[EmulatorThread]:
    """A running emulator on its own loop in a background thread, for sync tests."""
    from akool_async.testing import EmulatorThread

    with EmulatorThread(config=akool_emulator_config) as runner:
        yield runner


@pytest.fixture
def akool_emulator_url(akool_emulator_thread: EmulatorThread) -> str:
    """The base URL (``http://127.0.0.1:PORT``) of the background-thread emulator."""
    return akool_emulator_thread.base_url
