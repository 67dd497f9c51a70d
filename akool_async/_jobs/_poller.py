"""The shared status poller: every job anyone waits for, coalesced into few listbyids calls.

One ``Poller`` runs per client, as a background task in the client's task group. Callers
(``client.wait``, every ``swap_many`` batch, any number of concurrent tasks) register the ids
they wait for; the poller keeps one entry per id however many waiters share it, and a heap
ordered by when each entry is next due.

Scheduling. A job tracked for ``age`` seconds is next due at ``age * backoff`` (clamped
between the first and maximum interval of its media: videos are polled less often than
images), jittered, so polls thin out geometrically as a job ages instead of hammering the API.
A due id may wait a little (``coalesce`` times its interval) for others to fall due, so that
they share one request: the poller sleeps until the earliest such deadline, then sends the due
ids (up to ``batch_size``, most urgent first). A request with spare room is filled with the
next-most-due ids that were not polled (or created) within their first interval: free
freshness, no extra request. Up to ``max_concurrent_requests`` listbyids calls run at once;
the client's shared rate controller paces them in a lane of their own (``_ratelimit``).

Queue awareness (``PollConfig.fifo``, on by default). AKOOL queues jobs (status 1) and starts
them in submit order, so once a job is seen processing (status 2) or finished, every job
tracked before it has started too: those are *active* and polled from when they started (first
interval, then backing off). Of the jobs not known to have started, only the oldest few (the
*head*: about twice as many as started during the last first interval) are polled at the first
interval, because they are the next to start and seeing them start is what moves the rest
forward; jobs further back are polled rarely (``5 x`` the first interval at least), as a safety
net for servers that do not keep to submit order. This keeps a batch of thousands of queued
jobs from costing a poll each every few seconds while still seeing each one finish within
about one first interval.

An id left out of a response is retried at the normal pace and reported as
``JobNotFoundError`` once it was missing ``miss_limit`` times in a row *and* for at least
``miss_grace`` seconds. A failed listbyids call (transport error, 5xx, 1005 after the client's
own retries) only postpones its ids; an error that polling cannot fix (bad credentials, ...)
is delivered to their waiters.

External completion (webhooks). ``notify(job_id, status, url)`` completes waiters at once.
While webhooks are attached (``attach_webhooks()``), jobs are polled only every
``safety_net_interval`` seconds, as a safety net for callbacks that never come. A notification
that arrives before anybody waits for its id (a fast job whose callback beats the submit's
response) is remembered, boundedly, and used when the waiter registers.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
import random
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

import anyio
import attrs
from anyio.abc import TaskGroup, TaskStatus

from akool_async._errors import (
    AkoolError,
    ClientStateError,
    JobFailedError,
    JobNotFoundError,
    JobTimeoutError,
    RateLimitError,
    ServerError,
    TransportError,
)
from akool_async._models import MediaType, SwapResult, SwapStatus

from ._poll_config import PollConfig, poll_interval

__all__ = [
    "FetchResults",
    "PollConfig",
    "Poller",
    "PollerStatistics",
    "StatusCallback",
    "poll_interval",
]

#: The poller's only I/O: one listbyids call for up to ``batch_size`` ids.
FetchResults = Callable[[Sequence[str]], Awaitable[Sequence[SwapResult]]]
#: Called with every new non-terminal status a waiter's job reports.
StatusCallback = Callable[[SwapResult], None]

_EARLY_NOTIFICATIONS: Final = 10_000
_NEVER: Final = -math.inf  # one shared float object, not one per entry
#: Queue phases of an entry (see "Queue awareness" in the module docstring).
_BEHIND: Final = 0
_HEAD: Final = 1
_ACTIVE: Final = 2
#: Jobs behind the head are polled at least this many first intervals apart.
_BEHIND_FACTOR: Final = 5.0
#: The head holds about this many first intervals' worth of job starts.
_HEAD_FACTOR: Final = 2.0
#: Seconds of job starts kept to estimate the start rate.
_START_WINDOW: Final = 5.0
_log = logging.getLogger("akool_async.poller")


def _failed_message(result: SwapResult) -> str:
    """Why a job failed, as far as anyone can tell: AKOOL sends no reason with status 4."""
    job = f" (AKOOL job {result.job_id})" if result.job_id else ""
    return (
        f"job {result.id}{job} failed: AKOOL answered status 4 and gives no reason; usually "
        "a source or target without one clear face, or a file AKOOL could not download"
    )


@attrs.frozen(kw_only=True)
class PollerStatistics:
    """A snapshot of the shared poller.

    Attributes:
        tracked: Job ids being polled now.
        waiters: Callers waiting on them (several may share an id).
        requests: listbyids calls made.
        ids_polled: Ids asked for, in total (``ids_polled / requests`` is the batching).
        failed_requests: listbyids calls that failed (their ids were asked again later).
        throttled: listbyids calls refused with 1005 / 429.
        completed: Waits answered with a terminal status (by polling or notification).
        not_found: Ids reported missing.
        notifications: ``notify`` calls received.
        webhooks_attached: Whether the safety-net interval is in force.
    """

    tracked: int
    waiters: int
    requests: int
    ids_polled: int
    failed_requests: int
    throttled: int
    completed: int
    not_found: int
    notifications: int
    webhooks_attached: bool


class Waiter:
    """One wait for a job (``Poller.watch``): a bare asyncio future and the job's outcome.

    ``done`` completes when the job reached a terminal status (``result`` or ``error`` set),
    polling failed for it (``error``), or its timeout passed (``TimeoutError``, neither set).
    """

    __slots__ = ("done", "error", "on_status", "result", "timed")

    def __init__(self, on_status: StatusCallback | None, done: asyncio.Future[None]) -> None:
        self.done = done
        self.result: SwapResult | None = None
        self.error: AkoolError | None = None
        self.on_status = on_status
        self.timed = False  # holds a place in the poller's deadline heap count


class _Entry:
    """One tracked job id."""

    __slots__ = (
        "due",
        "first_miss",
        "id",
        "in_flight",
        "last",
        "last_polled",
        "media",
        "misses",
        "phase",
        "phase_since",
        "seq",
        "since",
        "waiters",
    )

    def __init__(self, job_id: str, media: MediaType | str, now: float) -> None:
        self.id = job_id
        self.media = media
        self.since = now
        self.due = now
        self.seq = 0
        self.in_flight = False
        self.last_polled = _NEVER
        self.misses = 0
        self.first_miss = 0.0
        self.last: SwapResult | None = None
        self.waiters: tuple[Waiter, ...] = ()  # a tuple: most jobs have one waiter
        self.phase = _BEHIND
        self.phase_since = now


class Poller:
    """The per-client status poller (see the module docstring).

    Args:
        fetch: One listbyids call (the client's single-chunk call, with its retries).
        config: Scheduling parameters.
    """

    def __init__(self, fetch: FetchResults, config: PollConfig | None = None) -> None:
        self._fetch = fetch
        self.config = config or PollConfig()
        self._entries: dict[str, _Entry] = {}
        self._heap: list[tuple[float, int, str]] = []
        self._seq = itertools.count(1)
        self._wake = anyio.Event()
        self._sleep_until = math.inf
        self._slots = anyio.Semaphore(self.config.max_concurrent_requests)
        self._random = random.Random()  # scheduling jitter, not crypto
        self._early: OrderedDict[str, SwapResult] = OrderedDict()
        self._webhooks = 0
        #: Entries not known to have started, in tracking order (finished ones left lazily).
        self._queue: deque[_Entry] = deque()
        self._head_count = 0
        #: ``since`` of the youngest entry seen started: everything older has started too.
        self._frontier = -math.inf
        self._starts: deque[float] = deque()
        #: Waiters' deadlines: ``(loop time, seq, future)``; see ``_add_deadline``.
        self._deadlines: list[tuple[float, int, asyncio.Future[None]]] = []
        self._deadline_timer: asyncio.TimerHandle | None = None
        self._timed = 0
        self._running = False
        self._stopped = False
        self.requests = 0
        self.ids_polled = 0
        self.failed_requests = 0
        self.throttled = 0
        self.completed = 0
        self.not_found = 0
        self.notifications = 0

    # -- lifetime ---------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Poll until cancelled (start it with ``task_group.start(poller.run)``)."""
        if self._running or self._stopped:
            raise ClientStateError("a Poller runs only once")
        self._running = True
        try:
            async with anyio.create_task_group() as tg:
                task_status.started()
                while True:
                    await self._round(tg)
        finally:
            self._running = False
            self._stopped = True
            if self._deadline_timer is not None:
                self._deadline_timer.cancel()
            closed = ClientStateError("the client was closed while a job was being waited for")
            for entry in list(self._entries.values()):
                self._finish(entry, error=closed)

    @property
    def running(self) -> bool:
        """Whether the poller's task is running."""
        return self._running

    # -- waiting ----------------------------------------------------------------------------

    async def wait(
        self,
        job_id: str,
        *,
        media: MediaType | str = MediaType.IMAGE,
        timeout: float | None = None,  # noqa: ASYNC109 - a job deadline, reported as data
        on_status: StatusCallback | None = None,
    ) -> SwapResult:
        """Wait for ``job_id`` to reach a terminal status.

        Args:
            job_id: The record ``_id``.
            media: Decides the polling pace (videos are polled less often).
            timeout: Seconds to wait; None waits as long as it takes.
            on_status: Called with each new non-terminal status seen for the job.

        Returns:
            The job's final ``SwapResult`` (status SUCCESS).

        Raises:
            JobFailedError: the job ended with status FAILED.
            JobTimeoutError: ``timeout`` passed first (the job may still finish).
            JobNotFoundError: listbyids kept leaving the id out.
            ClientStateError: the poller is not running (client not open, or closed).
        """
        waiter = self.watch(job_id, media=media, timeout=timeout, on_status=on_status)
        try:
            await waiter.done
        except TimeoutError:
            pass  # settle() raises JobTimeoutError unless the job finished in the same instant
        except BaseException:
            self.release(job_id, waiter)  # cancelled: stop polling for it
            raise
        return self.settle(job_id, waiter, timeout)

    def watch(
        self,
        job_id: str,
        *,
        media: MediaType | str = MediaType.IMAGE,
        timeout: float | None = None,
        on_status: StatusCallback | None = None,
    ) -> Waiter:
        """Start waiting for ``job_id`` without a task: ``wait`` is this plus an ``await``.

        Once ``waiter.done`` is done, ``settle`` gives the outcome; to give up before that,
        call ``release``. A batch keeps thousands of jobs pending this way, each costing a
        waiter and a future instead of a suspended task (``benchmarks/README.md``).

        Raises:
            ClientStateError: the poller is not running (client not open, or closed).
        """
        if not self._running:
            raise ClientStateError("the client is not open: use 'async with AsyncClient(...)'")
        # A bare future, and a deadline in the poller's own heap, rather than an anyio Event
        # under fail_after: a waiter is what every tracked job costs, and this one is ~3 KB
        # and ~40 us lighter (benchmarks/README.md).
        loop = asyncio.get_running_loop()
        waiter = Waiter(on_status, loop.create_future())
        entry = self._track(job_id, media)
        entry.waiters += (waiter,)
        early = self._early.pop(job_id, None)
        if early is not None:
            self._deliver(entry, early)
        if timeout is not None and not waiter.done.done():
            waiter.timed = True
            self._add_deadline(loop, loop.time() + timeout, waiter.done)
        return waiter

    def release(self, job_id: str, waiter: Waiter) -> None:
        """Stop waiting: drop the waiter (and the id, if nobody else waits for it)."""
        if not waiter.done.done():
            # Abandoned: its deadline, still in the heap, must not fail it (an exception
            # nobody retrieves is logged when the future is collected).
            waiter.done.cancel()
        if waiter.timed:
            waiter.timed = False
            self._timed -= 1
        if waiter.result is None and waiter.error is None:
            entry = self._entries.get(job_id)
            if entry is not None:
                self._leave(entry, waiter)

    def settle(self, job_id: str, waiter: Waiter, timeout: float | None) -> SwapResult:
        """The outcome of a waiter whose ``done`` is done (and release it).

        Raises:
            JobFailedError: the job ended with status FAILED.
            JobTimeoutError: ``timeout`` passed first (the job may still finish).
            JobNotFoundError: listbyids kept leaving the id out.
            ClientStateError: the client closed while the job was awaited.
        """
        if waiter.done.done() and not waiter.done.cancelled():
            waiter.done.exception()  # retrieved: asyncio must not log a TimeoutError as lost
        entry = self._entries.get(job_id)
        last = entry.last if entry is not None else None
        self.release(job_id, waiter)
        if waiter.error is not None:
            raise waiter.error
        if waiter.result is None:
            raise JobTimeoutError(
                f"job {job_id} did not finish within {timeout} s", job_id=job_id, result=last
            )
        return waiter.result

    def _add_deadline(
        self, loop: asyncio.AbstractEventLoop, when: float, done: asyncio.Future[None]
    ) -> None:
        """Fail ``done`` with ``TimeoutError`` at loop time ``when`` unless it is done by then.

        One heap and one loop timer for every waiter (a timer handle each would cost ~250
        bytes per tracked job); futures that finish early are dropped lazily.
        """
        self._timed += 1
        heap = self._deadlines
        if len(heap) > 2 * self._timed + 64:
            heap[:] = [item for item in heap if not item[2].done()]
            heapq.heapify(heap)
        heapq.heappush(heap, (when, next(self._seq), done))
        timer = self._deadline_timer
        if timer is None or when < timer.when():
            if timer is not None:
                timer.cancel()
            self._deadline_timer = loop.call_at(when, self._expire_due, loop)

    def _expire_due(self, loop: asyncio.AbstractEventLoop) -> None:
        self._deadline_timer = None
        heap = self._deadlines
        now = loop.time() + 0.001  # the loop may run a timer a hair early
        while heap and (heap[0][0] <= now or heap[0][2].done()):
            done = heapq.heappop(heap)[2]
            if not done.done():
                done.set_exception(TimeoutError())
        if heap:
            self._deadline_timer = loop.call_at(heap[0][0], self._expire_due, loop)

    def _track(self, job_id: str, media: MediaType | str) -> _Entry:
        entry = self._entries.get(job_id)
        if entry is None:
            now = anyio.current_time()
            entry = self._entries[job_id] = _Entry(job_id, media, now)
            if self.config.fifo and not self._webhooks:
                self._queue.append(entry)
                if self._head_count < self._head_size():
                    self._set_phase(entry, _HEAD, now)
            else:
                # Webhooks drive completion and nothing advances the queue meanwhile: keep such
                # jobs out of it (it would only grow) and poll them by age if webhooks detach.
                entry.phase = _ACTIVE
            self._schedule(entry, now, self._interval(entry, now))
        return entry

    def _leave(self, entry: _Entry, waiter: Waiter) -> None:
        """A waiter gave up (timeout, cancellation): stop polling its id if nobody is left."""
        entry.waiters = tuple(w for w in entry.waiters if w is not waiter)
        if not entry.waiters and self._entries.get(entry.id) is entry:
            del self._entries[entry.id]
            self._set_phase(entry, _ACTIVE, entry.phase_since)

    # -- external completion ----------------------------------------------------------------

    def notify(
        self,
        job_id: str,
        status: SwapStatus | int,
        url: str | None = None,
        *,
        result: SwapResult | None = None,
    ) -> bool:
        """Take a job status from outside (a verified webhook callback).

        A terminal status completes every waiter of ``job_id`` at once; a non-terminal one is
        passed to their status callbacks. Safe to call from the client's event loop only.

        Args:
            job_id: The record ``_id``.
            status: The job's status (1-4).
            url: The result URL (with SUCCESS).
            result: A full ``SwapResult`` when the caller has one (then status/url are
                ignored).

        Returns:
            True if somebody was waiting for the id; False if it was remembered for a later
            waiter instead.
        """
        self.notifications += 1
        if result is None:
            result = SwapResult(id=job_id, status=SwapStatus(status), url=url)
        entry = self._entries.get(job_id)
        if entry is None:
            if result.status.is_terminal or job_id not in self._early:
                self._early[job_id] = result
                self._early.move_to_end(job_id)
                while len(self._early) > _EARLY_NOTIFICATIONS:
                    self._early.popitem(last=False)
            return False
        self._deliver(entry, result)
        return True

    def attach_webhooks(self) -> Callable[[], None]:
        """Declare that webhook callbacks feed ``notify``: poll only at the safety-net pace.

        Returns:
            A function that detaches again (calling it twice does nothing).
        """
        self._webhooks += 1
        detached = False

        def detach() -> None:
            nonlocal detached
            if not detached:
                detached = True
                self._webhooks -= 1

        return detach

    # -- scheduling -------------------------------------------------------------------------

    def _interval(self, entry: _Entry, now: float) -> float:
        config = self.config
        if self._webhooks or not config.fifo:
            return poll_interval(
                config, entry.media, now - entry.since, webhooks=self._webhooks > 0
            )
        if entry.phase != _BEHIND:
            return poll_interval(config, entry.media, now - entry.phase_since)
        first, longest = config.bounds(entry.media)
        return min(longest, max(first * _BEHIND_FACTOR, (now - entry.since) * (config.backoff - 1)))

    # -- queue awareness --------------------------------------------------------------------

    def _set_phase(self, entry: _Entry, phase: int, now: float) -> None:
        if entry.phase == phase:
            return
        self._head_count += (phase == _HEAD) - (entry.phase == _HEAD)
        if phase == _ACTIVE and self._entries.get(entry.id) is entry:
            self._starts.append(now)
        entry.phase = phase
        entry.phase_since = now

    def _head_size(self) -> int:
        rate = len(self._starts) / _START_WINDOW
        return max(
            self.config.batch_size // 2, math.ceil(rate * self.config.image_first * _HEAD_FACTOR)
        )

    def _hurry(self, entry: _Entry, now: float) -> None:
        """Poll ``entry`` within its first interval (unless it is due sooner or in flight)."""
        if entry.in_flight or self._entries.get(entry.id) is not entry:
            return
        first, _ = self.config.bounds(entry.media)
        if entry.due > now + first:
            self._schedule(entry, now, first)

    def _observe(self, chunk: list[_Entry], by_id: dict[str, SwapResult], now: float) -> None:
        """Learn from a response which jobs have started (before they are rescheduled)."""
        for entry in chunk:
            result = by_id.get(entry.id)
            if result is None or result.status == SwapStatus.QUEUED:
                continue
            if entry.since > self._frontier:
                self._frontier = entry.since
            if result.status == SwapStatus.PROCESSING:
                self._set_phase(entry, _ACTIVE, now)

    def _advance(self, now: float) -> None:
        """Start every queued entry older than the frontier, and refill the head."""
        queue, entries = self._queue, self._entries
        while queue:
            entry = queue[0]
            if entry.phase != _ACTIVE and entries.get(entry.id) is entry:
                if entry.since > self._frontier:
                    break
                self._set_phase(entry, _ACTIVE, now)
                self._hurry(entry, now)
            queue.popleft()
        starts = self._starts
        while starts and starts[0] < now - _START_WINDOW:
            starts.popleft()
        room = self._head_size() - self._head_count
        if room <= 0:
            return
        for entry in queue:
            if entry.phase == _BEHIND and entries.get(entry.id) is entry:
                self._set_phase(entry, _HEAD, now)
                self._hurry(entry, now)
                room -= 1
                if room == 0:
                    break

    def _jittered(self, interval: float) -> float:
        jitter = self.config.jitter
        return interval * self._random.uniform(1 - jitter, 1 + jitter) if jitter else interval

    def _schedule(self, entry: _Entry, now: float, delay: float) -> None:
        """Make ``entry`` due after ``delay`` (jittered); it may wait a little longer for company.

        The heap is ordered by the *latest* time a request must go out for the entry (its due
        time plus ``coalesce`` times its interval), so one request carries every id that fell
        due within that window instead of each id getting a request of its own.
        """
        entry.due = now + self._jittered(delay)
        entry.seq = next(self._seq)
        latest = entry.due + self.config.coalesce * delay
        heapq.heappush(self._heap, (latest, entry.seq, entry.id))
        if len(self._heap) > 4 * len(self._entries) + 64:
            self._compact()
        if latest < self._sleep_until:
            self._wake.set()

    def _compact(self) -> None:
        self._heap = [
            item
            for item in self._heap
            if (e := self._entries.get(item[2])) is not None and e.seq == item[1]
        ]
        heapq.heapify(self._heap)

    def _live(self, item: tuple[float, int, str]) -> _Entry | None:
        entry = self._entries.get(item[2])
        if entry is None or entry.seq != item[1] or entry.in_flight:
            return None
        return entry

    def _next_trigger(self) -> float | None:
        while self._heap:
            if self._live(self._heap[0]) is not None:
                return self._heap[0][0]
            heapq.heappop(self._heap)
        return None

    async def _round(self, tg: TaskGroup) -> None:
        await self._slots.acquire()
        try:
            while True:
                now = anyio.current_time()
                due = self._next_trigger()
                if due is not None and due <= now:
                    break
                self._wake = anyio.Event()
                self._sleep_until = math.inf if due is None else due
                try:
                    with anyio.move_on_after(math.inf if due is None else due - now):
                        await self._wake.wait()
                finally:
                    self._sleep_until = -math.inf
            chunk = self._take(now)
        except BaseException:
            self._slots.release()
            raise
        tg.start_soon(self._poll, chunk)

    def _take(self, now: float) -> list[_Entry]:
        size = self.config.batch_size
        chunk: list[_Entry] = []
        skipped: list[tuple[float, int, str]] = []
        while self._heap and len(chunk) < size:
            item = self._heap[0]
            entry = self._live(item)
            if entry is None:
                heapq.heappop(self._heap)
                continue
            if entry.due > now:
                first, _ = self.config.bounds(entry.media)
                if not self.config.fill or now - max(entry.last_polled, entry.since) < first:
                    # Not due, and asked (or created) too recently to be worth a slot.
                    skipped.append(heapq.heappop(self._heap))
                    if len(skipped) >= size:
                        break
                    continue
            heapq.heappop(self._heap)
            entry.in_flight = True
            chunk.append(entry)
        for item in skipped:
            heapq.heappush(self._heap, item)
        return chunk

    # -- polling ----------------------------------------------------------------------------

    async def _poll(self, chunk: list[_Entry]) -> None:
        try:
            ids = [entry.id for entry in chunk]
            self.requests += 1
            self.ids_polled += len(ids)
            try:
                results = await self._fetch(ids)
            except RateLimitError as exc:
                self.throttled += 1
                self._postpone(chunk, exc.retry_after)
                return
            except (TransportError, ServerError):
                self.failed_requests += 1
                self._postpone(chunk, None)
                return
            except AkoolError as exc:
                # Nothing polling can fix (credentials, permissions): tell the waiters.
                self.failed_requests += 1
                for entry in chunk:
                    entry.in_flight = False
                    if self._entries.get(entry.id) is entry:
                        self._finish(entry, error=exc)
                return
            except BaseException:
                now = anyio.current_time()
                for entry in chunk:
                    entry.in_flight = False
                    if self._entries.get(entry.id) is entry:
                        self._schedule(entry, now, 0.0)
                raise
            self._absorb(chunk, results)
        finally:
            self._slots.release()

    def _postpone(self, chunk: list[_Entry], retry_after: float | None) -> None:
        now = anyio.current_time()
        for entry in chunk:
            entry.in_flight = False
            if self._entries.get(entry.id) is entry:
                delay = max(self.config.retry_delay, retry_after or 0.0, self._interval(entry, now))
                self._schedule(entry, now, delay)

    def _absorb(self, chunk: list[_Entry], results: Sequence[SwapResult]) -> None:
        now = anyio.current_time()
        by_id = {result.id: result for result in results}
        queue_aware = self.config.fifo and not self._webhooks
        if queue_aware:
            self._observe(chunk, by_id, now)
        for entry in chunk:
            entry.in_flight = False
            entry.last_polled = now
            if self._entries.get(entry.id) is not entry:
                continue  # every waiter left while the request was out
            result = by_id.get(entry.id)
            if result is None:
                if entry.misses == 0:
                    entry.first_miss = now
                entry.misses += 1
                if (
                    entry.misses >= self.config.miss_limit
                    and now - entry.first_miss >= self.config.miss_grace
                ):
                    self.not_found += 1
                    self._finish(
                        entry,
                        error=JobNotFoundError(
                            f"listbyids left job {entry.id} out {entry.misses} times in a row",
                            job_id=entry.id,
                            result=entry.last,
                        ),
                    )
                    continue
            else:
                entry.misses = 0
                self._deliver(entry, result)
                if self._entries.get(entry.id) is not entry:
                    continue  # finished
            self._schedule(entry, now, self._interval(entry, now))
        if queue_aware:
            self._advance(now)

    def _deliver(self, entry: _Entry, result: SwapResult) -> None:
        """Hand a status to an entry's waiters: finish them, or report progress."""
        previous = entry.last
        entry.last = result
        if result.status == SwapStatus.SUCCESS:
            self._finish(entry, result=result)
        elif result.status == SwapStatus.FAILED:
            self._finish(
                entry,
                error=JobFailedError(_failed_message(result), job_id=entry.id, result=result),
            )
        elif previous is None or previous.status != result.status:
            for waiter in entry.waiters:
                if waiter.on_status is not None:
                    try:
                        waiter.on_status(result)
                    except Exception:  # a waiter's bug must not stop everybody's polling
                        _log.exception("a status callback for job %s raised", entry.id)

    def _finish(
        self, entry: _Entry, *, result: SwapResult | None = None, error: AkoolError | None = None
    ) -> None:
        if self._entries.get(entry.id) is entry:
            del self._entries[entry.id]
            self._set_phase(entry, _ACTIVE, entry.phase_since)
        waiters, entry.waiters = entry.waiters, ()
        for waiter in waiters:
            waiter.result = result
            waiter.error = error
            if not waiter.done.done():
                waiter.done.set_result(None)
        if error is None or isinstance(error, JobFailedError):
            self.completed += len(waiters)

    # -- observability ----------------------------------------------------------------------

    def statistics(self) -> PollerStatistics:
        """A snapshot of what the poller tracks and has done."""
        return PollerStatistics(
            tracked=len(self._entries),
            waiters=sum(len(entry.waiters) for entry in self._entries.values()),
            requests=self.requests,
            ids_polled=self.ids_polled,
            failed_requests=self.failed_requests,
            throttled=self.throttled,
            completed=self.completed,
            not_found=self.not_found,
            notifications=self.notifications,
            webhooks_attached=self._webhooks > 0,
        )
