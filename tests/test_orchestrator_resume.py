"""Journaled batches: crash (SIGKILL, abrupt cancellation) and resume without paying twice."""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

from akool_async import (
    AmbiguousSubmitError,
    AsyncClient,
    BatchEvent,
    InsufficientCreditError,
    JobFailedError,
    JobTimeoutError,
    JournalError,
    Outcome,
    ParameterError,
    PlusSwap,
    PollConfig,
)
from akool_async._jobs._journal import read_journal
from akool_async.testing import Emulator, EmulatorConfig
from tests._support import QUICK_JOBS, swap

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parent.parent
FAST_POLL = PollConfig(image_first=0.02, image_max=0.1, jitter=0.1, retry_delay=0.02)

#: A batch run in a child process, killed with SIGKILL by the test. It prints one line per
#: job created, so the test knows how far it got.
CHILD = r"""
import sys, anyio
from akool_async import AsyncClient, PlusSwap, PollConfig

base_url, api_key, journal, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

def requests():
    for i in range(n):
        yield PlusSwap(source_url=f"https://example.com/face-{i}.jpg",
                       target_url=f"https://example.com/target-{i}.jpg")

def on_event(event):
    if event.kind == "submitted":
        print("submitted", event.index, flush=True)

async def main():
    client = AsyncClient(api_key=api_key, base_url=base_url)
    client.poll_config = PollConfig(image_first=0.05, image_max=0.1)
    async with client:
        batch = client.swap_many(requests(), journal=journal, concurrency=8, on_event=on_event)
        async with batch:
            async for outcome in batch:
                print("outcome", outcome.index, flush=True)

anyio.run(main)
"""


@pytest.fixture
def akool_emulator_config() -> EmulatorConfig:
    """Jobs of 10-30 ms."""
    return QUICK_JOBS


@pytest.fixture
def client_poll_config() -> PollConfig:
    """The client polls every few tens of milliseconds."""
    return FAST_POLL


def inputs(n: int) -> Iterator[PlusSwap]:
    """The batch's input, as a generator."""
    return (swap(i) for i in range(n))


async def run(client: AsyncClient, requests: Any, **options: Any) -> dict[int, Outcome[Any]]:
    """Run a batch to the end; its outcomes by input index (exactly one each, checked)."""
    async with client.swap_many(requests, **options) as batch:
        outcomes = [outcome async for outcome in batch]
    by_index = {outcome.index: outcome for outcome in outcomes}
    assert len(by_index) == len(outcomes)
    return by_index


def jobs_per_input(emu: Emulator, n: int) -> list[int]:
    """How many jobs the emulator created for each input request."""
    return [emu.stats.jobs_by_target[swap(i).target_url] for i in range(n)]


def assert_paid_once(emu: Emulator, outcomes: dict[int, Outcome[Any]], n: int) -> None:
    """Every input has one job, except reported-ambiguous ones, which have at most one."""
    assert sorted(outcomes) == list(range(n))
    for i, jobs in enumerate(jobs_per_input(emu, n)):
        if isinstance(outcomes[i].error, AmbiguousSubmitError):
            assert jobs <= 1
        else:
            assert (jobs, outcomes[i].error) == (1, None)


async def test_resume_skips_finished_jobs(
    client: AsyncClient, emu: Emulator, tmp_path: Path
) -> None:
    """A finished batch run again with its journal submits nothing and replays its outcomes."""
    journal = tmp_path / "batch.sqlite"
    first = await run(client, inputs(10), journal=journal)
    again = await run(client, inputs(10), journal=journal)
    assert emu.stats.requests["faceswap_plus"] == 10
    assert all(o.resumed and o.ok for o in again.values())
    assert [(o.job, o.result) for o in again.values()] == [
        (first[i].job, first[i].result) for i in again
    ]


async def test_identical_requests_are_told_apart(
    client: AsyncClient, emu: Emulator, tmp_path: Path
) -> None:
    """Identical requests in one input are separate intents, in the first run and on resume."""
    journal = tmp_path / "batch.sqlite"
    same = [swap(0), swap(0), swap(0)]
    await run(client, same, journal=journal)
    again = await run(client, [*same, swap(0)], journal=journal)
    assert emu.stats.jobs_by_target[swap(0).target_url] == 4
    assert [again[i].resumed for i in range(4)] == [True, True, True, False]


async def test_webhook_url_is_not_part_of_the_identity(
    client: AsyncClient, emu: Emulator, tmp_path: Path
) -> None:
    """A request whose only change is its webhookUrl maps onto the same journal row."""
    journal = tmp_path / "batch.sqlite"
    await run(client, [swap(0, webhook_url="https://hooks.example.com/a")], journal=journal)
    again = await run(client, [swap(0, webhook_url="https://hooks.example.com/b")], journal=journal)
    assert (again[0].resumed, emu.stats.requests["faceswap_plus"]) == (True, 1)


@pytest.mark.parametrize("stop_after", [0, 3, 17])
async def test_abrupt_cancellation_then_resume_pays_once(
    client: AsyncClient, emu: Emulator, tmp_path: Path, stop_after: int
) -> None:
    """Cancelled after k jobs were created, a resume creates no second job for any input."""
    emu.configure(image_seconds=(20.0, 40.0))
    journal = tmp_path / "batch.sqlite"
    created = 0

    with anyio.CancelScope() as scope:

        def on_event(event: BatchEvent) -> None:
            nonlocal created
            if event.kind == "submitted":
                created += 1
                if created >= stop_after:
                    scope.cancel()

        if stop_after == 0:
            scope.cancel()
        async with client.swap_many(
            inputs(40), journal=journal, concurrency=8, on_event=on_event
        ) as batch:
            async for _ in batch:
                pass
    outcomes = await run(client, inputs(40), journal=journal)
    assert_paid_once(emu, outcomes, 40)
    assert sum(o.resumed for o in outcomes.values()) >= min(created, 40) - 8


@pytest.mark.parametrize("kill_after", [25, 60])
async def test_sigkill_mid_batch_then_resume_pays_once(
    client: AsyncClient, emu: Emulator, tmp_path: Path, kill_after: int
) -> None:
    """A batch process killed with SIGKILL and resumed creates at most one job per input."""
    n = 60
    emu.configure(image_seconds=(50.0, 100.0))  # 0.5-1 s: jobs are in flight at the kill
    journal = tmp_path / "batch.sqlite"
    command = [sys.executable, "-c", CHILD, emu.base_url, emu.api_key, str(journal), str(n)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    async with await anyio.open_process(command, env=env) as child:
        assert child.stdout is not None
        lines = BufferedByteReceiveStream(child.stdout)
        created = 0
        with anyio.fail_after(30):
            while created < kill_after:
                try:
                    line = await lines.receive_until(b"\n", 1024)
                except anyio.IncompleteRead:
                    assert child.stderr is not None
                    pytest.fail((await child.stderr.receive()).decode(errors="replace"))
                created += line.startswith(b"submitted")
        child.kill()  # SIGKILL: no cleanup of any kind
        assert await child.wait() == -9
    before = emu.stats.requests["faceswap_plus"]
    outcomes = await run(client, inputs(n), journal=journal)
    assert_paid_once(emu, outcomes, n)
    resubmitted = emu.stats.requests["faceswap_plus"] - before
    assert resubmitted == sum(not o.resumed for o in outcomes.values())
    assert sum(o.resumed for o in outcomes.values()) >= created


async def test_ambiguous_submit_is_not_resubmitted_on_resume(
    client: AsyncClient, emu: Emulator, tmp_path: Path
) -> None:
    """An ambiguous submit stays an AmbiguousSubmitError on resume unless asked otherwise."""
    journal = tmp_path / "batch.sqlite"
    emu.faults.inject("faceswap_plus", "drop_after")
    first = await run(client, inputs(3), journal=journal)
    ambiguous = [i for i, o in first.items() if isinstance(o.error, AmbiguousSubmitError)]
    assert len(ambiguous) == 1
    [index] = ambiguous
    again = await run(client, inputs(3), journal=journal)
    assert isinstance(again[index].error, AmbiguousSubmitError)
    assert again[index].resumed
    assert emu.stats.requests["faceswap_plus"] == 3
    forced = await run(client, inputs(3), journal=journal, resubmit_ambiguous=True)
    assert (forced[index].ok, forced[index].resumed) == (True, False)
    assert jobs_per_input(emu, 3)[index] == 2  # the documented price of resubmit_ambiguous


async def test_credit_exhaustion_then_top_up_and_resume(
    client: AsyncClient, emu: Emulator, tmp_path: Path
) -> None:
    """Requests refused for credit are journaled as unsent and submitted on resume."""
    journal = tmp_path / "batch.sqlite"
    emu.set_credit(10)
    first = await run(client, inputs(30), journal=journal, concurrency=4)
    refused = {i for i, o in first.items() if isinstance(o.error, InsufficientCreditError)}
    assert len(refused) == 20
    states = Counter(record.state for record in read_journal(journal))
    assert states == {"succeeded": 10, "unsent": 20}
    emu.set_credit(100)
    again = await run(client, inputs(30), journal=journal)
    assert all(o.ok for o in again.values())
    assert {i for i, o in again.items() if not o.resumed} == refused
    assert jobs_per_input(emu, 30) == [1] * 30


async def test_recorded_failures_are_replayed(
    client: AsyncClient, emu: Emulator, tmp_path: Path
) -> None:
    """A failed job and a rejected request come back from the journal, not resubmitted."""
    journal = tmp_path / "batch.sqlite"
    requests = [
        swap(0, target_url="https://example.com/fail-0.jpg"),
        swap(1, single_face_mode=False),  # no face_mapping: the server answers 1003
        swap(2),
    ]
    first = await run(client, requests, journal=journal)
    again = await run(client, requests, journal=journal)
    assert [type(first[i].error) for i in range(3)] == [JobFailedError, ParameterError, type(None)]
    assert [type(again[i].error) for i in range(3)] == [JobFailedError, ParameterError, type(None)]
    assert all(o.resumed for o in again.values())
    assert emu.stats.requests["faceswap_plus"] == 3
    failed = again[0].error
    assert isinstance(failed, JobFailedError)
    assert first[0].job is not None
    assert failed.job_id == first[0].job.id


async def test_timed_out_job_is_reattached_on_resume(
    client: AsyncClient, emu: Emulator, tmp_path: Path
) -> None:
    """A job that timed out is waited for again on resume, not submitted again."""
    journal = tmp_path / "batch.sqlite"
    stuck: list[str] = []

    def pin(event: BatchEvent) -> None:
        if event.kind == "submitted" and event.job_id is not None:
            emu.force_status(event.job_id, 2)
            stuck.append(event.job_id)

    first = await run(client, inputs(2), journal=journal, job_timeout=0.1, on_event=pin)
    assert [type(o.error) for o in first.values()] == [JobTimeoutError, JobTimeoutError]
    for job_id in stuck:
        emu.force_status(job_id, 3)
    again = await run(client, inputs(2), journal=journal)
    assert all(o.ok and o.resumed for o in again.values())
    assert emu.stats.requests["faceswap_plus"] == 2


async def test_corrupt_journal_is_refused(client: AsyncClient, tmp_path: Path) -> None:
    """A journal file that is not an SQLite journal makes the batch raise JournalError."""
    journal = tmp_path / "batch.sqlite"
    journal.write_bytes(b"definitely not sqlite" * 100)
    with pytest.raises(JournalError):
        await run(client, inputs(2), journal=journal)


async def test_journal_of_another_server_is_refused(
    client: AsyncClient, emu: Emulator, tmp_path: Path
) -> None:
    """A journal written against another base URL makes the batch raise JournalError."""
    journal = tmp_path / "batch.sqlite"
    await run(client, inputs(1), journal=journal)
    async with Emulator() as other:
        elsewhere = AsyncClient(api_key=other.api_key, base_url=other.base_url)
        async with elsewhere:
            with pytest.raises(JournalError, match="belongs to a batch against"):
                await run(elsewhere, inputs(1), journal=journal)
    assert emu.stats.requests["faceswap_plus"] == 1
