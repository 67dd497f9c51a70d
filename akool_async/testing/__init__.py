"""A faithful, stateful local AKOOL Face Swap API emulator, for testing code that calls AKOOL.

Three ways to run it:

- in-process: ``async with Emulator(config=EmulatorConfig(clock="manual")) as emu:`` and
  point a client at ``emu.base_url`` (``x-api-key: DEFAULT_API_KEY``);
- pytest fixtures (plugin ``akool_async.testing.pytest_plugin``, registered automatically):
  ``akool_emulator`` (async), ``akool_emulator_thread`` and ``akool_emulator_url`` (sync),
  configured by overriding ``akool_emulator_config``;
- a process: ``python -m akool_async.testing --port 8765`` (see ``main``).

It is an independent implementation of the server described in the API contract; it never
imports the SDK's client.
"""

from __future__ import annotations

from akool_async._public import present_as_public as _present_as_public

from ._clock import Clock, ManualClock, RealClock
from ._config import (
    DEFAULT_API_KEY,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    ENDPOINTS,
    FAULT_KINDS,
    WEBHOOK_FAULT_KINDS,
    EmulatorConfig,
)
from ._emulator import Emulator, EmulatorThread
from ._faces import face_count
from ._faults import FaultInjector
from ._main import main
from ._state import EmulatorStats, Job
from ._validate import Rejected
from ._webhooks import WebhookAttempt

__all__ = [
    "Clock",
    "DEFAULT_API_KEY",
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "ENDPOINTS",
    "Emulator",
    "EmulatorConfig",
    "EmulatorStats",
    "EmulatorThread",
    "FAULT_KINDS",
    "FaultInjector",
    "Job",
    "ManualClock",
    "RealClock",
    "Rejected",
    "WEBHOOK_FAULT_KINDS",
    "WebhookAttempt",
    "face_count",
    "main",
]


_present_as_public(globals())
