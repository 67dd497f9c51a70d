"""The engine of ``swap_many``: bounded fan-out, journaled submits, shared polling, downloads.

One ``BatchRun`` runs as a single task in the client's task group (never in the caller's
async generator frame). ``concurrency`` worker tasks read the input lazily, one request at a
time, but only while fewer than ``max_pending`` requests are unfinished (back-pressure: the
workers stop reading at the cap), and submit it. A worker then hands the job to the client's
shared ``Poller`` (``Poller.watch``) and takes the next request: a pending job costs a waiter,
not a task. When the poller has the job's answer, ``Completion.wait_over`` finishes the
request: inline when there is nothing to await, else in a short task that writes the journal
row and downloads the result. Its ``Outcome`` goes to a bounded memory stream that ``Batch``
(``_orchestrator.py``) reads for the caller; a slow caller therefore also slows the batch down
instead of piling outcomes up.

The run owns the lifetime, the workers, admission and the events; its parts own the rest:

* ``Submitter`` (``_submitter.py``): the stop rules, resubmits after 1005, the journaled send;
* ``Completion`` (``_completion.py``): the poller hand-off, downloads, resumed rows, outcomes;
* ``Ledger`` (``_ledger.py``): the journal as the batch sees it (a no-op without a journal);
* ``_batch_items.py``: ``BatchOptions``, the input readers, one request's ``Item``.

They reach back into the run only through ``RunControl`` (``event``, ``fail``, ``spawn``...).

Per request, with a journal (``_journal.py``)::

    admit (find its row) -> recorded outcome / re-attach to its job / submit
    submit: 'submitting' (durable) -> send -> 'submitted' + job id (durable) -> wait
    wait:   terminal status (+ download) -> final row -> outcome

Stopping. Cancelling the batch (``aclose``, a break out of ``async with``, the caller's
cancellation, the client closing) cancels every task and stops polling for the pending jobs
(their rows stay 'submitted', so a resume re-attaches to them). Submits are the exception:
each runs in a shielded scope (``_submitter._Flight``), and the client calls
``submit_sending`` right before an attempt's request goes out. At the stop, a submit that
was sent gets ``cancel_grace`` seconds for its answer (its job id is journaled); one that
was not (waiting at the throttle gate, for a token, in backoff after a refusal) is abandoned
at once and journaled 'unsent'. Only a submit still without an answer after its grace stays
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
import functools
import logging
from collections.abc import AsyncIterable, Callable, Iterable, Sized
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any, Generic, cast

import anyio
from anyio.abc import TaskGroup

from akool_async._errors import (
    AmbiguousSubmitError,
    ClientStateError,
    JournalError,
    ValidationError,
)
from akool_async._requester import submit_events

from ._batch_items import WAITING, BatchOptions, ClaimReader, Item, Pending, Reader, Slot, unwrap
from ._completion import Completion
from ._events import (
    BatchCounters,
    BatchEvent,
    BatchStatistics,
    EventKind,
    Outcome,
    R,
)
from ._ledger import Ledger, open_ledger
from ._records import submit_endpoint
from ._submitter import Submitter, Webhooks

if TYPE_CHECKING:
    from ._journal_pg import Claim
    from ._poller import Poller
    from ._seams import ClientSeam

__all__ = ["BatchOptions", "BatchRun"]

_log = logging.getLogger("akool_async.batch")


class BatchRun(Generic[R]):
    """One running ``swap_many`` batch (see the module docstring)."""

    def __init__(
        self,
        client: ClientSeam,
        poller: Poller,
        requests: Iterable[R] | AsyncIterable[R],
        options: BatchOptions,
        orchestrator: Webhooks | None = None,
    ) -> None:
        self._client = client
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
        self._ledger = Ledger()
        # asyncio's semaphore, not anyio's: an uncontended acquire does not yield to the loop
        # (anyio's is a full checkpoint); the submit path checks for cancellation itself.
        self._admission = asyncio.Semaphore(options.max_pending)
        self._tg: TaskGroup | None = None
        #: Requests read and not finished; ``_drained`` is set when that reaches 0.
        self._unfinished = 0
        self._drained: anyio.Event | None = None
        self._counters = BatchCounters()
        self._input_done = False
        self._submitter = Submitter(client, orchestrator, options, self._counters, self)
        self._completion = Completion(
            client, poller, options, self._counters, self._submitter, self, self.send
        )

    # -- lifetime ---------------------------------------------------------------------------

    async def main(self) -> None:
        """The batch's one task in the client's task group; never raises into it."""
        counters = self._counters
        counters.started_at = anyio.current_time()
        if self._options.deadline is not None:
            self._submitter.deadline_at = counters.started_at + self._options.deadline
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
                # Outside the work scope: cleanup writes of cancelled tasks still land.
                ledger = await open_ledger(stack, options, self._client.base_url)
                self._ledger = self._submitter.ledger = self._completion.ledger = ledger
                reader = await ledger.reader(self._requests, self._client._shared.rate, stack)
                if isinstance(reader, ClaimReader):
                    self.total = reader.total  # a shared batch reads the whole input first
                with self.scope:
                    if options.check_credit:
                        await self._submitter.check_credit()
                    try:
                        async with anyio.create_task_group() as tg:
                            self._tg = tg  # for requests finishing with something to await
                            async with anyio.create_task_group() as workers:
                                for _ in range(options.concurrency):
                                    workers.start_soon(self._worker, reader)
                            self._input_done = True
                            self.tighten()
                            # Pending jobs have no task: keep the group open until they end.
                            if self._unfinished:
                                self._drained = anyio.Event()
                                await self._drained.wait()
                    finally:
                        self._tg = None
                        self._completion.abandon_waiting()
            if options.check_credit and not self.scope.cancel_called:
                await self._submitter.refresh_credit()
        except anyio.get_cancelled_exc_class():
            if not self.closing and self.failure is None:
                self.failure = ClientStateError("the client was closed while the batch ran")
            raise
        except Exception as exc:  # a bug, the input iterator, or an on_event hook
            if self.failure is None:
                self.failure = unwrap(exc)
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

    def cancel(self) -> None:
        """Stop the batch (from the event loop thread)."""
        self.closing = True
        self._submitter.stop()
        self.scope.cancel()

    def fail(self, error: BaseException) -> None:
        """Stop the batch and have the iterator raise ``error`` once outcomes are drained."""
        if self.failure is None:
            self.failure = error
        self._submitter.stop()
        self.scope.cancel()

    @property
    def grace(self) -> float:
        """Seconds a stop waits for the answers of submits already sent."""
        return self._options.cancel_grace

    def stop_submits(self) -> None:
        """A graceful stop of the submits (``Submitter.stop``)."""
        self._submitter.stop()

    # -- feeding ----------------------------------------------------------------------------

    async def _worker(self, reader: Reader[R] | ClaimReader[R]) -> None:
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
        item = Item(index, request, Slot(self._counters.states), claim)
        # This task's own context: the client reports this request's sends and retries
        # through it.
        submit_events.set(functools.partial(self._report, index))
        handed_off = False
        try:
            outcome = await self._resolve(item)
            if outcome is WAITING:
                handed_off = True  # wait_over() finishes it when the poller has its answer
                return
            item.slot.move(None)
            await self._completion.emit(outcome)
        finally:
            if not handed_off:
                self.done_with(item)

    def spawn(self, func: Callable[..., Any], item: Item[Any], *args: Any) -> None:
        """Run ``func(item, *args)`` in the batch's group; the item is given up if it closed."""
        if self._tg is not None:
            try:
                self._tg.start_soon(func, item, *args)
                return
            except RuntimeError:  # the group is closing
                pass
        self.done_with(item)  # the batch ended under this answer: nobody takes its outcome

    def done_with(self, item: Item[Any]) -> None:
        """The request is finished (or abandoned): free its place under ``max_pending``."""
        item.slot.move(None)
        self._admission.release()
        self._unfinished -= 1
        if self._unfinished == 0 and self._drained is not None:
            self._drained.set()
        elif self._submitter.ambiguous:
            self.tighten()

    def tighten(self) -> None:
        """Only ambiguous submits are left: they wait ``ambiguous_wait`` more at most."""
        wait = self._options.ambiguous_wait
        scopes = self._submitter.ambiguous
        if not (self._input_done and scopes and self._unfinished <= len(scopes)) or wait is None:
            return
        until = anyio.current_time() + wait
        for scope in scopes:
            scope.deadline = min(scope.deadline, until)

    # -- one request ------------------------------------------------------------------------

    async def _resolve(self, item: Item[R]) -> Outcome[R] | Pending:
        """Admit the request (find its row), then resume it from the row or submit it."""
        if item.claim is not None:
            return await self._resolve_claimed(item, item.claim)
        ledger = self._ledger
        try:
            ledger.identify(item)
        except ValidationError as exc:
            return item.outcome(error=exc)
        try:
            record = await ledger.admit(item)
        except JournalError as exc:
            return item.outcome(error=exc)
        if record is not None:
            resumed = await self._completion.resume(item, record)
            if resumed is not None:
                return resumed
        job = await self._submitter.submit(item)
        if isinstance(job, Outcome):
            if isinstance(job.error, AmbiguousSubmitError) and item.ref is not None:
                if self._submitter.resolvable(item):
                    self.spawn(self._completion.bind_reference, item, job)
                    return WAITING
                self._submitter.forget(item)
            return job
        return await self._completion.await_job(item, job)

    async def _resolve_claimed(self, item: Item[R], claim: Claim) -> Outcome[R] | Pending:
        """A request leased from a shared journal: its row decides, as on a resume."""
        ledger = self._ledger
        ledger.identify_claimed(item, claim)
        try:
            submit_endpoint(item.request)
        except ValidationError as exc:
            try:
                await ledger.record_unsubmitted(item, "rejected", exc)
            except JournalError as journal_error:
                return item.outcome(error=journal_error)
            return item.outcome(error=exc)
        if claim.record is not None:
            resumed = await self._completion.resume(item, claim.record)
            if resumed is not None:
                return resumed
        job = await self._submitter.submit(item)
        if isinstance(job, Outcome):
            return job
        return await self._completion.await_job(item, job)

    # -- events, statistics -----------------------------------------------------------------

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
            self.event(cast("EventKind", kind), index, **data)
        except Exception as exc:
            self.fail(exc)

    def event(self, kind: EventKind, index: int, **data: Any) -> None:
        """Call the ``on_event`` hook, if any (a raising hook: the caller decides)."""
        hook = self._options.on_event
        if hook is not None:
            elapsed = anyio.current_time() - self._counters.started_at
            hook(BatchEvent(kind=kind, index=index, elapsed=elapsed, **data))

    def _client_counters(self) -> tuple[int, int]:
        stats = self._client.statistics()
        return sum(stats.retries.values()), stats.throttled

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
