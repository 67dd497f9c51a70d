"""How a batch's requests finish: the poller hand-off, downloads, resumed rows, the outcomes.

Per request with a job::

    await_job: a waiter on the shared ``Poller`` (no task while the job is pending)
    wait_over: terminal status -> (final row, download) -> outcome -> the batch's stream

``wait_over`` runs on the event loop when the poller has the answer: it finishes the request
inline when there is nothing to await (the final row is written behind), else in a short task
(``finish``) that writes the row and downloads the result. A request whose journal row
already decides it (``resume``) is asked again, downloaded again, bound to its job through a
webhook reference, or given its recorded outcome. Outcomes go to a bounded memory stream;
a full stream slows the batch down instead of piling outcomes up.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import attrs
from anyio.streams.memory import MemoryObjectSendStream

from akool_async._errors import (
    AkoolError,
    AmbiguousSubmitError,
    ClientStateError,
    DownloadError,
    JobFailedError,
    JobNotFoundError,
    JobTimeoutError,
    ParameterError,
    StorageError,
)
from akool_async._models import SwapJob, SwapResult
from akool_async._storage import is_store_url

from ._batch_items import WAITING, BatchOptions, Item, Pending, RunControl
from ._download import sha256_of_file
from ._events import BatchCounters, Outcome, R
from ._journal import JournalRecord, JournalState
from ._ledger import Ledger
from ._records import job_from_record, rebuild_error, result_from_json
from ._result_store import check_stored, save_anywhere
from ._submitter import Submitter

if TYPE_CHECKING:
    from ._poller import Poller
    from ._seams import ClientSeam

__all__ = ["Completion"]


class Completion:
    """The finishing half of one batch (see the module docstring)."""

    def __init__(
        self,
        client: ClientSeam,
        poller: Poller,
        options: BatchOptions,
        counters: BatchCounters,
        submitter: Submitter,
        run: RunControl,
        send: MemoryObjectSendStream[Outcome[Any]],
    ) -> None:
        self._client = client
        self._poller = poller
        self._options = options
        self._counters = counters
        self._submitter = submitter
        self._run = run
        self._stream = send
        #: Set once the journal is open (``open_ledger``).
        self.ledger = Ledger()
        self._wait_over_method = self.wait_over  # one bound method for every waiter
        self._callback_context = contextvars.Context()
        #: Requests whose job is pending, by their waiter's future (no task meanwhile).
        self._waiting: dict[asyncio.Future[None], Item[Any]] = {}

    # -- the poller hand-off ----------------------------------------------------------------

    async def await_job(self, item: Item[R], job: SwapJob) -> Outcome[R] | Pending:
        """Hand the job to the poller; this request's task then ends (``WAITING``).

        A pending job costs a waiter, not a suspended task: with thousands pending, every
        object a task keeps alive is work for Python's cyclic garbage collector
        (``benchmarks/README.md``). ``wait_over`` takes over when the waiter is done.
        """
        item.slot.move("pending")
        item.job = job
        timeout = self._options.job_timeout
        deadline_at = self._submitter.deadline_at
        if deadline_at < math.inf:
            left = max(0.0, deadline_at - anyio.current_time())
            timeout = left if timeout is None else min(timeout, left)

        # Status reports only for a hook: a bound method is one object per pending job.
        on_status = item.status_changed if self._options.on_event is not None else None
        item.run = self._run
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
        return WAITING

    def wait_over(self, done: asyncio.Future[None]) -> None:
        """The poller has a pending job's answer: finish the request (on the event loop)."""
        item = self._waiting.pop(done, None)
        if item is None:
            return  # abandoned: the batch stopped meanwhile
        run, ledger = self._run, self.ledger
        if self._options.download_dir is not None or not ledger.behind:
            run.spawn(self.finish, item)
            return
        # Nothing left to await but the stream (the final row is written behind): no task
        # unless the stream is full.
        try:
            outcome = self._settle(item)
            ledger.record_soon(item, outcome)
            item.slot.move(None)
            report = self.finished(outcome)
        except Exception as exc:  # the user's on_event hook (or a bug): stop the batch
            run.done_with(item)
            run.fail(exc)
            return
        if report and self.send_nowait(outcome) is False:
            run.spawn(self._send_later, item, outcome)
            return
        run.done_with(item)

    async def finish(self, item: Item[R]) -> None:
        """Record, download and emit a request whose job the poller answered."""
        try:
            outcome = await self._after_wait(item)
            item.slot.move(None)
            await self.emit(outcome)
        except Exception as exc:  # the user's on_event hook (or a bug): the first one wins
            self._run.fail(exc)
        finally:
            self._run.done_with(item)

    async def _send_later(self, item: Item[R], outcome: Outcome[R]) -> None:
        try:
            await self.send(outcome)
        finally:
            self._run.done_with(item)

    def abandon_waiting(self) -> None:
        """The batch stopped: stop polling for its pending jobs (their rows stay 'submitted')."""
        waiting, self._waiting = self._waiting, {}
        for done, item in waiting.items():
            done.remove_done_callback(self._wait_over_method)
            assert item.job is not None
            assert item.waiter is not None
            self._poller.release(item.job.id, item.waiter)
            self._run.done_with(item)

    def _settle(self, item: Item[R]) -> Outcome[R]:
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

    async def _after_wait(self, item: Item[R]) -> Outcome[R]:
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
            await self.ledger.record(item, state, result, error)  # a failure logs it, at least
            return outcome
        if error is not None:
            return outcome
        assert job is not None
        assert result is not None
        if self._options.download_dir is not None:
            return await self._fetch(item, job, result)
        journal_error = await self.ledger.record(item, "succeeded", result, None)
        return outcome if journal_error is None else attrs.evolve(outcome, error=journal_error)

    async def _fetch(self, item: Item[R], job: SwapJob, result: SwapResult) -> Outcome[R]:
        assert self._options.download_dir is not None
        item.slot.move("downloading")

        def on_retry(attempt: int, delay: float, exc: DownloadError) -> None:
            self._counters.retries += 1
            self._run.event(
                "retried", item.index, job_id=job.id, error=exc, attempt=attempt, delay=delay
            )

        self._counters.requests["download"] += 1
        try:
            done = await save_anywhere(
                self._client,
                result,
                self._options.download_dir,
                deadline=self._submitter.deadline_at,
                total_timeout=self._options.download_timeout,
                retry=self._options.download_retry,
                on_retry=on_retry,
                min_rate=self._options.download_floor,
            )
        except (DownloadError, ClientStateError, StorageError) as exc:
            await self.ledger.record(item, "download_failed", result, exc)
            return item.outcome(job=job, result=result, error=exc)
        error = await self.ledger.record(
            item, "succeeded", result, None, path=done.location, sha256=done.sha256,
            size=done.size,
        )  # fmt: skip
        return item.outcome(
            job=job, result=result, path=done.path, sha256=done.sha256, error=error,
            location=done.location,
        )  # fmt: skip

    # -- resumed rows, ambiguous submits ----------------------------------------------------

    async def resume(self, item: Item[R], record: JournalRecord) -> Outcome[R] | Pending | None:
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
            return await self.await_job(item, job)  # not a final answer: ask the server
        error = rebuild_error(record, item.request, result)
        if state in ("ambiguous", "submitting"):
            if not isinstance(error, AmbiguousSubmitError):
                why = str(error) if error else "interrupted while it may have reached AKOOL"
                error = AmbiguousSubmitError(f"the submit was {why}", request=item.request)
            outcome = item.outcome(job=job, error=error)
            item.ref = record.ref  # with webhooks, its job's callback may still come
            if self._submitter.resolvable(item):
                self._run.spawn(self.bind_reference, item, outcome)
                return WAITING
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

    async def bind_reference(self, item: Item[R], ambiguous: Outcome[R]) -> None:
        """Wait for a callback naming the item's reference; bind the request to its job."""
        handed_off = False
        try:
            job_id = await self._submitter.bound_job(item)
            if job_id is None:
                outcome: Outcome[R] | Pending = ambiguous
            else:
                request = item.request
                job = SwapJob(id=job_id, kind=request.kind, media=request.media)
                error = await self.ledger.record(
                    item, "submitted", job_id=job_id, media=str(job.media), error_type=None,
                    error_message=None, error_code=None,
                )  # fmt: skip
                if error is not None:
                    outcome = item.outcome(job=job, error=error)
                else:
                    self._counters.resolved += 1
                    self._run.event("submitted", item.index, job_id=job_id)
                    outcome = await self.await_job(item, job)
            if outcome is WAITING:
                handed_off = True
                return
            assert isinstance(outcome, Outcome)
            item.slot.move(None)
            await self.emit(outcome)
        except Exception as exc:  # the user's on_event hook (or a bug): the first one wins
            self._run.fail(exc)
        finally:
            if not handed_off:
                self._run.done_with(item)

    # -- outcomes ---------------------------------------------------------------------------

    async def emit(self, outcome: Outcome[R]) -> None:
        if self.finished(outcome):
            await self.send(outcome)

    def finished(self, outcome: Outcome[R]) -> bool:
        """Count the outcome and report it; False when fail-fast stops the batch instead."""
        error = outcome.error
        self._counters.count(outcome)
        job_id = outcome.job.id if outcome.job else None
        status = outcome.result.status if outcome.result else None
        self._run.event(
            "finished", outcome.index, job_id=job_id, status=status, error=error, outcome=outcome
        )
        if error is not None and self._options.fail_fast:
            self._run.fail(error)
            return False
        return True

    async def send(self, outcome: Outcome[R]) -> None:
        try:
            await self._stream.send(outcome)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            self._run.cancel()  # nobody reads any more: the batch was closed

    def send_nowait(self, outcome: Outcome[R]) -> bool | None:
        """Put the outcome in the stream if it has room: True; False if full; None if closed."""
        try:
            self._stream.send_nowait(outcome)
        except anyio.WouldBlock:
            return False
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            self._run.cancel()
            return None
        return True


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
