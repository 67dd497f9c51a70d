"""The shared poller on its own: batching, pacing, misses, failures, notifications, shutdown."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Sequence
from typing import Any

import anyio
import attrs
import pytest

from akool_async import (
    AuthenticationError,
    ClientStateError,
    JobFailedError,
    JobNotFoundError,
    JobTimeoutError,
    MediaType,
    PollConfig,
    RateLimitError,
    SwapResult,
    SwapStatus,
    TransportError,
    ValidationError,
)
from akool_async._jobs._poll_config import poll_interval
from akool_async._jobs._poller import Poller

pytestmark = pytest.mark.anyio

FAST = PollConfig(
    batch_size=50,
    image_first=0.01,
    image_max=0.02,
    video_first=0.01,
    video_max=0.02,
    jitter=0.0,
    retry_delay=0.01,
    miss_limit=3,
    miss_grace=0.01,
)


def job_id(i: int) -> str:
    """A well-formed record _id."""
    return f"{i:024x}"


class FakeServer:
    """listbyids over an in-memory table of job statuses, recording every call."""

    def __init__(self) -> None:
        self.status: dict[str, SwapStatus] = {}
        self.calls: list[tuple[str, ...]] = []
        self.failures: list[Exception] = []
        self.called = anyio.Event()

    async def fetch(self, ids: Sequence[str]) -> Sequence[SwapResult]:
        self.calls.append(tuple(ids))
        self.called.set()
        await anyio.lowlevel.checkpoint()
        if self.failures:
            raise self.failures.pop(0)
        return [
            SwapResult(id=i, status=self.status[i], url=f"https://cdn.example.com/{i}.png")
            for i in ids
            if i in self.status
        ]


@pytest.fixture
def server() -> FakeServer:
    """An empty fake server."""
    return FakeServer()


@pytest.fixture
async def poller(server: FakeServer) -> AsyncIterator[Poller]:
    """A running poller on the fake server."""
    poller = Poller(server.fetch, FAST)
    async with anyio.create_task_group() as tg:
        await tg.start(poller.run)
        yield poller
        tg.cancel_scope.cancel()


def test_interval_grows_with_age_within_bounds() -> None:
    """The interval is the first one for a young job, grows with age, and stops at the max."""
    config = PollConfig(image_first=2, image_max=15, video_first=10, video_max=60, backoff=1.5)
    ages = [0, 4, 10, 20, 100]
    assert [poll_interval(config, MediaType.IMAGE, age) for age in ages] == [2, 2, 5, 10, 15]
    assert [poll_interval(config, MediaType.VIDEO, age) for age in ages] == [10, 10, 10, 10, 50]
    assert poll_interval(config, MediaType.IMAGE, 0, webhooks=True) == 120


@pytest.mark.parametrize(
    "changes",
    [{"batch_size": 0}, {"image_first": 0}, {"jitter": 1.0}, {"backoff": 0.5}, {"image_max": 1}],
)
def test_bad_poll_config_is_rejected(changes: dict[str, Any]) -> None:
    """An invalid PollConfig raises ValidationError."""
    with pytest.raises(ValidationError):
        attrs.evolve(PollConfig(), **changes)


async def test_many_waiters_share_few_requests(server: FakeServer, poller: Poller) -> None:
    """120 jobs finished together are answered by three listbyids calls of at most 50 ids."""
    ids = [job_id(i) for i in range(120)]
    server.status.update(dict.fromkeys(ids, SwapStatus.SUCCESS))
    results: list[SwapResult] = []

    async def wait(i: str) -> None:
        results.append(await poller.wait(i))

    async with anyio.create_task_group() as tg:
        for i in ids:
            tg.start_soon(wait, i)
    assert sorted(r.id for r in results) == ids
    assert [len(call) for call in server.calls] == [50, 50, 20]


async def test_two_waiters_on_one_job_share_its_entry(server: FakeServer, poller: Poller) -> None:
    """Two callers waiting for the same id are both answered by one poll of it."""
    server.status[job_id(1)] = SwapStatus.SUCCESS
    results: list[SwapResult] = []

    async def wait() -> None:
        results.append(await poller.wait(job_id(1)))

    async with anyio.create_task_group() as tg:
        tg.start_soon(wait)
        tg.start_soon(wait)
    assert (len(results), server.calls) == (2, [(job_id(1),)])


async def test_failed_job_raises(server: FakeServer, poller: Poller) -> None:
    """Status 4 raises JobFailedError carrying the result."""
    server.status[job_id(1)] = SwapStatus.FAILED
    with pytest.raises(JobFailedError) as info:
        await poller.wait(job_id(1))
    assert isinstance(info.value.result, SwapResult)
    assert info.value.result.status == SwapStatus.FAILED


async def test_progress_is_reported_once_per_status(server: FakeServer, poller: Poller) -> None:
    """Each new non-terminal status reaches the status callback once."""
    server.status[job_id(1)] = SwapStatus.QUEUED
    seen: list[SwapStatus] = []

    def on_status(result: SwapResult) -> None:
        seen.append(result.status)
        later = SwapStatus.PROCESSING if result.status == SwapStatus.QUEUED else SwapStatus.SUCCESS
        server.status[job_id(1)] = later

    result = await poller.wait(job_id(1), on_status=on_status)
    assert (seen, result.status) == ([SwapStatus.QUEUED, SwapStatus.PROCESSING], SwapStatus.SUCCESS)


async def test_missing_id_is_reported(server: FakeServer, poller: Poller) -> None:
    """An id listbyids keeps leaving out ends in JobNotFoundError after miss_limit misses."""
    with pytest.raises(JobNotFoundError):
        await poller.wait(job_id(1))
    assert len(server.calls) >= FAST.miss_limit
    assert poller.statistics().not_found == 1


async def test_failed_requests_are_retried(server: FakeServer, poller: Poller) -> None:
    """Transport errors and 1005 only postpone the ids; the wait still succeeds."""
    server.status[job_id(1)] = SwapStatus.SUCCESS
    server.failures = [TransportError("reset"), RateLimitError("slow down", code=1005)]
    result = await poller.wait(job_id(1))
    stats = poller.statistics()
    assert (result.status, len(server.calls)) == (SwapStatus.SUCCESS, 3)
    assert (stats.failed_requests, stats.throttled) == (1, 1)


async def test_unfixable_errors_reach_the_waiters(server: FakeServer, poller: Poller) -> None:
    """An error polling cannot fix (bad credentials) is raised to the waiter."""
    server.status[job_id(1)] = SwapStatus.SUCCESS
    server.failures = [AuthenticationError("bad key", code=1101)]
    with pytest.raises(AuthenticationError):
        await poller.wait(job_id(1))


async def test_timeout_stops_polling_the_job(server: FakeServer, poller: Poller) -> None:
    """A wait that times out raises JobTimeoutError and its id is no longer polled."""
    server.status[job_id(1)] = SwapStatus.PROCESSING
    with pytest.raises(JobTimeoutError) as info:
        await poller.wait(job_id(1), timeout=0.05)
    assert info.value.job_id == job_id(1)
    calls = len(server.calls)
    await anyio.sleep(0.1)  # ten intervals: no request may go out for it any more
    assert (len(server.calls), poller.statistics().tracked) == (calls, 0)


async def test_idle_poller_sends_nothing(server: FakeServer, poller: Poller) -> None:
    """With nobody waiting, the poller makes no request."""
    await anyio.sleep(0.05)
    assert server.calls == []


async def test_notification_completes_a_waiter(server: FakeServer, poller: Poller) -> None:
    """A terminal notification answers the waiter without any poll."""
    slow = attrs.evolve(FAST, image_first=10.0, image_max=10.0)
    poller.config = slow
    server.status[job_id(1)] = SwapStatus.PROCESSING
    results: list[SwapResult] = []

    async def wait() -> None:
        results.append(await poller.wait(job_id(1)))

    async with anyio.create_task_group() as tg:
        tg.start_soon(wait)
        await anyio.wait_all_tasks_blocked()
        assert poller.notify(job_id(1), 3, "https://cdn.example.com/r.png") is True
    assert [(r.status, r.url) for r in results] == [
        (SwapStatus.SUCCESS, "https://cdn.example.com/r.png")
    ]
    assert server.calls == []


async def test_early_notification_is_remembered(server: FakeServer, poller: Poller) -> None:
    """A notification that beats the waiter is used when the waiter registers."""
    assert poller.notify(job_id(1), SwapStatus.FAILED) is False
    with pytest.raises(JobFailedError):
        await poller.wait(job_id(1))
    assert server.calls == []


async def test_webhooks_slow_polling_down(server: FakeServer, poller: Poller) -> None:
    """With webhooks attached a job is only polled at the safety-net pace."""
    poller.config = attrs.evolve(FAST, safety_net_interval=10.0)
    detach = poller.attach_webhooks()
    server.status[job_id(1)] = SwapStatus.PROCESSING
    with pytest.raises(JobTimeoutError):
        await poller.wait(job_id(1), timeout=0.1)
    assert (server.calls, poller.statistics().webhooks_attached) == ([], True)
    detach()
    detach()
    assert poller.statistics().webhooks_attached is False


async def test_jobs_tracked_under_webhooks_stay_out_of_the_queue(
    server: FakeServer, poller: Poller
) -> None:
    """While webhooks are attached, tracked jobs do not pile up in the queue-awareness deque."""
    poller.config = attrs.evolve(FAST, safety_net_interval=10.0)
    detach = poller.attach_webhooks()
    for i in range(50):
        poller._track(job_id(i), MediaType.IMAGE)
    assert (len(poller._queue), len(poller._starts)) == (0, 0)
    detach()


async def test_spare_room_is_filled_with_the_next_due_ids(
    server: FakeServer, poller: Poller
) -> None:
    """A request takes the due ids plus not-yet-due ones polled long enough ago, no others."""
    poller.config = attrs.evolve(FAST, image_first=1.0, image_max=100.0)
    now = anyio.current_time()
    due, stale, fresh = (poller._track(job_id(i), MediaType.IMAGE) for i in range(3))
    due.due = now - 1
    stale.due, stale.since, stale.last_polled = now + 50, now - 10, now - 5
    fresh.due, fresh.since, fresh.last_polled = now + 50, now - 10, now - 0.5
    assert [e.id for e in poller._take(now)] == [job_id(0), job_id(1)]
    poller.config = attrs.evolve(poller.config, fill=False)
    for entry in (due, stale, fresh):
        entry.in_flight = False
        poller._schedule(entry, now, 0.0 if entry is due else 50.0)
    assert [e.id for e in poller._take(now)] == [job_id(0)]


async def test_stopping_the_poller_releases_its_waiters(server: FakeServer) -> None:
    """Waiters still waiting when the poller stops get ClientStateError."""
    poller = Poller(server.fetch, FAST)
    server.status[job_id(1)] = SwapStatus.PROCESSING
    errors: list[BaseException] = []

    async def wait() -> None:
        try:
            await poller.wait(job_id(1))
        except ClientStateError as exc:
            errors.append(exc)

    async with anyio.create_task_group() as outer, anyio.create_task_group() as tg:
        await tg.start(poller.run)
        outer.start_soon(wait)
        await server.called.wait()
        tg.cancel_scope.cancel()
    assert len(errors) == 1
    with pytest.raises(ClientStateError):
        await poller.wait(job_id(1))


async def test_only_the_head_of_a_queue_is_polled_at_the_first_interval(
    server: FakeServer, poller: Poller
) -> None:
    """Of many jobs not known to have started, only the oldest few get the first interval."""
    poller.config = attrs.evolve(FAST, batch_size=4, image_first=1.0, image_max=100.0)
    now = anyio.current_time()
    entries = [poller._track(job_id(i), MediaType.IMAGE) for i in range(6)]
    assert [poller._interval(e, now) for e in entries] == [1.0, 1.0, 5.0, 5.0, 5.0, 5.0]
    poller.config = attrs.evolve(poller.config, fifo=False)
    assert [poller._interval(e, now) for e in entries] == [1.0] * 6


async def test_a_started_job_starts_every_older_job_and_moves_the_head(
    server: FakeServer, poller: Poller
) -> None:
    """Seeing a job processing marks older queued jobs started and polls the next in line soon."""
    poller.config = attrs.evolve(FAST, batch_size=4, image_first=1.0, image_max=100.0)
    entries = [poller._track(job_id(i), MediaType.IMAGE) for i in range(6)]
    for i, entry in enumerate(entries):
        entry.since = float(i)
    poller._absorb([entries[3]], [SwapResult(id=job_id(3), status=SwapStatus.PROCESSING)])
    now = anyio.current_time()
    assert [poller._interval(e, now) for e in entries] == [1.0] * 6
    assert all(e.due <= now + 1.0 for e in entries)


async def test_a_released_waiter_is_left_alone_by_its_deadline(
    poller: Poller, server: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    """watch() then release(): the id is no longer polled, and the deadline passes quietly."""
    server.status[job_id(1)] = SwapStatus.PROCESSING
    waiter = poller.watch(job_id(1), timeout=0.05)
    assert poller.statistics().tracked == 1
    poller.release(job_id(1), waiter)
    assert poller.statistics().tracked == 0
    assert waiter.done.cancelled()
    await anyio.sleep(0.1)  # past the deadline
    del waiter
    gc.collect()
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]


async def test_watch_then_settle_gives_the_result(poller: Poller, server: FakeServer) -> None:
    """The task-free way to wait: watch(), await nothing but the future, settle()."""
    server.status[job_id(2)] = SwapStatus.SUCCESS
    waiter = poller.watch(job_id(2), timeout=5)
    with anyio.fail_after(5):
        await waiter.done
    result = poller.settle(job_id(2), waiter, 5)
    assert (result.id, result.status) == (job_id(2), SwapStatus.SUCCESS)
    assert poller.statistics().tracked == 0
