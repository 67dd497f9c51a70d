"""swap_many and wait against the emulator: fan-out, coalesced polling, failures, cancellation."""

from __future__ import annotations

import asyncio
import gc
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anyio
import anyio.lowlevel
import attrs
import pytest

from akool_async import (
    AccountBannedError,
    AmbiguousSubmitError,
    AsyncClient,
    BatchDeadlineError,
    BatchEvent,
    ClientStateError,
    InsufficientCreditError,
    JobFailedError,
    JobNotFoundError,
    JobTimeoutError,
    Outcome,
    PlusSwap,
    PollConfig,
    RateLimitError,
    RetryPolicy,
    SwapStatus,
    ValidationError,
)
from akool_async.testing import Emulator, EmulatorConfig
from tests._support import FAST_POLL, FAST_RETRY, QUICK_JOBS, swap

pytestmark = pytest.mark.anyio


@pytest.fixture
def akool_emulator_config() -> EmulatorConfig:
    """Jobs of 10-30 ms (images) and 50-150 ms (videos)."""
    return QUICK_JOBS


@pytest.fixture
def client_poll_config() -> PollConfig:
    """The client polls every few tens of milliseconds."""
    return FAST_POLL


def sdk_tasks() -> list[str]:
    """The running asyncio tasks that execute SDK code (not the emulator's, not the test's)."""
    names = (task.get_name() for task in asyncio.all_tasks())  # anyio names them by function
    return sorted(
        name for name in names if name.startswith("akool_async.") and ".testing." not in name
    )


def after_submits(count: int, action: Callable[[], object]) -> Callable[[BatchEvent], None]:
    """An on_event hook that calls ``action`` when the ``count``-th job was submitted."""
    submitted = 0

    def on_event(event: BatchEvent) -> None:
        nonlocal submitted
        if event.kind == "submitted":
            submitted += 1
            if submitted == count:
                action()

    return on_event


async def collect(batch: Any) -> list[Outcome[PlusSwap]]:
    """Every outcome of a batch, inside ``async with``."""
    async with batch:
        return [outcome async for outcome in batch]


async def test_two_thousand_jobs_one_outcome_each_with_few_polls(
    client: AsyncClient, emu: Emulator
) -> None:
    """2,000 jobs give exactly one outcome per request and listbyids calls < 1/10 of jobs."""
    emu.configure(credit=5000)
    # First poll after 100 ms: most jobs are done by then, and the 50 ms coalescing window
    # bounds the request rate however slow the machine is.
    client.poll_config = attrs.evolve(FAST_POLL, image_first=0.1, image_max=0.3)
    n = 2000
    requests = (swap(i) for i in range(n))
    outcomes = await collect(client.swap_many(requests, concurrency=64))
    assert sorted(o.index for o in outcomes) == list(range(n))
    assert [o for o in outcomes if not o.ok] == []
    assert emu.stats.requests["faceswap_plus"] == n
    assert set(emu.stats.jobs_by_target.values()) == {1}
    assert emu.stats.requests["list_results"] < n / 10


async def test_failed_job_is_an_outcome(client: AsyncClient, emu: Emulator) -> None:
    """A job ending in status 4 is a JobFailedError outcome carrying its job and result."""
    requests = [swap(0), swap(1, target="https://example.com/fail-me.jpg"), swap(2)]
    outcomes = {o.index: o for o in await collect(client.swap_many(requests))}
    failed = outcomes[1]
    assert isinstance(failed.error, JobFailedError)
    assert failed.job is not None
    assert failed.error.job_id == failed.job.id
    assert failed.result is not None
    assert failed.result.status == SwapStatus.FAILED
    assert [outcomes[0].ok, failed.ok, outcomes[2].ok] == [True, False, True]


async def test_timed_out_job_keeps_its_id(client: AsyncClient, emu: Emulator) -> None:
    """A job that never finishes becomes a JobTimeoutError outcome with its job id."""

    def pin(event: BatchEvent) -> None:
        if event.kind == "submitted" and event.index == 1:
            assert event.job_id is not None
            emu.force_status(event.job_id, 2)  # processing forever

    batch = client.swap_many([swap(i) for i in range(4)], job_timeout=0.3, on_event=pin)
    outcomes = {o.index: o for o in await collect(batch)}
    stuck = outcomes[1]
    assert isinstance(stuck.error, JobTimeoutError)
    assert stuck.job is not None
    assert stuck.error.job_id == stuck.job.id
    assert sum(o.ok for o in outcomes.values()) == 3


async def test_wait_returns_the_result(client: AsyncClient, emu: Emulator) -> None:
    """wait() returns the successful SwapResult of a submitted job."""
    job = await client.faceswap_plus(swap(0))
    result = await client.wait(job, timeout=10)
    assert (result.id, result.status) == (job.id, SwapStatus.SUCCESS)


async def test_wait_raises_for_a_failed_job(client: AsyncClient) -> None:
    """wait() raises JobFailedError for a job ending in status 4."""
    job = await client.faceswap_plus(swap(0, target="https://example.com/fail.jpg"))
    with pytest.raises(JobFailedError) as info:
        await client.wait(job, timeout=10)
    assert info.value.job_id == job.id


async def test_wait_times_out(client: AsyncClient, emu: Emulator) -> None:
    """wait() raises JobTimeoutError (with the id) when the job outlives the timeout."""
    job = await client.faceswap_plus(swap(0))
    emu.force_status(job.id, 1)
    with pytest.raises(JobTimeoutError) as info:
        await client.wait(job, timeout=0.1)
    assert info.value.job_id == job.id
    assert client.poller_statistics().tracked == 0


async def test_wait_reports_an_unknown_id(client: AsyncClient) -> None:
    """wait() raises JobNotFoundError once listbyids keeps leaving the id out."""
    with pytest.raises(JobNotFoundError):
        await client.wait("0123456789abcdef01234567", timeout=10)


async def test_concurrent_waits_share_listbyids_calls(client: AsyncClient, emu: Emulator) -> None:
    """100 concurrent wait() calls are answered with far fewer than 100 listbyids calls."""
    jobs = [await client.faceswap_plus(swap(i)) for i in range(100)]
    before = emu.stats.requests["list_results"]
    results: dict[str, SwapStatus] = {}

    async def wait_one(job_id: str) -> None:
        results[job_id] = (await client.wait(job_id, timeout=10)).status

    async with anyio.create_task_group() as tg:
        for job in jobs:
            tg.start_soon(wait_one, job.id)
    assert set(results.values()) == {SwapStatus.SUCCESS}
    assert len(results) == 100
    assert emu.stats.requests["list_results"] - before < 25


async def test_wait_needs_an_open_client(emu: Emulator) -> None:
    """wait() on a client that is not open raises ClientStateError."""
    client = AsyncClient(api_key=emu.api_key, base_url=emu.base_url)
    with pytest.raises(ClientStateError):
        await client.wait("0123456789abcdef01234567")


async def test_cancelling_the_caller_stops_the_batch_and_its_polling(
    client: AsyncClient, emu: Emulator
) -> None:
    """Cancelling the iterating task stops the batch: no leaked task, no listbyids after."""
    emu.configure(image_seconds=(20.0, 30.0))  # 200-300 ms each
    baseline = sdk_tasks()
    seen = 0
    with anyio.CancelScope() as scope:
        async with client.swap_many((swap(i) for i in range(200)), concurrency=16) as batch:
            async for _ in batch:
                seen += 1
                if seen == 3:
                    scope.cancel()
    stats = batch.statistics()
    assert (stats.finished, stats.pending, stats.submitting) == (True, 0, 0)
    assert client.poller_statistics().tracked == 0
    # A listbyids call already on the wire when the batch was cancelled may still be finishing
    # (the poller owns it); it must end on its own, leaving only the poller's loop.
    in_flight = [t for t in asyncio.all_tasks() if t.get_name().endswith("Poller._poll")]
    with anyio.fail_after(5):
        await asyncio.gather(*in_flight, return_exceptions=True)
    assert sdk_tasks() == baseline == ["akool_async._jobs._poller.Poller.run"]
    polls = emu.stats.requests["list_results"]
    await anyio.sleep(0.3)  # several poll intervals: nothing may be asked any more
    assert emu.stats.requests["list_results"] == polls


async def test_break_inside_async_with_stops_the_batch(client: AsyncClient, emu: Emulator) -> None:
    """Breaking out of ``async with ... async for`` cancels the rest of the batch."""
    emu.configure(image_seconds=(10.0, 20.0))
    requests = (swap(i) for i in range(1000))
    async with client.swap_many(requests, concurrency=8, max_pending=20) as batch:
        async for outcome in batch:
            assert outcome.ok
            break
    stats = batch.statistics()
    assert (stats.finished, stats.pending) == (True, 0)
    assert client.poller_statistics().tracked == 0
    assert emu.stats.requests["faceswap_plus"] == stats.submits < 1000


async def test_break_out_of_a_bare_loop_stops_the_batch(client: AsyncClient, emu: Emulator) -> None:
    """Breaking out of a bare ``async for`` stops the batch once the Batch is collected."""
    emu.configure(image_seconds=(10.0, 20.0))
    batch = client.swap_many((swap(i) for i in range(1000)), concurrency=8, max_pending=20)
    run = batch._run
    async for outcome in batch:
        assert outcome.ok
        break
    del batch, outcome
    gc.collect()
    with anyio.fail_after(5):
        await run.done.wait()
    assert client.poller_statistics().tracked == 0
    assert emu.stats.requests["faceswap_plus"] == run.statistics().submits < 1000


async def test_rate_limit_slows_everyone_and_still_completes(
    emu: Emulator,
) -> None:
    """Under the emulator's 1005 rate limit every job still completes, once each."""
    # Low enough that the client's probing passes it however slow the machine (at 400/s a
    # loaded CI machine never got there, and saw no 1005 to test).
    emu.configure(rate_limit=150.0, rate_burst=10)
    patient = RetryPolicy(max_attempts=30, initial_delay=0.01, max_delay=0.05, max_elapsed=None)
    client = AsyncClient(api_key=emu.api_key, base_url=emu.base_url, retry=patient)
    client.poll_config = FAST_POLL
    async with client:
        outcomes = await collect(client.swap_many([swap(i) for i in range(150)], concurrency=32))
        throttled = client.statistics().throttled
    assert sum(o.ok for o in outcomes) == 150
    assert emu.stats.codes[("faceswap_plus", 1005)] + emu.stats.codes[("list_results", 1005)] > 0
    assert throttled > 0
    assert set(emu.stats.jobs_by_target.values()) == {1}


async def test_ambiguous_submit_is_reported_not_retried(client: AsyncClient, emu: Emulator) -> None:
    """A submit whose response is lost is an AmbiguousSubmitError outcome; its job exists once."""
    emu.faults.inject("faceswap_plus", "drop_after")
    outcomes = await collect(client.swap_many([swap(0)]))
    [outcome] = outcomes
    assert isinstance(outcome.error, AmbiguousSubmitError)
    assert outcome.job is None
    assert emu.stats.jobs_by_target[swap(0).target_url] == 1
    assert emu.stats.requests["faceswap_plus"] == 1


async def test_credit_exhaustion_stops_admission(client: AsyncClient, emu: Emulator) -> None:
    """After a 1006 nothing more is submitted: the rest are InsufficientCreditError outcomes."""
    emu.set_credit(10)
    outcomes = await collect(client.swap_many([swap(i) for i in range(30)], concurrency=4))
    kinds = Counter(type(o.error).__name__ if o.error else "ok" for o in outcomes)
    assert kinds == {"ok": 10, "InsufficientCreditError": 20}
    assert len(emu.jobs) == 10
    assert emu.stats.requests["faceswap_plus"] <= 10 + 4


async def test_no_credit_means_no_submit(client: AsyncClient, emu: Emulator) -> None:
    """With a balance of 0 every request is an InsufficientCreditError outcome, unsent."""
    emu.set_credit(0)
    outcomes = await collect(client.swap_many([swap(i) for i in range(5)]))
    assert [type(o.error) for o in outcomes] == [InsufficientCreditError] * 5
    assert emu.stats.requests["faceswap_plus"] == 0


async def test_deadline_gives_every_request_an_outcome(emu: Emulator) -> None:
    """At the deadline, waiting jobs time out and unsubmitted requests get a deadline error."""
    emu.configure(image_seconds=(1000.0, 1000.0))  # 10 s: far beyond the deadline
    async with AsyncClient(api_key=emu.api_key, base_url=emu.base_url) as client:
        client.poll_config = FAST_POLL
        batch = client.swap_many(
            (swap(i) for i in range(40)), concurrency=4, max_pending=8, deadline=0.3
        )
        outcomes = await collect(batch)
    kinds = Counter(type(o.error).__name__ for o in outcomes)
    assert sorted(o.index for o in outcomes) == list(range(40))
    assert kinds["JobTimeoutError"] == len(emu.jobs)
    assert kinds["JobTimeoutError"] + kinds["BatchDeadlineError"] == 40
    assert all(o.job is not None for o in outcomes if isinstance(o.error, JobTimeoutError))
    assert all(o.job is None for o in outcomes if isinstance(o.error, BatchDeadlineError))


async def test_fail_fast_raises_after_the_finished_outcomes(
    client: AsyncClient, emu: Emulator
) -> None:
    """fail_fast yields what finished before the first error, then raises that error."""
    emu.configure(image_seconds=(2.0, 2.0))
    requests = [swap(i) for i in range(5)]
    requests += [swap(5, target="https://example.com/fail.jpg")]
    requests += [swap(i) for i in range(6, 50)]
    yielded: list[Outcome[PlusSwap]] = []

    async def drain() -> None:
        async with client.swap_many(requests, concurrency=1, fail_fast=True) as batch:
            async for outcome in batch:
                yielded.append(outcome)

    with pytest.raises(JobFailedError):
        await drain()
    assert all(o.ok for o in yielded)
    assert len(yielded) < 50
    assert client.poller_statistics().tracked == 0


async def test_fail_fast_stops_reading_the_input(client: AsyncClient) -> None:
    """After fail_fast's first error the input is not read on, even when nothing awaits."""
    pulled = 0

    def requests() -> Iterator[Any]:
        nonlocal pulled
        for i in range(100_000):
            pulled += 1
            yield "not a request" if i else swap(0)  # each one fails validation at once

    with pytest.raises(ValidationError):
        await collect(client.swap_many(requests(), concurrency=4, fail_fast=True))
    assert pulled <= 4 + 4


async def test_events_and_statistics_add_up(client: AsyncClient, emu: Emulator) -> None:
    """Every request gets one 'submitted' and one 'finished' event; statistics agree."""
    events: list[BatchEvent] = []
    batch = client.swap_many([swap(i) for i in range(20)], on_event=events.append)
    outcomes = await collect(batch)
    kinds = Counter(event.kind for event in events)
    stats = batch.statistics()
    assert (kinds["submitted"], kinds["finished"]) == (20, 20)
    assert sorted(e.index for e in events if e.kind == "finished") == list(range(20))
    assert len(outcomes) == stats.outcomes == stats.succeeded == stats.read == 20
    assert (stats.submits, stats.requests["faceswap_plus"]) == (20, 20)
    assert stats.credits_used == 20
    assert (stats.pending, stats.waiting_input, stats.finished) == (0, 0, True)
    assert stats.requests["list_results"] == emu.stats.requests["list_results"]


async def test_client_retries_of_a_submit_are_batch_events(
    client: AsyncClient, emu: Emulator
) -> None:
    """A 1005 and a 503 on one request's submit show up as that request's batch events."""
    emu.faults.inject("faceswap_plus", "rate_limited")
    emu.faults.inject("faceswap_plus", "http_503")
    events: list[BatchEvent] = []
    batch = client.swap_many([swap(0)], on_event=events.append)
    [outcome] = await collect(batch)
    assert outcome.ok
    assert [(e.kind, e.index, e.attempt) for e in events if e.kind != "status_changed"] == [
        ("throttled", 0, 1),
        ("retried", 0, 1),
        ("retried", 0, 2),
        ("submitted", 0, None),
        ("finished", 0, None),
    ]
    retried = [e for e in events if e.kind == "retried"]
    assert isinstance(retried[0].error, RateLimitError)
    assert all(e.delay is not None and e.delay >= 0 for e in retried)
    assert batch.statistics().retries == 2
    assert emu.stats.requests["faceswap_plus"] == 3


async def test_a_status_known_before_the_wait_finishes_the_job_at_once(
    client: AsyncClient, emu: Emulator
) -> None:
    """A terminal status notified before the batch watches the job (an early webhook) ends it."""
    emu.configure(image_seconds=(1e6, 1e6))  # the server alone would never finish it

    def on_event(event: BatchEvent) -> None:
        if event.kind == "submitted":
            assert event.job_id is not None
            client.notify_job(event.job_id, SwapStatus.SUCCESS, "https://example.com/r.jpg")

    outcomes = await collect(client.swap_many([swap(i) for i in range(3)], on_event=on_event))
    assert [o.ok for o in outcomes] == [True, True, True]
    assert {o.result.url for o in outcomes if o.result} == {"https://example.com/r.jpg"}
    assert client.poller_statistics().tracked == 0


async def test_polling_refused_for_good_is_each_pending_jobs_outcome(
    client: AsyncClient, emu: Emulator
) -> None:
    """When listbyids is refused for good (a banned account), every pending job says so."""
    emu.configure(image_seconds=(1e6, 1e6))
    on_event = after_submits(3, emu.ban)
    outcomes = await collect(client.swap_many([swap(i) for i in range(3)], on_event=on_event))
    assert len(outcomes) == 3
    assert all(isinstance(o.error, AccountBannedError) and o.job for o in outcomes)
    assert client.poller_statistics().tracked == 0


async def test_many_outcomes_at_once_through_a_full_stream(client: AsyncClient) -> None:
    """More jobs finishing at once than the stream holds: each outcome arrives exactly once."""
    batch = client.swap_many([swap(i) for i in range(300)], concurrency=64)
    async with batch:
        first = await batch.__anext__()
        await anyio.sleep(1.0)  # every job finishes while nobody reads
        rest = [outcome async for outcome in batch]
    indexes = sorted(o.index for o in [first, *rest])
    assert indexes == list(range(300))
    assert all(o.ok for o in [first, *rest])


async def test_pending_jobs_hold_no_tasks(client: AsyncClient, emu: Emulator) -> None:
    """300 jobs pending on the server: the batch holds waiters, not 300 parked tasks."""
    emu.configure(image_seconds=(1e6, 1e6))
    all_submitted = anyio.Event()
    on_event = after_submits(300, all_submitted.set)
    before = len(sdk_tasks())
    batch = client.swap_many(
        [swap(i) for i in range(300)], concurrency=8, max_pending=300, on_event=on_event
    )
    async with batch:
        with anyio.fail_after(30):
            await all_submitted.wait()
        await anyio.sleep(0.05)
        assert client.poller_statistics().tracked == 300
        assert batch.statistics().pending == 300
        # Its 8 workers (waiting at the max_pending cap), the batch's own task, and perhaps a
        # listbyids call of the poller in flight: not a task per pending job.
        assert len(sdk_tasks()) - before <= 8 + 2, sdk_tasks()
    assert client.poller_statistics().tracked == 0


async def test_input_is_read_lazily(client: AsyncClient, emu: Emulator) -> None:
    """At the max_pending cap the input is not read further until a request finishes."""
    emu.configure(image_seconds=(1e6, 1e6))
    pulled = 0
    submitted = anyio.Event()
    count = 0

    def requests() -> Iterator[PlusSwap]:
        nonlocal pulled
        for i in range(50):
            pulled += 1
            yield swap(i)

    def on_event(event: BatchEvent) -> None:
        nonlocal count
        if event.kind == "submitted":
            count += 1
            if count == 5:
                submitted.set()

    batch = client.swap_many(requests(), max_pending=5, on_event=on_event)
    async with batch:
        await submitted.wait()
        assert (pulled, batch.statistics().pending) == (5, 5)
        emu.configure(image_seconds=(1.0, 1.0))
        for job in list(emu.jobs.values()):
            emu.force_status(job.id, 3)
        outcomes = [o async for o in batch]
    assert (pulled, len(outcomes)) == (50, 50)


async def test_async_iterable_input(client: AsyncClient) -> None:
    """An async generator of requests works like a list."""

    async def requests() -> AsyncIterator[PlusSwap]:
        for i in range(30):
            await anyio.lowlevel.checkpoint()  # suspended in anext(): the workers take turns
            yield swap(i)

    outcomes = await collect(client.swap_many(requests(), concurrency=8))
    assert sorted(o.index for o in outcomes if o.ok) == list(range(30))
    assert all(o.request == swap(o.index) for o in outcomes)


async def test_not_a_request_is_a_validation_outcome(client: AsyncClient) -> None:
    """An input item that is no swap request becomes a ValidationError outcome."""
    outcomes = await collect(client.swap_many([swap(0), "nope"]))
    errors = {o.index: type(o.error) for o in outcomes}
    assert errors == {0: type(None), 1: ValidationError}


async def test_input_iterator_error_is_raised(client: AsyncClient) -> None:
    """An exception from the input itself ends the batch and is raised to the caller."""

    def requests() -> Iterator[PlusSwap]:
        yield swap(0)
        raise KeyError("broken input")

    with pytest.raises(KeyError):
        await collect(client.swap_many(requests()))


@pytest.mark.parametrize("kind", ["throttled", "submitted", "status_changed", "finished"])
async def test_on_event_error_is_raised(client: AsyncClient, emu: Emulator, kind: str) -> None:
    """A hook error ends the batch and is raised to the caller, wherever the event is sent
    from: the client's retry loop, a worker, or the poller's callbacks."""
    emu.faults.inject("faceswap_plus", "rate_limited")  # a 'throttled' event
    # Jobs long enough for a poll to see them in progress (a 'status_changed' event).
    emu.configure(latency_scale=1.0, queue_seconds=(0.0, 0.0), image_seconds=(0.3, 0.3))

    def hook(event: BatchEvent) -> None:
        if event.kind == kind:
            raise RuntimeError("hook bug")

    with pytest.raises(RuntimeError, match="hook bug"):
        await collect(client.swap_many([swap(i) for i in range(5)], on_event=hook))
    assert client.poller_statistics().tracked == 0


async def test_closing_the_client_ends_the_batch_with_an_error(
    client: AsyncClient, emu: Emulator
) -> None:
    """Closing the client under a running batch makes the iteration raise ClientStateError."""
    emu.configure(image_seconds=(1e6, 1e6))
    submitted = anyio.Event()

    def on_event(event: BatchEvent) -> None:
        if event.kind == "submitted" and event.index == 2:
            submitted.set()

    batch = client.swap_many([swap(i) for i in range(3)], concurrency=1, on_event=on_event)
    async with batch:
        await submitted.wait()
        await client.aclose()
        with pytest.raises(ClientStateError):
            await batch.__anext__()


async def test_a_view_runs_batches_with_its_own_retry_policy(client: AsyncClient) -> None:
    """A with_options() view shares the poller and runs swap_many."""
    view = client.with_options(retry=attrs.evolve(FAST_RETRY, max_attempts=5))
    outcomes = await collect(view.swap_many([swap(i) for i in range(3)]))
    assert [o.ok for o in outcomes] == [True, True, True]


@pytest.mark.parametrize(
    ("option", "value"),
    [("concurrency", 0), ("max_pending", -1), ("job_timeout", 0), ("deadline", "soon")],
)
async def test_bad_options_are_rejected(client: AsyncClient, option: str, value: Any) -> None:
    """A bad swap_many option raises ValidationError before anything starts."""
    with pytest.raises(ValidationError):
        client.swap_many([swap(0)], **{option: value})


async def test_early_webhook_notification_completes_a_later_wait(
    client: AsyncClient, emu: Emulator
) -> None:
    """A terminal status notified before anybody waits completes the later wait at once."""
    job = await client.faceswap_plus(swap(0))
    emu.force_status(job.id, 1)
    assert client.notify_job(job.id, 3, "https://example.com/r.png") is False
    result = await client.wait(job, timeout=1)
    assert (result.status, result.url) == (SwapStatus.SUCCESS, "https://example.com/r.png")


async def test_cancelling_the_task_that_holds_the_client_still_closes_its_session(
    emu: Emulator,
) -> None:
    """A task cancelled the asyncio way mid-batch closes the session (no unclosed warning)."""
    emu.configure(image_seconds=(20.0, 30.0))
    started = asyncio.Event()
    holder: list[AsyncClient] = []

    async def run() -> None:
        client = AsyncClient(api_key=emu.api_key, base_url=emu.base_url, retry=FAST_RETRY)
        client.poll_config = FAST_POLL
        holder.append(client)
        async with client, client.swap_many(swap(i) for i in range(50)) as batch:
            async for _ in batch:
                started.set()

    task = asyncio.get_running_loop().create_task(run())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert holder[0].is_closed
    assert holder[0]._shared.session is None
