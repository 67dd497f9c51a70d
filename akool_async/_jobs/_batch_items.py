"""What a batch is made of: its options, its input readers, and one request on its way through.

``BatchRun`` (``_batch.py``) owns the run; the ``Submitter`` (``_submitter.py``), the
``Completion`` (``_completion.py``) and the ``Ledger`` (``_ledger.py``) each take one part of
a request's way. They share the values here and reach back into the run only through
``RunControl``, so that none of them imports the run (no import cycle).
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Generic, Protocol

import anyio
import attrs

from akool_async._models import SwapJob, SwapResult
from akool_async._retry import RetryPolicy

from ._download import DEFAULT_DOWNLOAD_TIMEOUT, DOWNLOAD_RETRY, MIN_RATE, RATE_WINDOW
from ._events import BatchEvent, EventKind, Outcome, R
from ._journals import JournalSpec

if TYPE_CHECKING:
    from ._journal_pg import Claim, PgJournal
    from ._poller import Waiter

__all__ = [
    "WAITING",
    "BatchOptions",
    "ClaimReader",
    "Item",
    "Pending",
    "Reader",
    "RunControl",
    "Slot",
    "unwrap",
]


@attrs.frozen(kw_only=True)
class BatchOptions:
    """The knobs of one ``swap_many`` call (validated there)."""

    concurrency: int
    max_pending: int
    job_timeout: float | None
    deadline: float | None
    journal: JournalSpec | None
    download_dir: Path | str | None  # a str: an object-store URL (``_storage``)
    fail_fast: bool
    resubmit_ambiguous: bool
    check_credit: bool
    on_event: Callable[[BatchEvent], None] | None
    download_retry: RetryPolicy = DOWNLOAD_RETRY
    download_timeout: float | None = DEFAULT_DOWNLOAD_TIMEOUT
    download_floor: tuple[float, float] = (MIN_RATE, RATE_WINDOW)
    cancel_grace: float = 5.0
    ambiguous_wait: float | None = 60.0
    buffer: int = 64
    #: A shared (PostgreSQL) journal's batch name, lease seconds and this worker's name.
    batch_id: str | None = None
    lease: float | None = None
    worker_id: str | None = None


class RunControl(Protocol):
    """What the parts of a batch may ask of its run (``BatchRun`` is one)."""

    def event(self, kind: EventKind, index: int, **data: Any) -> None:
        """Call the ``on_event`` hook, if any (it may raise: the caller decides)."""

    def fail(self, error: BaseException) -> None:
        """Stop the batch with ``error``."""

    def cancel(self) -> None:
        """Stop the batch: nobody reads its outcomes any more."""

    def spawn(self, func: Callable[..., Any], item: Item[Any], *args: Any) -> None:
        """Run ``func(item, *args)`` in the batch's task group (or give the item up)."""

    def done_with(self, item: Item[Any]) -> None:
        """The request is finished (or abandoned)."""

    def tighten(self) -> None:
        """Shorten the wait of ambiguous submits when only they are left."""


class Slot:
    """Where one request is (for the statistics' state counts)."""

    __slots__ = ("counts", "state")

    def __init__(self, counts: Counter[str]) -> None:
        self.counts = counts
        self.state: str | None = "waiting_input"
        counts["waiting_input"] += 1

    def move(self, state: str | None) -> None:
        if self.state is not None:
            self.counts[self.state] -= 1
        self.state = state
        if state is not None:
            self.counts[state] += 1


class Item(Generic[R]):
    """One input request on its way through the batch."""

    __slots__ = (
        "claim",
        "index",
        "job",
        "key",
        "occurrence",
        "ref",
        "request",
        "resumed",
        "run",
        "slot",
        "text",
        "timeout",
        "waiter",
    )

    def __init__(self, index: int, request: R, slot: Slot, claim: Claim | None = None) -> None:
        self.index = index
        self.request = request
        self.slot = slot
        self.key = ""
        self.text = ""
        self.occurrence = 0
        self.resumed = False
        #: From a shared journal: the lease on this request and what its row already says.
        self.claim = claim
        self.ref: str | None = None  # the webhook reference of its submit
        # While its job is pending (no task): the job, its waiter and the waiter's timeout.
        self.job: SwapJob | None = None
        self.waiter: Waiter | None = None
        self.timeout: float | None = None
        self.run: RunControl | None = None

    def status_changed(self, result: SwapResult) -> None:
        """The poller saw a new non-terminal status (called only when there is a hook)."""
        run, job = self.run, self.job
        assert run is not None
        assert job is not None
        try:
            run.event("status_changed", self.index, job_id=job.id, status=result.status)
        except Exception as exc:  # the user's hook, called from the shared poller
            run.fail(exc)

    def outcome(self, **fields: Any) -> Outcome[R]:
        return Outcome(request=self.request, index=self.index, resumed=self.resumed, **fields)


class Reader(Generic[R]):
    """The batch's input, read by its workers one request at a time, numbered in order."""

    def __init__(self, requests: Iterable[R] | AsyncIterable[R]) -> None:
        self._sync: Iterator[R] | None = None
        self._async: AsyncIterator[R] | None = None
        if isinstance(requests, Iterable):
            self._sync = iter(requests)
        else:
            self._async = aiter(requests)
        self._lock = anyio.Lock()  # an async generator refuses concurrent anext() calls
        self._index = 0
        self._ended = False

    async def next(self) -> tuple[int, R] | None:
        """The next request and its index, or None at the end (raises what the input raises)."""
        if self._sync is not None:
            if self._ended:
                return None
            try:
                return self._numbered(next(self._sync))
            except StopIteration:
                self._ended = True
                return None
        assert self._async is not None
        async with self._lock:
            if self._ended:  # (also when it ended while this worker waited for the lock)
                return None
            try:
                return self._numbered(await anext(self._async))
            except StopAsyncIteration:
                self._ended = True
                return None

    def _numbered(self, request: R) -> tuple[int, R]:
        index = self._index
        self._index += 1
        return index, request


class ClaimReader(Generic[R]):
    """A shared batch's input: the requests the journal leases to this worker, one at a time."""

    def __init__(self, journal: PgJournal, requests: list[R]) -> None:
        self.total = len(requests)
        self._journal = journal
        self._requests = requests

    async def next(self) -> tuple[int, R, Claim] | None:
        claim = await self._journal.claim()
        if claim is None:
            return None
        return claim.index, self._requests[claim.index], claim


class Pending(enum.Enum):
    """What a request's step returns when its job was handed to the poller."""

    WAITING = "waiting"


WAITING: Final = Pending.WAITING


def unwrap(exc: BaseException) -> BaseException:
    """The one real error inside (nested) single-exception groups."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc
