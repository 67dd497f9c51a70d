"""How the emulator runs (process, thread, fixtures, clocks) and its job planning and state."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest

from akool_async.testing import (
    DEFAULT_API_KEY,
    Emulator,
    EmulatorConfig,
    EmulatorThread,
    ManualClock,
    Rejected,
)

ROOT = Path(__file__).resolve().parent.parent
KEY = {"x-api-key": DEFAULT_API_KEY}
QUOTA = "/api/open/v3/faceswap/quota/info"
LIST = "/api/open/v3/faceswap/result/listbyids"
PLUS_BODY = {
    "source_url": "https://example.com/s.jpg",
    "target_url": "https://example.com/t.jpg",
    "single_face_mode": True,
}


@pytest.fixture
def akool_emulator_config() -> EmulatorConfig:
    """Manual clock, no queueing, 2 s image jobs."""
    return EmulatorConfig(clock="manual", queue_seconds=(0, 0), image_seconds=(2, 2))


def get_json(url: str, headers: dict[str, str]) -> Any:
    """A blocking GET returning decoded JSON (for the sync tests)."""
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as resp:
        return json.load(resp)


# --- process mode -----------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_process_mode(http: aiohttp.ClientSession, sig: signal.Signals) -> None:
    """`python -m akool_async.testing` prints one URL line, serves, and exits 0 on a signal."""
    args = ["--port", "0", "--api-key", "proc-key", "--client-id", "proc-id"]
    args += ["--client-secret", "0123456789abcdef", "--credit", "42", "--image-seconds", "0", "0"]
    command = [sys.executable, "-W", "error", "-m", "akool_async.testing", *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    async with await anyio.open_process(command, cwd=ROOT, env=env) as proc:
        assert proc.stdout is not None
        assert proc.stderr is not None
        out = b""
        with anyio.fail_after(30):
            while b"\n" not in out:
                out += await proc.stdout.receive()
        match = re.search(r"http://127\.0\.0\.1:\d+", out.decode())
        assert match is not None, out
        async with http.get(match.group(0) + QUOTA, headers={"x-api-key": "proc-key"}) as resp:
            quota = await resp.json()
        proc.send_signal(sig)
        with anyio.fail_after(30):
            returncode = await proc.wait()
            out += b"".join([chunk async for chunk in proc.stdout])
            err = b"".join([chunk async for chunk in proc.stderr])
    expected = ({"code": 1000, "msg": "OK", "data": {"credit": 42}}, 0, 1, b"")
    assert expected == (quota, returncode, out.count(b"\n"), err)


def test_process_mode_rejects_bad_options() -> None:
    """A client secret that is not an AES key size exits 2 with a message."""
    proc = subprocess.run(
        [sys.executable, "-m", "akool_async.testing", "--client-secret", "short"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
        check=False,
    )
    expected = (2, True)
    assert expected == (proc.returncode, "16, 24 or 32 bytes" in proc.stderr)


# --- thread runner and fixtures ---------------------------------------------------------------


def test_sync_thread_fixture(
    akool_emulator_url: str, akool_emulator_thread: EmulatorThread
) -> None:
    """The sync fixtures serve from a background loop; call() changes state on that loop."""
    first = get_json(akool_emulator_url + QUOTA, KEY)
    akool_emulator_thread.call(akool_emulator_thread.emulator.set_credit, 5)
    second = get_json(akool_emulator_url + QUOTA, KEY)
    expected = (10_000, 5, 2, akool_emulator_thread.base_url)
    assert expected == (
        first["data"]["credit"],
        second["data"]["credit"],
        akool_emulator_thread.emulator.stats.requests["quota"],
        akool_emulator_url,
    )


def test_emulator_thread_advances_jobs() -> None:
    """EmulatorThread.call runs coroutines too, and advance() moves a manual clock."""
    config = EmulatorConfig(clock="manual", queue_seconds=(0, 0), image_seconds=(2, 2))
    with EmulatorThread(config=config) as runner:
        job = runner.call(runner.emulator.submit, "faceswap_plus", PLUS_BODY)
        before = get_json(f"{runner.base_url}{LIST}?_ids={job.id}", KEY)
        runner.advance(2)
        after = get_json(f"{runner.base_url}{LIST}?_ids={job.id}", KEY)
    status = [r["data"]["result"][0]["faceswap_status"] for r in (before, after)]
    expected = ([2, 3], False)
    assert expected == (status, runner._emulator is not None)


def test_public_names_are_sorted_and_importable() -> None:
    """akool_async.testing exports a sorted __all__ of names that exist."""
    import akool_async.testing as testing

    expected = sorted(testing.__all__)
    assert expected == [name for name in testing.__all__ if hasattr(testing, name)]


def test_plugin_is_registered(pytestconfig: pytest.Config) -> None:
    """The pytest11 entry point registers the fixtures plugin as "akool_async"."""
    expected = True
    assert expected == pytestconfig.pluginmanager.has_plugin("akool_async")


# --- clocks, planning and state ---------------------------------------------------------------


@pytest.mark.anyio
async def test_ids_and_timestamps_share_the_creation_time(http: aiohttp.ClientSession) -> None:
    """_id starts with the creation second; job_id and createdAt carry its milliseconds."""
    config = EmulatorConfig(clock="manual", start_time=1_719_476_868.006)
    async with Emulator(config=config) as emu:
        job = emu.submit("faceswap_plus", PLUS_BODY)
        async with http.get(emu.base_url + LIST, headers=KEY, params={"_ids": job.id}) as resp:
            (item,) = (await resp.json())["data"]["result"]
    assert re.fullmatch(r"667d2284[0-9a-f]{16}", job.id)
    assert re.fullmatch(r"20240627082748006-\d{4}", job.job_id)
    expected = "2024-06-27T08:27:48.006Z"
    assert expected == item["createdAt"]


@pytest.mark.anyio
async def test_concurrency_slots_queue_jobs(akool_emulator: Emulator) -> None:
    """With one processing slot, jobs wait in status 1 until the previous one finishes."""
    akool_emulator.configure(concurrency=1)
    jobs = [akool_emulator.submit("faceswap_plus", PLUS_BODY) for _ in range(3)]
    seen = []
    for step in (0, 2, 2, 2):
        await akool_emulator.advance(step)
        seen.append([akool_emulator.status(job.id) for job in jobs])
    expected = [[2, 1, 1], [3, 2, 1], [3, 3, 2], [3, 3, 3]]
    assert expected == seen


@pytest.mark.anyio
async def test_hundred_thousand_jobs_stay_cheap() -> None:
    """100,000 jobs with 50 slots are planned at submit and their statuses derived lazily."""
    config = EmulatorConfig(clock="manual", concurrency=50, credit=1e9, seed=3)
    async with Emulator(config=config) as emu:
        for _ in range(100_000):
            emu.submit("faceswap_plus", PLUS_BODY)
        await emu.advance(3_000)
        counts = Counter(emu.status(i) for i in emu.jobs)
        finish = max(job.finish_at for job in emu.jobs.values()) - emu.clock.now()
    expected = (100_000, 50, True)
    assert expected == (sum(counts.values()), counts[2], finish > 0)


@pytest.mark.anyio
async def test_submit_rejections_without_http(akool_emulator: Emulator) -> None:
    """emu.submit() validates like the server: Rejected carries 1003, 1006 and 1007."""
    codes = []
    for body in (
        {},
        {**PLUS_BODY, "single_face_mode": False, "target_url": "https://e/faces-9.jpg"},
    ):
        with pytest.raises(Rejected) as info:
            akool_emulator.submit("faceswap_plus", body)
        codes.append(info.value.code)
    akool_emulator.set_credit(0)
    with pytest.raises(Rejected) as short:
        akool_emulator.submit("faceswap_plus", PLUS_BODY)
    expected = [1003, 1003, 1006]
    assert expected == [*codes, short.value.code]


@pytest.mark.anyio
async def test_fast_real_clock_finishes_jobs(http: aiohttp.ClientSession) -> None:
    """clock_speed makes real time pass faster on the emulator clock."""
    async with Emulator(config=EmulatorConfig(clock_speed=1e7)) as emu:
        job = emu.submit("faceswap_plus", PLUS_BODY)
        async with http.get(emu.base_url + LIST, headers=KEY, params={"_ids": job.id}) as resp:
            (item,) = (await resp.json())["data"]["result"]
    expected = 3
    assert expected == item["faceswap_status"]


@pytest.mark.anyio
async def test_shuffled_result_order_follows_the_seed(http: aiohttp.ClientSession) -> None:
    """listbyids shuffles by default, the same way for the same seed."""
    orders = []
    for _ in range(2):
        async with Emulator(config=EmulatorConfig(clock="manual", start_time=1e9)) as emu:
            ids = [emu.submit("faceswap_plus", PLUS_BODY).id for _ in range(8)]
            async with http.get(
                emu.base_url + LIST, headers=KEY, params={"_ids": ",".join(ids)}
            ) as r:
                orders.append([item["_id"] for item in (await r.json())["data"]["result"]])
    expected = (orders[0], sorted(ids), True)
    assert expected == (orders[1], sorted(orders[0]), orders[0] != ids)


@pytest.mark.anyio
async def test_stats_count_requests_responses_and_codes(
    akool_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """stats counts requests per endpoint, (endpoint, HTTP status) and (endpoint, code)."""
    for headers in (KEY, {}):
        async with http.get(akool_emulator.base_url + QUOTA, headers=headers) as resp:
            await resp.read()
    async with http.get(akool_emulator.base_url + "/nowhere") as resp:
        await resp.read()
    stats = akool_emulator.stats
    expected = (
        Counter({"quota": 2, "unknown": 1}),
        Counter({("quota", 200): 2, ("unknown", 404): 1}),
        Counter({("quota", 1000): 1, ("quota", 1102): 1}),
    )
    assert expected == (stats.requests, stats.responses, stats.codes)


@pytest.mark.anyio
async def test_reset_restores_a_fresh_emulator(akool_emulator: Emulator) -> None:
    """reset() clears jobs, counters and queued faults and restores credit and configuration."""
    akool_emulator.submit("faceswap_plus", PLUS_BODY)
    akool_emulator.configure(banned=True, failure_rate=1.0)
    akool_emulator.faults.inject("quota", "http_500")
    akool_emulator.set_credit(3)
    akool_emulator.reset()
    state = (
        len(akool_emulator.jobs),
        akool_emulator.credit,
        akool_emulator.config.banned,
        akool_emulator.faults.pending(),
        sum(akool_emulator.stats.jobs_by_source.values()),
    )
    expected = (0, 10_000.0, False, 0, 0)
    assert expected == state


def test_configuration_is_validated() -> None:
    """Bad configuration values and AES-incompatible secrets raise ValueError."""
    bad: list[dict[str, Any]] = [
        {"concurrency": 0},
        {"failure_rate": 2},
        {"image_seconds": (3, 1)},
        {"webhook_statuses": (5,)},
        {"endpoint_rate_limits": {"nope": 1}},
        {"max_ids": 0},
    ]
    errors = 0
    for options in bad:
        with pytest.raises(ValueError, match=r"."):
            EmulatorConfig(**options)
        errors += 1
    with pytest.raises(ValueError, match=r"16, 24 or 32 bytes"):
        Emulator(client_secret="too-short")
    expected = (6, "Emulator(base_url='', api_key='***', client_id='AKEMUclientId0123456789=')")
    assert expected == (errors, repr(Emulator()))


def test_manual_clock_never_goes_backwards() -> None:
    """A manual clock only moves forward."""
    clock = ManualClock(start=100)
    clock.advance(5)
    clock.set(50)
    with pytest.raises(ValueError, match=r"backwards"):
        clock.advance(-1)
    expected = (105.0, 0.0, float("inf"))
    assert expected == (clock.now(), clock.seconds_until(100), clock.seconds_until(200))


def test_forgotten_emulator_thread_does_not_hang_exit() -> None:
    """A script that starts an EmulatorThread and never stops it still exits promptly."""
    script = (
        "from akool_async.testing import EmulatorThread\n"
        "runner = EmulatorThread()\n"
        "runner.start()\n"
        "print(runner.base_url, flush=True)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=False
    )
    assert (done.returncode, done.stdout.startswith("http://127.0.0.1:")) == (0, True)
