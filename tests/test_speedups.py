"""The optional speedups: orjson in the wire layer, uvloop in the SDK's own loops, GC tuning."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys

import pytest

import akool_async
from akool_async import Client, PlusSwap, ValidationError, tune_gc
from akool_async._endpoints import FACESWAP_PLUS
from akool_async._speedups import ORJSON, UVLOOP, dumps, loads
from akool_async._wire import build_request
from akool_async.testing import DEFAULT_API_KEY, EmulatorThread


def test_dumps_is_compact_json_that_loads_back() -> None:
    """``dumps`` writes compact JSON bytes that both parsers read back to the same value."""
    value = {"sourceImage": [{"path": "https://x.test/a.jpg", "opts": "1,2:3,4"}], "n": 1.5}
    encoded = dumps(value)
    assert (value, value, b" " not in encoded) == (json.loads(encoded), loads(encoded), True)


def test_dumps_falls_back_for_integers_beyond_64_bits() -> None:
    """A value orjson refuses (an integer beyond 64 bits) is still encoded, by the stdlib."""
    assert json.loads(dumps({"big": 2**70})) == {"big": 2**70}


def test_loads_rejects_non_json_with_value_error() -> None:
    """Text that is not JSON raises ``ValueError`` (which the wire layer maps to its error)."""
    with pytest.raises(ValueError, match=r"."):
        loads(b"{not json")


def test_build_request_encodes_the_body_once_with_the_declared_wire_names() -> None:
    """A POST's bytes are its JSON body as encoded by ``dumps``, wire names included."""
    wire = build_request(
        FACESWAP_PLUS,
        PlusSwap(source_url="https://x.test/a.jpg", target_url="https://x.test/b.jpg"),
    )
    assert wire.content is not None
    assert (json.loads(wire.content), wire.content) == (wire.json, dumps(wire.json))


def test_speedups_are_used_when_installed() -> None:
    """With orjson and uvloop importable, both are in use (the test extra installs them)."""
    pytest.importorskip("orjson")
    pytest.importorskip("uvloop")
    assert (ORJSON, UVLOOP) == (True, True)


def test_the_blocking_client_runs_its_loop_on_uvloop() -> None:
    """The portal thread's loop (the SDK's own) is a uvloop loop when uvloop is installed."""
    pytest.importorskip("uvloop")
    with (
        EmulatorThread() as emulator,
        Client(api_key=DEFAULT_API_KEY, base_url=emulator.base_url) as client,
    ):
        runtime = client._core.current()
        loop_type = type(runtime.portal.loop)
        credit = client.get_credit()
    assert (loop_type.__module__.split(".")[0], credit > 0) == ("uvloop", True)


def test_the_environment_switch_turns_the_speedups_off() -> None:
    """``AKOOL_ASYNC_NO_SPEEDUPS=1`` makes the SDK use the stdlib JSON and the default loop."""
    code = (
        "import json\n"
        "from akool_async import _speedups as s\n"
        "print(json.dumps([s.ORJSON, s.UVLOOP, s.loop_factory() is None,"
        " s.loads(s.dumps({'a': [1, 2]}))]))\n"
    )
    env = {**os.environ, "AKOOL_ASYNC_NO_SPEEDUPS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert json.loads(done.stdout) == [False, False, True, {"a": [1, 2]}]


def test_importing_the_library_leaves_the_gc_alone() -> None:
    """A fresh ``import akool_async`` changes neither the GC thresholds nor the frozen count."""
    code = (
        "import gc, json\n"
        "before = (gc.get_threshold(), gc.get_freeze_count())\n"
        "import akool_async, akool_async.testing\n"
        "print(json.dumps([before, (gc.get_threshold(), gc.get_freeze_count())]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, after = json.loads(done.stdout)
    assert after == before


def test_tune_gc_freezes_what_is_alive_and_raises_the_young_threshold() -> None:
    """``tune_gc`` moves live objects to the permanent generation and sets the threshold."""
    threshold = gc.get_threshold()
    try:
        tune_gc(threshold=12_345)
        found = (gc.get_threshold()[0], gc.get_freeze_count() > 0)
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
    assert found == (12_345, True)


def test_tune_gc_rejects_a_threshold_below_one() -> None:
    """A threshold of 0 (which would disable the collector) is a ``ValidationError``."""
    with pytest.raises(ValidationError, match="threshold"):
        tune_gc(threshold=0)


def test_tune_gc_is_public() -> None:
    """``tune_gc`` is part of the package's surface."""
    assert ("tune_gc" in akool_async.__all__, akool_async.tune_gc) == (True, tune_gc)
