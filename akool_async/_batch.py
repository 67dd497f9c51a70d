"""The engine of ``swap_many``: bounded fan-out, journaled submits, shared polling, downloads.

One ``BatchRun`` runs as a single task in the client's task group (never in the caller's
async generator frame). ``concurrency`` worker tasks read the input lazily, one request at a
time, but only while fewer than ``max_pending`` requests are unfinished (back-pressure: the
workers stop reading at the cap), and submit it. A worker then hands the job to the client's
shared ``Poller`` (``Poller.watch``) and takes the next request: a pending job costs a waiter,
not a task. When the poller has the job's answer, ``_wait_over`` finishes the request: inline
when there is nothing to await, else in a short task that writes the journal row and
downloads the result. Its ``Outcome`` goes to a bounded memory stream that ``Batch``
(``_orchestrator.py``) reads for the caller; a slow caller therefore also slows the batch down
instead of piling outcomes up.

Per request, with a journal (``_journal.py``)::

    admit (find its row) -> recorded outcome / re-attach to its job / submit
    submit: 'submitting' (durable) -> send -> 'submitted' + job id (durable) -> wait
    wait:   terminal status (+ download) -> final row -> outcome

Stopping. Cancelling the batch (``aclose``, a break out of ``async with``, the caller's
cancellation, the client closing) cancels every task and stops polling for the pending jobs
(their rows stay 'submitted', so a resume re-attaches to them). Submits are the exception:
each runs in a shielded scope (``_Flight``), and the client calls ``submit_sending`` right
before an attempt's request goes out. At the stop, a submit that was sent gets
``cancel_grace`` seconds for its answer (its job id is journaled); one that was not (waiting
at the throttle gate, for a token, in backoff after a refusal) is abandoned at once and
journaled 'unsent'. Only a submit still without an answer after its grace stays
'submitting', which a resume reports as ambiguous. Running out of credit (1006, or a
balance <= 0 before the start), an account refusal (1200; 1101/1102 with an API key) and
the batch ``deadline`` stop *admitting* instead: submits in flight finish, submitted jobs
go on being awaited (credit case) or time out (deadline case), and every request not yet
submitted gets an error outcome without a submit.

Ambiguity. With ``use_webhooks`` in force, each submit's webhook URL carries a reference
(``_ambiguity.py``); an ambiguous submit then waits, in a task of its own (they are few),
for a callback naming it and, if one comes, is bound to that job like a submit that got
its answer. The wait ends ``ambiguous_wait`` seconds after everything else finished.

Journal write failures after a job exists never lose it: the outcome carries the job and the
``JournalError`` and the job id is logged at WARNING.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import enum
import functools
import hashlib
import logging
import math
from collections import Counter
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Callable,
    Iterable,
    Iterator,
    Sized,
)
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Generic, cast

import anyio
import attrs
from anyio.abc import TaskGroup

from ._ambiguity import References, new_reference, with_reference
from ._download import (
    DEFAULT_DOWNLOAD_TIMEOUT,
    DOWNLOAD_RETRY,
    MIN_RATE,
    RATE_WINDOW,
    part_files,
    sha256_of_file,
    sweep_parts,
)
from ._endpoints import GET_CREDIT, Endpoint
from ._errors import (
    AccountBannedError,
    AkoolError,
    AmbiguousSubmitError,
    APIError,
    AuthenticationError,
    ClientStateError,
    InsufficientCreditError,
    JobFailedError,
    JobNotFoundError,
    JobTimeoutError,
    JournalError,
    ParameterError,
    RateLimitError,
    TransportError,
    ValidationError,
)
from ._events import (
    BatchCounters,
    BatchDeadlineError,
    BatchEvent,
    BatchStatistics,
    DownloadError,
    EventKind,
    Outcome,
    R,
    submit_events,
    submit_sending,
)
from ._journal import Journal, JournalRecord, JournalState
from ._journals import JournalBackend, JournalSpec, open_journal
from ._models import CreditQuery, SwapJob, SwapResult
from ._records import (
    SUBMIT_ENDPOINTS,
    error_columns,
    job_from_record,
    never_acted,
    rebuild_error,
    request_key,
    result_from_json,
    result_json,
    submit_endpoint,
)
from ._result_store import check_stored, save_anywhere
from ._retry import RetryPolicy
from ._storage import MEDIA_TYPES, StorageError, is_store_url, media_refs

if TYPE_CHECKING:
    from ._client import AsyncClient
    from ._journal_pg import Claim, PgJournal
    from ._poller import Poller, Waiter
    from ._service import JobService as _Orchestrator

__all__ = ["BatchOptions", "BatchRun"]

_log = logging.getLogger("akool_async.batch")

#: Resubmits of one request after the client gave up on 1005 (each waits at least a backoff).
_THROTTLE_RESUBMITS: Final = 8
_RESUBMIT_BACKOFF: Final = RetryPolicy(initial_delay=1.0, max_delay=30.0)

_logger = logging.getLogger("akool_async")


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


class _Abandoned(Exception):
    """Raised at the send point of a submit the batch stopped before it was sent."""


class _Flight:
    """One submit between its journal intent and its answer (see ``BatchRun.stop_submits``).

    ``sent`` is True while an attempt's request may be on its way to the server: set by the
    client right before it sends (``submit_sending``), cleared when that attempt is refused
    without action and the client backs off (its ``retried`` / ``throttled`` reports).
    """

    __slots__ = ("forward", "scope", "sent", "stopping")

    def __init__(self, scope: anyio.CancelScope, forward: Callable[..., None] | None) -> None:
        self.scope = scope
        self.forward = forward
        self.sent = False
        self.stopping = False

    def sending(self) -> None:
        if self.scope.cancel_called:
            raise _Abandoned  # the batch stopped while it waited: it never leaves
        self.sent = True

    def report(self, kind: str, **data: Any) -> None:
        if kind != "sending":  # an attempt leaving the rate controller; submit_sending follows
            self.sent = False  # that attempt was refused (or never connected): no job
        if self.stopping:
            self.scope.cancel()  # and no further attempt
        if self.forward is not None:
            self.forward(kind, **data)


class _Slot:
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


class _Item(Generic[R]):
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

    def __init__(self, index: int, request: R, slot: _Slot, claim: Claim | None = None) -> None:
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
        self.run: BatchRun[R] | None = None

    def status_changed(self, result: SwapResult) -> None:
        """The poller saw a new non-terminal status (called only when there is a hook)."""
        run, job = self.run, self.job
        assert run is not None
        assert job is not None
        try:
            run._event("status_changed", self.index, job_id=job.id, status=result.status)
        except Exception as exc:  # the user's hook, called from the shared poller
            run.fail(exc)

    def outcome(self, **fields: Any) -> Outcome[R]:
        return Outcome(request=self.request, index=self.index, resumed=self.resumed, **fields)


class _Reader(Generic[R]):
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


class _ClaimReader(Generic[R]):
    """A shared batch's input: the requests the journal leases to this worker, one at a time."""

    def __init__(self, journal: PgJournal, requests: list[R]) -> None:
        self._journal = journal
        self._requests = requests

    async def next(self) -> tuple[int, R, Claim] | None:
        claim = await self._journal.claim()
        if claim is None:
            return None
        return claim.index, self._requests[claim.index], claim


def _shared_keys(requests: list[Any]) -> list[tuple[str, str, str]]:
    """``(key, canonical JSON, kind)`` per request; a request that is not one gets a stand-in."""
    keys = []
    for request in requests:
        try:
            key, text = request_key(request)
        except ValidationError:
            text = f"invalid:{type(request).__name__}"
            key = hashlib.sha256(text.encode()).hexdigest()
        keys.append((key, text, type(request).__name__))
    return keys


class _Pending(enum.Enum):
    """What ``_resolve`` returns when the request's job was handed to the poller."""

    WAITING = "waiting"


_WAITING: Final = _Pending.WAITING


class BatchRun(Generic[R]):
    """One running ``swap_many`` batch (see the module docstring)."""

    def __init__(
        self,
        client: AsyncClient,
        poller: Poller,
        requests: Iterable[R] | AsyncIterable[R],
        options: BatchOptions,
        orchestrator: _Orchestrator | None = None,
    ) -> None:
        self._client = client
        self._orchestrator = orchestrator
        self._poller = poller
        self._requests = requests
        self._options = options
        self.total = len(requests) if isinstance(requests, Sized) else None
        self.send, self.receive = anyio.create_memory_object_stream[Outcome[R]](options.buffer)
        self.scope = anyio.CancelScope()
        self.done = anyio.Event()
        self.failure: BaseException | None = None
        self.started = False
        self.finished = False
        self.closing = False
        self._journal: JournalBackend | None = None
        self._keys: list[tuple[str, str, str]] = []
        # asyncio's semaphore, not anyio's: an uncontended acquire does not yield to the loop
        # (anyio's is a full checkpoint); the submit path checks for cancellation itself.
        self._admission = asyncio.Semaphore(options.max_pending)
        self._deadline_at = math.inf
        self._credit_error: InsufficientCreditError | None = None
        self._tg: TaskGroup | None = None
        self._wait_over_method = self._wait_over  # one bound method for every waiter
        self._callback_context = contextvars.Context()
        #: Requests whose job is pending, by their waiter's future (no task meanwhile).
        self._waiting: dict[asyncio.Future[None], _Item[R]] = {}
        #: Requests read and not finished; ``_drained`` is set when that reaches 0.
        self._unfinished = 0
        self._drained: anyio.Event | None = None
        self._counters = BatchCounters()
        self._account_error: APIError | None = None
        #: Submits between their journal intent and their answer; see ``stop_submits``.
        self._flights: set[_Flight] = set()
        self._stopping = False
        #: Ambiguous submits waiting for a callback naming their reference.
        self._ambiguous_scopes: set[anyio.CancelScope] = set()
        self._input_done = False

    # -- lifetime ---------------------------------------------------------------------------

    async def main(self) -> None:
        """The batch's one task in the client's task group; never raises into it."""
        counters = self._counters
        counters.started_at = anyio.current_time()
        if self._options.deadline is not None:
            self._deadline_at = counters.started_at + self._options.deadline
        counters.polls_at_start = self._poller.requests
        counters.client_at_start = self._client_counters()
        options = self._options
        _log.info(
            "batch started: %s requests, concurrency %d, max_pending %d, journal %s",
            "unknown number of" if self.total is None else f"{self.total:,}",
            options.concurrency,
            options.max_pending,
            "none" if options.journal is None else repr(str(options.journal)),
        )
        try:
            async with AsyncExitStack() as stack:
                options = self._options
                if options.journal is not None:
                    # Outside the work scope: cleanup writes of cancelled tasks still land.
                    self._journal = await stack.enter_async_context(
                        open_journal(
                            options.journal,
                            base_url=self._client.base_url,
                            batch_id=options.batch_id,
                            lease=options.lease,
                            worker_id=options.worker_id,
                            resubmit_ambiguous=options.resubmit_ambiguous,
                        )
                    )
                    if isinstance(self._options.download_dir, Path):
                        stack.push_async_callback(self._sweep_parts)
                        await self._sweep_parts()  # left behind by a killed run
                reader: _Reader[R] | _ClaimReader[R]
                if self._journal is not None and self._journal.claims:
                    reader = await self._join_shared(stack)
                else:
                    reader = _Reader(self._requests)
                with self.scope:
                    if self._options.check_credit:
                        await self._check_credit()
                    try:
                        async with anyio.create_task_group() as tg:
                            self._tg = tg  # for requests finishing with something to await
                            async with anyio.create_task_group() as workers:
                                for _ in range(self._options.concurrency):
                                    workers.start_soon(self._worker, reader)
                            self._input_done = True
                            self._tighten()
                            # Pending jobs have no task: keep the group open until they end.
                            if self._unfinished:
                                self._drained = anyio.Event()
                                await self._drained.wait()
                    finally:
                        self._tg = None
                        self._abandon_waiting()
            if self._options.check_credit and not self.scope.cancel_called:
                await self._refresh_credit()
        except anyio.get_cancelled_exc_class():
            if not self.closing and self.failure is None:
                self.failure = ClientStateError("the client was closed while the batch ran")
            raise
        except Exception as exc:  # a bug, the input iterator, or an on_event hook
            if self.failure is None:
                self.failure = _unwrap(exc)
        finally:
            self._counters.finished_at = anyio.current_time()
            self._counters.client_at_end = self._client_counters()
            self.finished = True
            self.send.close()
            self.done.set()
            self._log_finish()

    def _log_finish(self) -> None:
        stats = self.statistics()
        how = "stopped" if self.scope.cancel_called or self.failure is not None else "finished"
        _log.info(
            "batch %s after %.1fs: %d succeeded, %d failed, %d errors, %d ambiguous, "
            "%d resumed; %d submits, %d retries, %d throttled",
            how,
            stats.elapsed,
            stats.succeeded,
            stats.failed,
            stats.errored,
            stats.ambiguous,
            stats.resumed,
            stats.submits,
            stats.retries,
            stats.throttles,
        )

    async def _join_shared(self, stack: AsyncExitStack) -> _ClaimReader[R]:
        """Read the whole input, join the shared batch with it, share the throttle gate."""
        journal = cast("PgJournal", self._journal)
        if isinstance(self._requests, Iterable):
            requests = list(self._requests)
        else:
            requests = [request async for request in self._requests]
        self.total = len(requests)
        self._keys = _shared_keys(requests)
        await journal.load(self._keys)
        journal.attach_gate(self._client._shared.rate)
        stack.callback(journal.detach_gate)
        return _ClaimReader(journal, requests)

    def cancel(self) -> None:
        """Stop the batch (from the event loop thread)."""
        self.closing = True
        self.stop_submits()
        self.scope.cancel()

    def fail(self, error: BaseException) -> None:
        """Stop the batch and have the iterator raise ``error`` once outcomes are drained."""
        if self.failure is None:
            self.failure = error
        self.stop_submits()
        self.scope.cancel()

    @property
    def grace(self) -> float:
        """Seconds a stop waits for the answers of submits already sent."""
        return self._options.cancel_grace

    def stop_submits(self) -> None:
        """A graceful stop: submits already sent get ``cancel_grace`` seconds for an answer.

        Their shielded scopes get a deadline; a submit not yet sent (waiting at the throttle
        gate, for a token, in backoff) is abandoned at once and journaled as unsent, and so
        is one that reaches the send point later. Waits for webhook references end too.
        """
        if self._stopping:
            return
        self._stopping = True
        until = anyio.current_time() + self._options.cancel_grace
        for flight in self._flights:
            flight.stopping = True
            if flight.sent:
                flight.scope.deadline = min(flight.scope.deadline, until)
            else:
                flight.scope.cancel()
        for scope in self._ambiguous_scopes:
            scope.cancel()

    async def _sweep_parts(self) -> None:
        """Delete the ``.part`` files of this batch's jobs (a killed run leaves them)."""
        assert self._journal is not None
        directory = self._options.download_dir
        assert isinstance(directory, Path)
        with anyio.CancelScope(shield=True), contextlib.suppress(JournalError):
            parts = await anyio.to_thread.run_sync(part_files, directory)
            if parts:  # usually none: the journal is asked only about the files found
                ours = await self._journal.known_jobs(parts)
                await anyio.to_thread.run_sync(sweep_parts, directory, ours)

    # -- feeding ----------------------------------------------------------------------------

    async def _worker(self, reader: _Reader[R] | _ClaimReader[R]) -> None:
        """One of ``concurrency`` workers: take the next request and submit it, until the end.

        A worker takes a place under ``max_pending`` *before* reading, so at the cap the
        input is not read at all (back-pressure reaches a generator, a file, a database
        cursor...). After its submit, a request's job is handed to the poller and the worker
        moves on: a batch holds ``concurrency`` tasks however many jobs are pending, and no
        task is created per request (each one costs CPU, and in the cyclic GC).
        """
        while not self.scope.cancel_called:  # stopped (fail-fast, closed): read no further
            # No anyio checkpoint per request: the submit path has one, an outcome goes
            # through the stream, a journal lookup awaits the database.
            await self._admission.acquire()
            try:
                got = await reader.next()
            except BaseException as exc:
                self._admission.release()
                if not isinstance(exc, Exception):
                    raise
                self.fail(exc)  # the input itself raised
                return
            if got is None:
                self._admission.release()
                return
            self._counters.read += 1
            self._unfinished += 1
            try:
                await self._job(*got)
            except Exception as exc:  # the user's on_event hook (or a bug)
                # The first error wins; the other workers are cancelled, not raised together.
                self.fail(exc)
                return

    async def _job(self, index: int, request: R, claim: Claim | None = None) -> None:
        item = _Item(index, request, _Slot(self._counters.states), claim)
        # This task's own context: the client reports this request's sends and retries
        # through it.
        submit_events.set(functools.partial(self._report, index))
        handed_off = False
        try:
            outcome = await self._resolve(item)
            if outcome is _WAITING:
                handed_off = True  # _wait_over() finishes it when the poller has its answer
                return
            item.slot.move(None)
            await self._emit(outcome)
        finally:
            if not handed_off:
                self._done_with(item)

    def _done_with(self, item: _Item[R]) -> None:
        """The request is finished (or abandoned): free its place under ``max_pending``."""
        item.slot.move(None)
        self._admission.release()
        self._unfinished -= 1
        if self._unfinished == 0 and self._drained is not None:
            self._drained.set()
        elif self._ambiguous_scopes:
            self._tighten()

    def _tighten(self) -> None:
        """Only ambiguous submits are left: they wait ``ambiguous_wait`` more at most."""
        wait = self._options.ambiguous_wait
        scopes = self._ambiguous_scopes
        if not (self._input_done and scopes and self._unfinished <= len(scopes)) or wait is None:
            return
        until = anyio.current_time() + wait
        for scope in scopes:
            scope.deadline = min(scope.deadline, until)

    # -- one request ------------------------------------------------------------------------

    async def _resolve(self, item: _Item[R]) -> Outcome[R] | _Pending:
        if item.claim is not None:
            return await self._resolve_claimed(item, item.claim)
        try:
            if self._journal is None:
                submit_endpoint(item.request)  # the key only identifies journal rows
            else:
                item.key, item.text = request_key(item.request)
        except ValidationError as exc:
            return item.outcome(error=exc)
        if self._journal is not None:
            try:
                item.occurrence, record = await self._journal.admit(item.key)
            except JournalError as exc:
                return item.outcome(error=exc)
            if record is not None:
                resumed = await self._from_record(item, record)
                if resumed is not None:
                    return resumed
        job = await self._submit(item)
        if isinstance(job, Outcome):
            if isinstance(job.error, AmbiguousSubmitError) and item.ref is not None:
                if self._resolvable(item):
                    self._spawn(self._resolve_reference, item, job)
                    return _WAITING
                assert self._orchestrator is not None
                # Not waited for now; its callback is remembered for a resume in this process.
                self._orchestrator.references.forget(item.ref)
            return job
        return await self._await_job(item, job)

    async def _resolve_claimed(self, item: _Item[R], claim: Claim) -> Outcome[R] | _Pending:
        """A request leased from a shared journal: its row decides, as on a resume."""
        item.key, item.text, _ = self._keys[item.index]
        item.occurrence = claim.occurrence
        try:
            submit_endpoint(item.request)
        except ValidationError as exc:
            try:
                await self._record_unsubmitted(item, "rejected", exc)
            except JournalError as journal_error:
                return item.outcome(error=journal_error)
            return item.outcome(error=exc)
        if claim.record is not None:
            resumed = await self._from_record(item, claim.record)
            if resumed is not None:
                return resumed
        job = await self._submit(item)
        if isinstance(job, Outcome):
            return job
        return await self._await_job(item, job)

    async def _from_record(
        self, item: _Item[R], record: JournalRecord
    ) -> Outcome[R] | _Pending | None:
        """The outcome a journal row already decides, or None to submit the request."""
        state = record.state
        if state == "unsent" or (state == "ambiguous" and self._options.resubmit_ambiguous):
            return None
        if state == "rejected" and record.error_code not in ParameterError.codes:
            return None  # refused without a job, for a reason that may have passed: again
        item.resumed = True  # whatever happens next, no submit is made for it in this run
        job = job_from_record(record, item.request)
        result = result_from_json(record.result)
        if job is not None and _ask_again(state, result):
            return await self._await_job(item, job)  # not a final answer: ask the server
        error = rebuild_error(record, item.request, result)
        if state in ("ambiguous", "submitting"):
            if not isinstance(error, AmbiguousSubmitError):
                why = str(error) if error else "interrupted while it may have reached AKOOL"
                error = AmbiguousSubmitError(f"the submit was {why}", request=item.request)
            outcome = item.outcome(job=job, error=error)
            item.ref = record.ref  # with webhooks, its job's callback may still come
            if self._resolvable(item):
                self._spawn(self._resolve_reference, item, outcome)
                return _WAITING
            return outcome
        fetch = self._options.download_dir is not None and result is not None
        if (
            fetch
            and job is not None
            and result is not None
            and (
                state == "download_failed"
                or (state == "succeeded" and not await self._intact(record))
            )
        ):
            return await self._fetch(item, job, result)
        remote = record.path is not None and is_store_url(record.path)
        path = Path(record.path) if record.path and not remote else None
        return item.outcome(
            job=job, result=result, error=error, path=path, sha256=record.sha256,
            location=record.path,
        )  # fmt: skip

    async def _intact(self, record: JournalRecord) -> bool:
        """``_file_intact``, for a result in an object store too (re-read and hashed)."""
        if record.path is None or not is_store_url(record.path):
            return await _file_intact(record)
        options = self._client._media().storage_options
        try:
            return await check_stored(record.path, record.sha256, options, size=record.size)
        except StorageError:
            return False

    def _resolvable(self, item: _Item[R]) -> bool:
        """Whether a callback may still tell which job this ambiguous submit created."""
        orchestrator = self._orchestrator
        return (
            item.ref is not None
            and orchestrator is not None
            and orchestrator.detach_webhooks is not None
            and self._options.ambiguous_wait is not None
            and not self._stopping
        )

    async def _resolve_reference(self, item: _Item[R], ambiguous: Outcome[R]) -> None:
        """Wait for a callback naming the item's reference; bind the request to its job."""
        handed_off = False
        try:
            job_id = await self._bound_job(item)
            if job_id is None:
                outcome: Outcome[R] | _Pending = ambiguous
            else:
                request = item.request
                job = SwapJob(id=job_id, kind=request.kind, media=request.media)
                error = await self._record(
                    item, "submitted", job_id=job_id, media=str(job.media), error_type=None,
                    error_message=None, error_code=None,
                )  # fmt: skip
                if error is not None:
                    outcome = item.outcome(job=job, error=error)
                else:
                    self._counters.resolved += 1
                    self._event("submitted", item.index, job_id=job_id)
                    outcome = await self._await_job(item, job)
            if outcome is _WAITING:
                handed_off = True
                return
            assert isinstance(outcome, Outcome)
            item.slot.move(None)
            await self._emit(outcome)
        except Exception as exc:  # the user's on_event hook (or a bug): the first one wins
            self.fail(exc)
        finally:
            if not handed_off:
                self._done_with(item)

    async def _bound_job(self, item: _Item[R]) -> str | None:
        """The job id a callback bound to the item's reference, or None when none came."""
        assert self._orchestrator is not None
        assert item.ref is not None
        references: References = self._orchestrator.references
        future = references.expect(item.ref)
        item.slot.move("pending")
        limit = self._deadline_at
        if self._options.job_timeout is not None:
            limit = min(limit, anyio.current_time() + self._options.job_timeout)
        try:
            with anyio.CancelScope(deadline=limit) as scope:
                self._ambiguous_scopes.add(scope)
                self._tighten()
                try:
                    return await future
                finally:
                    self._ambiguous_scopes.discard(scope)
            return None
        finally:
            references.forget(item.ref)

    def _stop_error(self) -> AkoolError | None:
        if self._account_error is not None:
            refused = self._account_error
            return type(refused)(
                f"not submitted: the account was refused ({refused.message})", code=refused.code
            )
        if self._credit_error is not None:
            return InsufficientCreditError(
                f"not submitted: the account ran out of credit ({self._credit_error.message})",
                code=self._credit_error.code,
            )
        if anyio.current_time() >= self._deadline_at:
            return BatchDeadlineError(
                f"not submitted: the batch deadline of {self._options.deadline} s passed"
            )
        return None

    async def _submit(self, item: _Item[R]) -> SwapJob | Outcome[R]:
        endpoint = SUBMIT_ENDPOINTS[type(item.request)]
        request: R = item.request
        if type(request) in MEDIA_TYPES and self._stop_error() is None and media_refs(request):
            # Local files and object-store URLs become presigned URLs before anything is sent
            # (the journal remembers them); a missing file or a refusing store is an outcome.
            # (Not when the batch stopped admitting: nothing is uploaded for a request that
            # will not be sent.)
            try:
                # (Only an SQLite journal remembers resolutions; a shared one does not.)
                local = self._journal if isinstance(self._journal, Journal) else None
                request = await self._client._media().resolve(
                    request, lifetime=self._options.job_timeout, journal=local
                )
            except (ValidationError, StorageError, JournalError) as exc:
                if self._journal is not None and not isinstance(exc, JournalError):
                    await self._record_unsubmitted(item, "unsent", exc)
                return item.outcome(error=exc)
        throttles = 0
        while True:  # at most ``concurrency`` of these run: one per worker
            # Cancellation is still honoured before anything is counted or sent.
            await anyio.lowlevel.checkpoint_if_cancelled()
            error = self._stop_error()
            if error is None:
                item.slot.move("submitting")
                try:
                    job, journal_error = await self._send_once(item, endpoint, request)
                except AkoolError as exc:
                    item.slot.move("waiting_input")
                    error = exc
                else:
                    item.slot.move("pending")
                    if journal_error is not None:  # paid for, but not durably recorded
                        return item.outcome(job=job, error=journal_error)
                    break
            if isinstance(error, RateLimitError) and throttles < _THROTTLE_RESUBMITS:
                # The client already retried it at the rate controller and gave up; 1005 is a
                # refusal without action, so trying again later cannot create a second job.
                throttles += 1
                delay = _RESUBMIT_BACKOFF.delay(throttles - 1, retry_after=error.retry_after)
                # The client reported the 1005 itself ("throttled", via submit_events).
                try:
                    await anyio.sleep(delay)
                except BaseException:
                    await self._record_unsent(item)  # cancelled between two refusals
                    raise
                self._counters.retries += 1
                self._event("retried", item.index, error=error, attempt=throttles + 1)
                continue
            refresh = isinstance(error, InsufficientCreditError) and self._credit_error is None
            if refresh:
                assert isinstance(error, InsufficientCreditError)
                self._credit_error = error  # stop admitting; jobs already paid for go on
            if self._account_error is None and self._account_refused(error):
                assert isinstance(error, APIError)
                self._account_error = error  # stop admitting, as for credit
            outcome = await self._submit_failed(item, error)  # journaled first: then a stop
            if refresh:  # during the balance read is no false ambiguity
                await self._refresh_credit()
            return outcome
        self._event("submitted", item.index, job_id=job.id)
        return job

    def _account_refused(self, error: AkoolError) -> bool:
        """A refusal of the account itself (ban; API key refused): every submit would get it."""
        if isinstance(error, AccountBannedError):
            return True
        return (
            isinstance(error, AuthenticationError)
            and error.code in AuthenticationError.codes
            and self._client._shared.auth.api_key is not None
        )

    def _with_reference(self, item: _Item[R], request: R) -> R:
        """The request to send: with a webhook reference when callbacks come to us."""
        orchestrator = self._orchestrator
        if orchestrator is None or orchestrator.webhook_url is None or request.webhook_url:
            item.ref = None
            return request
        item.ref = new_reference()
        return attrs.evolve(request, webhook_url=with_reference(orchestrator.webhook_url, item.ref))

    async def _send_once(
        self, item: _Item[R], endpoint: Endpoint[Any, SwapJob], resolved: R
    ) -> tuple[SwapJob, JournalError | None]:
        """Journal the intent (durably), send the submit (with the client's retries), and
        journal its job: ``(job, None)``, or ``(job, JournalError)`` when that last write
        failed (the job exists and is paid for: it is logged, and the outcome carries it).

        The send runs in a shielded scope: a graceful stop (``stop_submits``) gives a submit
        that was sent ``cancel_grace`` seconds for its answer, and abandons one that was not.
        """
        journal = self._journal
        request = self._with_reference(item, resolved)
        if journal is not None:
            try:
                await journal.begin_submit(
                    item.key, item.occurrence, index=item.index,
                    kind=type(item.request).__name__, request=item.text, ref=item.ref,
                )  # fmt: skip
            except BaseException as exc:
                if not isinstance(exc, JournalError):
                    await self._record_unsent(item)  # cancelled before anything went out
                raise
        ref = item.ref or ""
        references = (
            self._orchestrator.references
            if item.ref is not None and self._orchestrator is not None
            else None
        )
        abandoned = False
        with anyio.CancelScope(shield=True) as scope:
            flight = _Flight(scope, submit_events.get())
            self._flights.add(flight)
            if self._stopping:
                flight.stopping = True
                scope.cancel()
            sending = submit_sending.set(flight.sending)
            reporting = submit_events.set(flight.report)
            if references is not None:
                references.expect(ref)
            try:
                # Counted by ``_report("sending")`` as each attempt leaves the rate controller.
                job: SwapJob = await self._client._call(endpoint, request)
            except BaseException as exc:
                if references is not None and not isinstance(exc, AmbiguousSubmitError):
                    references.forget(ref)
                if isinstance(exc, AkoolError):
                    raise
                if not flight.sent:
                    # Stopped before it went out: say so, so that a resume resubmits it. A
                    # submit that was sent and got no answer in its grace stays 'submitting':
                    # a resume reports it as ambiguous (the honest case).
                    await self._record_unsent(item)
                if not isinstance(exc, _Abandoned):
                    raise
                abandoned = True
            else:
                if references is not None:
                    references.forget(ref)
                if journal is None:  # no scope to enter (anyio's cost ~5 us) for no write
                    return job, None
                with anyio.CancelScope(shield=True):
                    error = await self._record(
                        item, "submitted", job_id=job.id, job_ref=job.job_id,
                        media=str(job.media), job_url=job.url,
                    )  # fmt: skip
                return job, error
            finally:
                submit_sending.reset(sending)
                submit_events.reset(reporting)
                self._flights.discard(flight)
        # Stopped: the shield caught its own cancellation; let the batch's come through.
        await anyio.lowlevel.checkpoint()
        if abandoned or not flight.sent:
            raise TransportError("the batch stopped before the submit was sent")
        raise AmbiguousSubmitError(
            "the batch stopped before the submit's answer came", request=item.request
        )

    async def _record_unsent(self, item: _Item[R]) -> None:
        """Journal that the request was not sent (shielded: it runs while being cancelled).

        If even this fails the row stays 'submitting' and a resume reports it as ambiguous:
        safe, merely pessimistic.
        """
        if self._journal is None:
            return
        with anyio.CancelScope(shield=True), contextlib.suppress(JournalError):
            await self._record_unsubmitted(item, "unsent", None)

    async def _record_unsubmitted(
        self, item: _Item[R], state: JournalState, error: AkoolError | None
    ) -> None:
        assert self._journal is not None
        columns = error_columns(error)
        await self._journal.record_unsubmitted(
            item.key, item.occurrence, index=item.index, kind=type(item.request).__name__,
            request=item.text, state=state, error_type=columns.error_type,
            error_message=columns.error_message, error_code=columns.error_code,
        )  # fmt: skip

    async def _submit_failed(self, item: _Item[R], error: AkoolError) -> Outcome[R]:
        state: JournalState
        if isinstance(error, AmbiguousSubmitError):
            state = "ambiguous"
        elif never_acted(error):
            state = "unsent"
        else:
            state = "rejected"
        if self._journal is not None and not isinstance(error, JournalError):
            try:
                with anyio.CancelScope(shield=True):  # the answer came: write it down
                    await self._record_unsubmitted(item, state, error)
            except JournalError as exc:
                error = exc
        return item.outcome(error=error)

    async def _await_job(self, item: _Item[R], job: SwapJob) -> Outcome[R] | _Pending:
        """Hand the job to the poller; this request's task then ends (``_WAITING``).

        A pending job costs a waiter, not a suspended task: with thousands pending, every
        object a task keeps alive is work for Python's cyclic garbage collector
        (``benchmarks/README.md``). ``_wait_over`` takes over when the waiter is done.
        """
        item.slot.move("pending")
        item.job = job
        timeout = self._options.job_timeout
        if self._deadline_at < math.inf:
            left = max(0.0, self._deadline_at - anyio.current_time())
            timeout = left if timeout is None else min(timeout, left)

        # Status reports only for a hook: a bound method is one object per pending job.
        on_status = item.status_changed if self._options.on_event is not None else None
        item.run = self
        try:
            waiter = self._poller.watch(
                job.id, media=job.media, timeout=timeout, on_status=on_status
            )
        except AkoolError as exc:  # the poller is not running: the client is closing
            return item.outcome(job=job, error=exc)
        item.waiter, item.timeout = waiter, timeout
        if waiter.done.done():  # already known (an early webhook): finish in this task
            return await self._after_wait(item)
        self._waiting[waiter.done] = item
        # One shared context, not a copy of this task's per pending job.
        waiter.done.add_done_callback(self._wait_over_method, context=self._callback_context)
        return _WAITING

    def _wait_over(self, done: asyncio.Future[None]) -> None:
        """The poller has a pending job's answer: finish the request (on the event loop)."""
        item = self._waiting.pop(done, None)
        if item is None:
            return  # abandoned: the batch stopped meanwhile
        journal = self._journal
        if self._options.download_dir is not None or (
            journal is not None and not isinstance(journal, Journal)  # no write-behind there
        ):
            self._spawn(self._finish, item)
            return
        # Nothing left to await but the stream (the final row is written behind): no task
        # unless the stream is full.
        try:
            outcome = self._settle(item)
            if journal is not None:
                self._record_soon(item, outcome)
            item.slot.move(None)
            report = self._finished(outcome)
        except Exception as exc:  # the user's on_event hook (or a bug): stop the batch
            self._done_with(item)
            self.fail(exc)
            return
        if report and self._send_nowait(outcome) is False:
            self._spawn(self._send_later, item, outcome)
            return
        self._done_with(item)

    def _spawn(self, func: Callable[..., Any], item: _Item[R], *args: Any) -> None:
        if self._tg is not None:
            try:
                self._tg.start_soon(func, item, *args)
                return
            except RuntimeError:  # the group is closing
                pass
        self._done_with(item)  # the batch ended under this answer: nobody takes its outcome

    async def _finish(self, item: _Item[R]) -> None:
        """Record, download and emit a request whose job the poller answered."""
        try:
            outcome = await self._after_wait(item)
            item.slot.move(None)
            await self._emit(outcome)
        except Exception as exc:  # the user's on_event hook (or a bug): the first one wins
            self.fail(exc)
        finally:
            self._done_with(item)

    async def _send_later(self, item: _Item[R], outcome: Outcome[R]) -> None:
        try:
            await self._send(outcome)
        finally:
            self._done_with(item)

    def _abandon_waiting(self) -> None:
        """The batch stopped: stop polling for its pending jobs (their rows stay 'submitted')."""
        waiting, self._waiting = self._waiting, {}
        for done, item in waiting.items():
            done.remove_done_callback(self._wait_over_method)
            assert item.job is not None
            assert item.waiter is not None
            self._poller.release(item.job.id, item.waiter)
            self._done_with(item)

    def _settle(self, item: _Item[R]) -> Outcome[R]:
        """The outcome a done waiter gives, before any journal row or download."""
        job, waiter = item.job, item.waiter
        assert job is not None
        assert waiter is not None
        try:
            result = self._poller.settle(job.id, waiter, item.timeout)
        except (JobFailedError, JobTimeoutError, JobNotFoundError) as exc:
            last = exc.result if isinstance(exc.result, SwapResult) else None
            return item.outcome(job=job, result=last, error=exc)
        except AkoolError as exc:
            # Polling itself failed (credentials, client closed): the job may still finish,
            # so its row stays 'submitted' and a resume re-attaches to it.
            return item.outcome(job=job, error=exc)
        return item.outcome(job=job, result=result)

    async def _after_wait(self, item: _Item[R]) -> Outcome[R]:
        """``_settle``, then the journal row and the download."""
        outcome = self._settle(item)
        job, result, error = outcome.job, outcome.result, outcome.error
        if isinstance(error, JobFailedError | JobTimeoutError | JobNotFoundError):
            state: JournalState = (
                "failed"
                if isinstance(error, JobFailedError)
                else "timed_out"
                if isinstance(error, JobTimeoutError)
                else "not_found"
            )
            await self._record(item, state, result, error)  # a failure logs it, at least
            return outcome
        if error is not None:
            return outcome
        assert job is not None
        assert result is not None
        if self._options.download_dir is not None:
            return await self._fetch(item, job, result)
        journal_error = await self._record(item, "succeeded", result, None)
        return outcome if journal_error is None else attrs.evolve(outcome, error=journal_error)

    async def _fetch(self, item: _Item[R], job: SwapJob, result: SwapResult) -> Outcome[R]:
        assert self._options.download_dir is not None
        item.slot.move("downloading")

        def on_retry(attempt: int, delay: float, exc: DownloadError) -> None:
            self._counters.retries += 1
            self._event(
                "retried", item.index, job_id=job.id, error=exc, attempt=attempt, delay=delay
            )

        self._counters.requests["download"] += 1
        try:
            done = await save_anywhere(
                self._client,
                result,
                self._options.download_dir,
                deadline=self._deadline_at,
                total_timeout=self._options.download_timeout,
                retry=self._options.download_retry,
                on_retry=on_retry,
                min_rate=self._options.download_floor,
            )
        except (DownloadError, ClientStateError, StorageError) as exc:
            await self._record(item, "download_failed", result, exc)
            return item.outcome(job=job, result=result, error=exc)
        error = await self._record(
            item, "succeeded", result, None, path=done.location, sha256=done.sha256,
            size=done.size,
        )  # fmt: skip
        return item.outcome(
            job=job, result=result, path=done.path, sha256=done.sha256, error=error,
            location=done.location,
        )  # fmt: skip

    def _record_soon(self, item: _Item[R], outcome: Outcome[R]) -> None:
        """The final row of a settled job without a download, written behind.

        The outcome goes to the caller before the row is durable: a crash in between leaves
        the row 'submitted', which a resume polls again (it never submits it again). A write
        that fails is logged with the job id, as ``_record`` does.
        """
        journal = self._journal
        assert isinstance(journal, Journal)
        error = outcome.error
        state: JournalState
        if isinstance(error, JobFailedError):
            state = "failed"
        elif isinstance(error, JobTimeoutError):
            state = "timed_out"
        elif isinstance(error, JobNotFoundError):
            state = "not_found"
        elif error is None:
            state = "succeeded"
        else:
            return  # polling itself failed: the row stays 'submitted' (re-attached on resume)
        result = outcome.result
        columns = error_columns(error)
        job_id = outcome.job.id if outcome.job is not None else None

        def failed(exc: JournalError) -> None:
            _logger.warning(
                "input %d: job %s could not be journaled as %s: %s", item.index, job_id, state, exc
            )

        try:
            journal.update_soon(
                item.key, item.occurrence, state, on_error=failed,
                status=result.status if result is not None else None,
                result=result_json(result), error_type=columns.error_type,
                error_message=columns.error_message, error_code=columns.error_code,
            )  # fmt: skip
        except JournalError as exc:
            failed(exc)

    async def _record(
        self, item: _Item[R], state: JournalState, *args: Any, **fields: Any
    ) -> JournalError | None:
        """Move the item's journal row to ``state``: ``(result, error)`` or explicit columns.

        Returns:
            None, or the ``JournalError`` of a failed write (logged at WARNING with the job
            id: a job the journal could not record must not go unreported).
        """
        if self._journal is None:
            return None
        if args:
            result, error = args
            columns = error_columns(error)
            fields.update(
                status=result.status if result is not None else None,
                result=result_json(result),
                error_type=columns.error_type,
                error_message=columns.error_message,
                error_code=columns.error_code,
            )
        try:
            await self._journal.update(item.key, item.occurrence, state, **fields)
        except JournalError as exc:
            job_id = fields.get("job_id") or (item.job.id if item.job is not None else None)
            _logger.warning(
                "input %d: job %s could not be journaled as %s: %s", item.index, job_id, state, exc
            )
            return exc
        return None

    # -- outcomes, events, credit -----------------------------------------------------------

    async def _emit(self, outcome: Outcome[R]) -> None:
        if self._finished(outcome):
            await self._send(outcome)

    def _finished(self, outcome: Outcome[R]) -> bool:
        """Count the outcome and report it; False when fail-fast stops the batch instead."""
        error = outcome.error
        self._counters.count(outcome)
        job_id = outcome.job.id if outcome.job else None
        status = outcome.result.status if outcome.result else None
        self._event(
            "finished", outcome.index, job_id=job_id, status=status, error=error, outcome=outcome
        )
        if error is not None and self._options.fail_fast:
            self.fail(error)
            return False
        return True

    async def _send(self, outcome: Outcome[R]) -> None:
        try:
            await self.send.send(outcome)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            self.cancel()  # nobody reads any more: the batch was closed

    def _send_nowait(self, outcome: Outcome[R]) -> bool | None:
        """Put the outcome in the stream if it has room: True; False if full; None if closed."""
        try:
            self.send.send_nowait(outcome)
        except anyio.WouldBlock:
            return False
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            self.cancel()
            return None
        return True

    def _report(self, index: int, kind: str, **data: Any) -> None:
        """An event from inside the client's retry loop: a raising hook stops the batch.

        (Its retries are in the statistics already: they come from the client's counters.)
        ``"sending"``: an attempt passed the rate controller and is being sent now.
        """
        if kind == "sending":
            self._counters.submits += 1
            self._counters.requests[data["name"]] += 1
            return
        try:
            self._event(cast("EventKind", kind), index, **data)
        except Exception as exc:
            self.fail(exc)

    def _event(self, kind: EventKind, index: int, **data: Any) -> None:
        hook = self._options.on_event
        if hook is not None:
            elapsed = anyio.current_time() - self._counters.started_at
            hook(BatchEvent(kind=kind, index=index, elapsed=elapsed, **data))

    async def _check_credit(self) -> None:
        await self._refresh_credit()
        balance = self._counters.credits_before = self._counters.credits_now
        if balance is not None and balance <= 0:
            self._credit_error = InsufficientCreditError(f"the credit balance is {balance:g}")

    async def _refresh_credit(self) -> None:
        self._counters.requests["quota"] += 1
        try:
            credit = await self._client._call(GET_CREDIT, CreditQuery())
        except AkoolError:
            return  # a balance is information, not a precondition: submits report real errors
        self._counters.credits_now = credit.credit

    def _client_counters(self) -> tuple[int, int]:
        stats = self._client.statistics()
        return sum(stats.retries.values()), stats.throttled

    # -- statistics -------------------------------------------------------------------------

    def statistics(self) -> BatchStatistics:
        """A snapshot of the batch (see ``BatchStatistics``)."""
        return self._counters.snapshot(
            total=self.total,
            polls=self._poller.requests,
            client=(
                self._counters.client_at_end
                or (self._client_counters() if self.started else self._counters.client_at_start)
            ),
            started=self.started,
            finished=self.finished,
        )


def _ask_again(state: JournalState, result: SwapResult | None) -> bool:
    """Whether a journaled job's state is not a final answer, so the server is asked again.

    Final: status 4 ('failed'), and a success whose URL is known. Everything else (still
    pending, timed out, left out by listbyids, a success without a URL) may have changed.
    """
    if state in ("submitted", "timed_out", "not_found"):
        return True
    return state in ("succeeded", "download_failed") and (result is None or not result.url)


async def _file_intact(record: JournalRecord) -> bool:
    """Whether the row's downloaded file is still there with its size and SHA-256."""
    if record.path is None or record.sha256 is None:
        return False
    path = anyio.Path(record.path)
    try:
        size = (await path.stat()).st_size
    except OSError:
        return False
    if record.size is not None and size != record.size:
        return False
    try:
        digest = await anyio.to_thread.run_sync(sha256_of_file, Path(record.path))
    except OSError:
        return False
    return digest == record.sha256


def _unwrap(exc: BaseException) -> BaseException:
    """The one real error inside (nested) single-exception groups."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc
