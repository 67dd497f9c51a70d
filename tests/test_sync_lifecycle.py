"""The blocking Client's lifetime: threads, running loops, fork, interrupts, close and exit."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import anyio
import pytest

from akool_async import (
    Client,
    ClientStateError,
    PlusSwap,
    RetryPolicy,
    SwapStatus,
    ValidationError,
)
from akool_async._jobs._events import BatchEvent
from akool_async._jobs._poller import PollConfig
from akool_async.testing import DEFAULT_API_KEY, EmulatorConfig, EmulatorThread
from tests import _support as support
from tests._support import FAST_RETRY, QUICK_JOBS, on_emulator

T = TypeVar("T")

FAST_POLL = PollConfig(image_first=0.02, image_max=0.1, jitter=0.1, retry_delay=0.02)


@pytest.fixture
def akool_emulator_config() -> EmulatorConfig:
    """Jobs of 10-30 ms."""
    return QUICK_JOBS


@pytest.fixture
def client(runner: EmulatorThread) -> Iterator[Client]:
    """An open blocking client of the emulator."""
    with Client(api_key=DEFAULT_API_KEY, base_url=runner.base_url, retry=FAST_RETRY) as client:
        client.poll_config = FAST_POLL
        yield client


def swap(i: int) -> PlusSwap:
    """A distinct single-face Plus request."""
    return support.swap(i, single_face_mode=True)


def portal_threads() -> list[threading.Thread]:
    """The blocking clients' portal threads alive in this process."""
    return [t for t in threading.enumerate() if t.name.startswith("akool-async-portal-")]


def calls_in_flight(client: Client) -> int:
    """How many blocking calls are running on the client's portal."""

    def count() -> int:
        tasks = asyncio.all_tasks()
        return sum(task.get_coro().__qualname__ == "_Portal._drive" for task in tasks)  # type: ignore[union-attr]

    runtime = client._core.current()
    return int(runtime.portal.call(count))


@pytest.fixture
def interrupt() -> Iterator[Callable[[Callable[[], bool]], None]]:
    """``interrupt(condition)``: SIGINT the main thread (as Ctrl-C does) once condition() holds."""
    helpers: list[threading.Thread] = []
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)

    def arm(condition: Callable[[], bool]) -> None:
        def wait_then_signal() -> None:
            deadline = time.monotonic() + 30
            while not condition() and time.monotonic() < deadline:
                time.sleep(0.005)
            signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)

        helper = threading.Thread(target=wait_then_signal, daemon=True)
        helpers.append(helper)
        helper.start()

    yield arm
    for helper in helpers:
        helper.join()
    signal.signal(signal.SIGINT, previous)


# --- threads and loops -----------------------------------------------------------------------


def test_sixteen_threads_share_one_portal(client: Client, runner: EmulatorThread) -> None:
    """16 threads calling at once all get their own correct results, through one portal."""
    start = threading.Barrier(16)
    seen_threads: set[str] = set()

    def work(i: int) -> tuple[str, str, SwapStatus, str]:
        if i < 16:
            start.wait()  # the first 16 calls really run at the same time
        job = client.faceswap_plus(swap(i))
        result = client.wait(job, timeout=30)
        [listed] = client.get_results([job.id])
        seen_threads.update(t.name for t in portal_threads())
        return runner.emulator.jobs[job.id].request["target_url"], job.id, result.status, listed.id

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(work, range(64)))
    assert [target for target, *_ in results] == [swap(i).target_url for i in range(64)]
    assert {(status, job_id == listed) for _, job_id, status, listed in results} == {
        (SwapStatus.SUCCESS, True)
    }
    assert len({job_id for _, job_id, _, _ in results}) == 64
    assert (
        seen_threads
        == {t.name for t in portal_threads()}
        == {client._core.current().portal.thread.name}
    )


def test_usable_inside_a_running_event_loop(client: Client) -> None:
    """Called from a coroutine (a notebook cell, an async framework), it just blocks, no error."""

    async def legacy_code_under_asyncio() -> tuple[float, SwapStatus, int]:
        credit = client.get_credit()
        result = client.wait(client.faceswap_plus(swap(0)), timeout=10)
        outcomes = list(client.swap_many([swap(i) for i in range(1, 4)]))
        return credit, result.status, len(outcomes)

    credit, status, outcomes = asyncio.run(legacy_code_under_asyncio())
    via_anyio = anyio.run(legacy_code_under_asyncio, backend="asyncio")
    assert (credit > 0, status, outcomes) == (True, SwapStatus.SUCCESS, 3)
    assert via_anyio[1:] == (SwapStatus.SUCCESS, 3)


# --- fork ------------------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:.*multi-threaded.*fork:DeprecationWarning")
def test_a_forked_child_recreates_its_portal(client: Client, runner: EmulatorThread) -> None:
    """After fork the child gets its own portal and session; the parent's keeps working."""
    config = PollConfig(image_first=0.03, image_max=0.1)
    client.poll_config = config
    credit = client.get_credit()
    parent_thread = client._core.current().portal.thread
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report through the pipe and the exit code, never return
        code = 1
        try:
            os.close(read_end)
            result = client.wait(client.faceswap_plus(swap(0)), timeout=20)
            runtime = client._core.current()
            checks = {
                "status": result.status == SwapStatus.SUCCESS,
                "new portal": runtime.portal.thread is not parent_thread,
                "own process": runtime.pid == os.getpid(),
                "poll_config kept": runtime.client.poll_config == config,
            }
            client.close()
            failed = [name for name, ok in checks.items() if not ok]
            os.write(write_end, repr(failed).encode() if failed else b"")
            code = 2 if failed else 0
        except BaseException as exc:
            os.write(write_end, repr(exc).encode())
            code = 3
        finally:
            os._exit(code)
    os.close(write_end)
    _, status = os.waitpid(pid, 0)
    with os.fdopen(read_end, "rb") as pipe:
        report = pipe.read()
    assert (os.waitstatus_to_exitcode(status), report) == (0, b"")
    assert client.get_credit() == credit - 1  # the child's job was charged; our portal works
    assert (client._core.current().portal.thread, parent_thread.is_alive()) == (
        parent_thread,
        True,
    )


# --- interrupts ------------------------------------------------------------------------------


def test_keyboard_interrupt_cancels_the_call(
    client: Client, runner: EmulatorThread, interrupt: Callable[[Callable[[], bool]], None]
) -> None:
    """Ctrl-C during a call cancels it on the portal; the client stays usable."""
    credit = client.get_credit()
    sent = runner.emulator.stats.requests["quota"]
    on_emulator(runner, runner.emulator.faults.inject, "quota", "slow", delay=60)
    interrupt(lambda: runner.emulator.stats.requests["quota"] > sent)
    with pytest.raises(KeyboardInterrupt):
        client.get_credit()  # answered in 60 s
    assert calls_in_flight(client) == 0
    assert client.get_credit() == credit


def test_keyboard_interrupt_cancels_a_wait(
    client: Client, runner: EmulatorThread, interrupt: Callable[[Callable[[], bool]], None]
) -> None:
    """Ctrl-C during wait() removes the waiter from the shared poller."""
    job = client.faceswap_plus(swap(0))
    on_emulator(runner, runner.emulator.force_status, job.id, 2)  # processing forever
    interrupt(lambda: client.poller_statistics().requests > 0)
    with pytest.raises(KeyboardInterrupt):
        client.wait(job, timeout=None)
    assert (calls_in_flight(client), client.poller_statistics().waiters) == (0, 0)
    on_emulator(runner, runner.emulator.force_status, job.id, 3)
    assert client.wait(job, timeout=10).status == SwapStatus.SUCCESS


def test_keyboard_interrupt_stops_a_batch(
    client: Client, runner: EmulatorThread, interrupt: Callable[[Callable[[], bool]], None]
) -> None:
    """Ctrl-C while waiting for the next outcome cancels the whole batch."""
    submitted = threading.Event()

    def pin(event: BatchEvent) -> None:
        if event.kind == "submitted" and event.job_id:
            on_emulator(runner, runner.emulator.force_status, event.job_id, 2)
            submitted.set()

    batch = client.swap_many([swap(i) for i in range(8)], on_event=pin)
    interrupt(submitted.is_set)
    with pytest.raises(KeyboardInterrupt), batch:
        for _ in batch:
            pass
    stats = batch.statistics()
    assert (stats.finished, stats.pending, client.poller_statistics().tracked) == (True, 0, 0)
    assert client.get_credit() > 0


# --- close -----------------------------------------------------------------------------------


def test_close_twice(runner: EmulatorThread) -> None:
    """close() is idempotent and ends the portal thread."""
    client = Client(api_key=DEFAULT_API_KEY, base_url=runner.base_url)
    thread = client._core.current().portal.thread
    client.close()
    client.close()
    assert (client.is_closed, thread.is_alive()) == (True, False)


USES: dict[str, Callable[[Client], object]] = {
    "operation": lambda c: c.faceswap_plus(swap(0)),
    "async method": lambda c: c.get_credit(),
    "wait": lambda c: c.wait("0123456789abcdef01234567"),
    "sync method": lambda c: c.statistics(),
    "iterator": lambda c: c.swap_many([swap(0)]),
    "webhooks": lambda c: c.attach_webhooks(),
    "setting": lambda c: setattr(c, "poll_config", PollConfig()),
    "view": lambda c: c.with_options(retry=RetryPolicy()).get_credit(),
    "with": lambda c: c.__enter__(),
}


@pytest.mark.parametrize("use", USES.values(), ids=USES.keys())
def test_use_after_close_raises(runner: EmulatorThread, use: Callable[[Client], object]) -> None:
    """Every member of a closed client raises ClientStateError."""
    with Client(api_key=DEFAULT_API_KEY, base_url=runner.base_url) as client:
        pass
    with pytest.raises(ClientStateError):
        use(client)


def test_close_under_a_running_call(client: Client, runner: EmulatorThread) -> None:
    """A call still running in another thread when the client closes raises ClientStateError."""
    sent = runner.emulator.stats.requests["quota"]
    on_emulator(runner, runner.emulator.faults.inject, "quota", "slow", delay=60)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            client.get_credit()
        except BaseException as exc:
            errors.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    while runner.emulator.stats.requests["quota"] == sent:
        time.sleep(0.005)
    client.close()
    caller.join(10)
    assert [type(error) for error in errors] == [ClientStateError]


def test_a_failed_construction_leaves_no_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without credentials the constructor raises ValidationError and stops its portal."""
    for name in ("AKOOL_API_KEY", "AKOOL_CLIENT_ID", "AKOOL_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    before = portal_threads()
    with pytest.raises(ValidationError):
        Client()
    assert portal_threads() == before


def test_a_forgotten_client_warns_and_is_closed(runner: EmulatorThread) -> None:
    """A client garbage collected while open warns (ResourceWarning) and still closes."""
    client = Client(api_key=DEFAULT_API_KEY, base_url=runner.base_url)
    client.get_credit()
    thread = client._core.current().portal.thread
    with pytest.warns(ResourceWarning, match="unclosed <Client"):
        del client  # no reference cycle: finalized at once
    gc.collect()
    thread.join(10)
    assert not thread.is_alive()  # and its session was closed: no aiohttp warning either


EXIT_SCRIPT = """
import atexit, sys, threading, time

errors = []
released = threading.Event()

@atexit.register  # registered first, so it runs after the client's own exit hook
def report():
    if how == "busy":
        released.wait(10)
        print(*errors, flush=True)

from akool_async import Client

key, url, how = sys.argv[1:]
client = Client(api_key=key, base_url=url)
print(client.get_credit(), flush=True)
sys.stdin.readline()  # the test sets the emulator up meanwhile
if how == "busy":  # a daemon thread is blocked in a call (answered in 60 s) at exit
    def call():
        try:
            client.get_credit()
        except Exception as exc:
            errors.append(type(exc).__name__)
        released.set()

    threading.Thread(target=call, daemon=True).start()
    time.sleep(0.2)
elif how == "dropped":  # dropped without close, then the interpreter exits at once
    del client
"""


@pytest.mark.parametrize("how", ["global", "busy", "dropped"])
def test_exit_does_not_hang(runner: EmulatorThread, how: str) -> None:
    """A script that never closes its client exits at once, with a ResourceWarning."""
    command = [sys.executable, "-W", "always::ResourceWarning", "-c", EXIT_SCRIPT]
    script = subprocess.Popen(
        [*command, DEFAULT_API_KEY, runner.base_url, how],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert script.stdout is not None
        assert float(script.stdout.readline()) > 0
        if how == "busy":
            on_emulator(runner, runner.emulator.faults.inject, "quota", "slow", delay=60)
        stdout, stderr = script.communicate("go\n", timeout=30)  # raises if exit hangs
    finally:
        script.kill()
        script.wait()
    assert (script.returncode, "ResourceWarning" in stderr, "Traceback" in stderr) == (
        0,
        True,
        False,
    ), stderr
    # The call blocked at exit ends when the exit hook closes the client.
    assert stdout.split() == (["ClientStateError"] if how == "busy" else [])
