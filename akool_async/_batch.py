"""The engine of ``swap_many``: bounded fan-out, journaled submits, shared polling, downloads.

One ``BatchRun`` runs as a single task in the client's task group (never in the caller's
async generator frame). It reads the input lazily: a feeder takes one request at a time and
starts one task for it, but only while fewer than ``max_pending`` requests are unfinished
(back-pressure: the feeder stops reading at the cap); at most ``concurrency`` of those tasks
submit at once (a ``CapacityLimiter``). Each task then waits for its job through the client's
shared ``Poller`` and, if asked, downloads the result. Its ``Outcome`` goes to a bounded
memory stream that ``Batch`` (``_orchestrator.py``) reads for the caller; a slow caller
therefore also slows the batch down instead of piling outcomes up.

Per request, with a journal (``_journal.py``)::

    admit (find its row) -> recorded outcome / re-attach to its job / submit
    submit: 'submitting' (durable) -> send -> 'submitted' + job id (durable) -> wait
    wait:   terminal status (+ download) -> final row -> outcome

Stopping. Cancelling the batch (``aclose``, a break out of ``async with``, the caller's
cancellation) cancels every task at once: a request whose submit was in flight may have
created a job, so its row stays 'submitting' and a resume reports it as ambiguous; a request
that had recorded 'submitting' but had not started sending is marked 'unsent'. Running out of
credit (1006, or a balance <= 0 before the start) and the batch ``deadline`` stop *admitting*
instead: submits in flight finish, submitted jobs go on being awaited (credit case) or time out
(deadline case), and every request not yet submitted gets an error outcome without a submit.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
from collections import Counter
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sized,
)
from contextlib import AsyncExitStack
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Generic

import anyio
import attrs
from anyio.abc import TaskGroup

from . import _errors
from ._download import DOWNLOAD_RETRY, download, file_name
from ._endpoints import (
    FACESWAP_IMAGE,
    FACESWAP_PLUS,
    FACESWAP_PRO,
    FACESWAP_VIDEO,
    GET_CREDIT,
    Endpoint,
)
from ._errors import (
    AkoolError,
    AmbiguousSubmitError,
    APIError,
    AuthenticationError,
    ClientStateError,
    InsufficientCreditError,
    JobError,
    JobFailedError,
    JobNotFoundError,
    JobTimeoutError,
    JournalError,
    RateLimitError,
    ServerError,
    TransportError,
    ValidationError,
)
from ._events import (
    BatchDeadlineError,
    BatchEvent,
    BatchStatistics,
    DownloadError,
    EventKind,
    Outcome,
    R,
)
from ._journal import Journal, JournalRecord, JournalState
from ._models import CreditQuery, MediaType, SwapJob, SwapResult
from ._retry import RetryPolicy
from ._wire import build_request, converter

if TYPE_CHECKING:
    from ._client import AsyncClient
    from ._poller import Poller

__all__ = ["BatchOptions", "BatchRun", "request_key"]

_SUBMIT_ENDPOINTS: Final[Mapping[type[Any], Endpoint[Any, SwapJob]]] = {
    endpoint.request_type: endpoint
    for endpoint in (FACESWAP_PLUS, FACESWAP_PRO, FACESWAP_IMAGE, FACESWAP_VIDEO)
}
#: Resubmits of one request after the client gave up on 1005 (each waits at least a backoff).
_THROTTLE_RESUBMITS: Final = 8
_RESUBMIT_BACKOFF: Final = RetryPolicy(initial_delay=1.0, max_delay=30.0)
_ERROR_TYPES: Final[Mapping[str, type[AkoolError]]] = {
    **{
        name: obj
        for name in _errors.__all__
        if isinstance(obj := getattr(_errors, name), type) and issubclass(obj, AkoolError)
    },
    "DownloadError": DownloadError,
    "BatchDeadlineError": BatchDeadlineError,
}


def request_key(request: object) -> tuple[str, str]:
    """``(key, canonical JSON)`` of a swap request: what identifies it in a journal.

    The canonical JSON is the endpoint name plus the request's wire body with sorted keys;
    ``webhookUrl`` is left out (where callbacks go is delivery, not the job itself).

    Raises:
        ValidationError: ``request`` is not a PlusSwap, ProSwap, ImageSwap or VideoSwap.
    """
    endpoint = _SUBMIT_ENDPOINTS.get(type(request))
    if endpoint is None:
        raise ValidationError(
            f"swap_many takes PlusSwap, ProSwap, ImageSwap or VideoSwap requests, "
            f"not {type(request).__name__}",
            field="requests",
        )
    body = dict(build_request(endpoint, request).json or {})
    body.pop("webhookUrl", None)
    text = json.dumps(
        {"endpoint": endpoint.name, "body": body},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=_json_default,
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest(), text


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _result_json(result: SwapResult | None) -> str | None:
    if result is None:
        return None
    return json.dumps(converter.unstructure(result), default=_json_default, sort_keys=True)


def _error_columns(error: AkoolError | None) -> dict[str, object]:
    if error is None:
        return {"error_type": None, "error_message": None, "error_code": None}
    if isinstance(error, APIError):
        return {
            "error_type": type(error).__name__,
            "error_message": error.message,
            "error_code": error.code,
        }
    return {"error_type": type(error).__name__, "error_message": str(error), "error_code": None}


def _rebuild_error(
    record: JournalRecord, request: object, result: SwapResult | None
) -> AkoolError | None:
    """The exception a journal row recorded, rebuilt (same class, message and code)."""
    if record.error_type is None:
        return None
    cls = _ERROR_TYPES.get(record.error_type, AkoolError)
    message = record.error_message or ""
    if issubclass(cls, JobError):
        return cls(message, job_id=record.job_id or "", result=result)
    if issubclass(cls, APIError):
        return cls(message, code=record.error_code)
    if issubclass(cls, AmbiguousSubmitError):
        return cls(message, request=request)
    if issubclass(cls, DownloadError):
        return cls(message, url=result.url if result and result.url else "", reason=message)
    if issubclass(cls, ValidationError | TransportError | BatchDeadlineError | JournalError):
        return cls(message)
    return AkoolError(message)


def _unsent(error: AkoolError) -> bool:
    """Whether a failed submit provably left the server untouched (safe to resubmit later)."""
    if isinstance(error, AmbiguousSubmitError):
        return False
    if isinstance(error, ServerError):
        return error.status == 503  # the client treats 503 as a refusal without action
    return isinstance(
        error,
        ValidationError
        | TransportError
        | RateLimitError
        | InsufficientCreditError
        | AuthenticationError
        | ClientStateError
        | JournalError
        | BatchDeadlineError,
    )


@attrs.frozen(kw_only=True)
class BatchOptions:
    """The knobs of one ``swap_many`` call (validated there)."""

    concurrency: int
    max_pending: int
    job_timeout: float | None
    deadline: float | None
    journal: Path | None
    download_dir: Path | None
    fail_fast: bool
    resubmit_ambiguous: bool
    check_credit: bool
    on_event: Callable[[BatchEvent], None] | None
    download_retry: RetryPolicy = DOWNLOAD_RETRY
    buffer: int = 64


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


class BatchRun(Generic[R]):
    """One running ``swap_many`` batch (see the module docstring)."""

    def __init__(
        self,
        client: AsyncClient,
        poller: Poller,
        requests: Iterable[R] | AsyncIterable[R],
        options: BatchOptions,
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
        self._journal: Journal | None = None
        self._submit_limiter = anyio.CapacityLimiter(options.concurrency)
        self._admission = anyio.Semaphore(options.max_pending)
        self._started_at = 0.0
        self._finished_at: float | None = None
        self._deadline_at = math.inf
        self._credit_error: InsufficientCreditError | None = None
        self._counts: Counter[str] = Counter()
        self._requests_made: Counter[str] = Counter()
        self._read = 0
        self._submits = 0
        self._retries = 0
        self._credits_before: float | None = None
        self._credits_now: float | None = None
        self._poller_requests_at_start = 0
        self._client_stats_at_start: tuple[int, int] = (0, 0)
        self._client_stats_at_end: tuple[int, int] | None = None

    # -- lifetime ---------------------------------------------------------------------------

    async def main(self) -> None:
        """The batch's one task in the client's task group; never raises into it."""
        self._started_at = anyio.current_time()
        if self._options.deadline is not None:
            self._deadline_at = self._started_at + self._options.deadline
        self._poller_requests_at_start = self._poller.requests
        self._client_stats_at_start = self._client_counters()
        try:
            async with AsyncExitStack() as stack:
                if self._options.journal is not None:
                    # Outside the work scope: cleanup writes of cancelled tasks still land.
                    self._journal = await stack.enter_async_context(
                        Journal(self._options.journal, base_url=self._client.base_url)
                    )
                with self.scope:
                    if self._options.check_credit:
                        await self._check_credit()
                    async with anyio.create_task_group() as tg:
                        await self._feed(tg)
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
            self._finished_at = anyio.current_time()
            self._client_stats_at_end = self._client_counters()
            self.finished = True
            self.send.close()
            self.done.set()

    def cancel(self) -> None:
        """Stop the batch (from the event loop thread)."""
        self.closing = True
        self.scope.cancel()

    def fail(self, error: BaseException) -> None:
        """Stop the batch and have the iterator raise ``error`` once outcomes are drained."""
        if self.failure is None:
            self.failure = error
        self.scope.cancel()

    # -- feeding ----------------------------------------------------------------------------

    async def _feed(self, tg: TaskGroup) -> None:
        # A slot is taken *before* the next request is read, so at the cap the input is not
        # read at all (back-pressure reaches a generator, a file, a database cursor...).
        requests = self._requests
        sync_iter: Iterator[R] | None = None
        async_iter: AsyncIterator[R] | None = None
        if isinstance(requests, Iterable):
            sync_iter = iter(requests)
        else:
            async_iter = aiter(requests)
        index = 0
        while True:
            await self._admission.acquire()
            try:
                if sync_iter is not None:
                    request = next(sync_iter)
                else:
                    assert async_iter is not None
                    request = await anext(async_iter)
            except (StopIteration, StopAsyncIteration):
                self._admission.release()
                return
            except BaseException:
                self._admission.release()
                raise
            self._start_job(tg, index, request)
            index += 1

    def _start_job(self, tg: TaskGroup, index: int, request: R) -> None:
        self._read += 1
        tg.start_soon(self._job, index, request, _Slot(self._counts))

    async def _job(self, index: int, request: R, slot: _Slot) -> None:
        try:
            outcome = await self._resolve(index, request, slot)
            slot.move(None)
            await self._emit(outcome)
        finally:
            slot.move(None)
            self._admission.release()

    # -- one request ------------------------------------------------------------------------

    async def _resolve(self, index: int, request: R, slot: _Slot) -> Outcome[R]:
        try:
            key, text = request_key(request)
        except ValidationError as exc:
            return Outcome(request=request, index=index, error=exc)
        occurrence = 0
        journal = self._journal
        if journal is not None:
            try:
                occurrence, record = await journal.admit(key)
            except JournalError as exc:
                return Outcome(request=request, index=index, error=exc)
            if record is not None:
                resumed = await self._from_record(index, request, record, slot)
                if resumed is not None:
                    return resumed
        submitted = await self._submit(index, request, key, occurrence, text, slot)
        if isinstance(submitted, Outcome):
            return submitted
        return await self._await_job(index, request, submitted, key, occurrence, slot)

    async def _from_record(
        self, index: int, request: R, record: JournalRecord, slot: _Slot
    ) -> Outcome[R] | None:
        """The outcome a journal row already decides, or None to submit the request."""
        state = record.state
        if state == "unsent" or (state == "ambiguous" and self._options.resubmit_ambiguous):
            return None
        job = None
        if record.job_id is not None:
            job = SwapJob(
                id=record.job_id,
                job_id=record.job_ref,
                url=record.job_url,
                kind=request.kind,
                media=MediaType(record.media or request.media),
            )
        if state in ("submitted", "timed_out") and job is not None:
            return await self._await_job(
                index, request, job, record.key, record.occurrence, slot, resumed=True
            )
        result = None
        if record.result is not None:
            result = converter.structure(json.loads(record.result), SwapResult)
        if state == "ambiguous" or state == "submitting":
            error = _rebuild_error(record, request, result) or AmbiguousSubmitError(
                "the submit was interrupted while it may have reached AKOOL", request=request
            )
            if not isinstance(error, AmbiguousSubmitError):
                error = AmbiguousSubmitError(str(error), request=request)
            return Outcome(request=request, index=index, job=job, error=error, resumed=True)
        wants_file = self._options.download_dir is not None and result is not None
        if state in ("succeeded", "download_failed") and wants_file and job is not None:
            have = record.path is not None and await anyio.Path(record.path).is_file()
            if state == "download_failed" or not have:
                assert result is not None
                return await self._fetch(
                    index, request, job, result, record.key, record.occurrence, slot, True
                )
        return Outcome(
            request=request,
            index=index,
            job=job,
            result=result,
            error=_rebuild_error(record, request, result),
            path=Path(record.path) if record.path else None,
            sha256=record.sha256,
            resumed=True,
        )

    def _stop_error(self) -> AkoolError | None:
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

    async def _submit(
        self, index: int, request: R, key: str, occurrence: int, text: str, slot: _Slot
    ) -> SwapJob | Outcome[R]:
        endpoint = _SUBMIT_ENDPOINTS[type(request)]
        journal = self._journal
        throttles = 0
        while True:
            error: AkoolError | None = None
            async with self._submit_limiter:
                error = self._stop_error()
                if error is None:
                    slot.move("submitting")
                    sending = False
                    try:
                        if journal is not None:
                            await journal.begin_submit(
                                key, occurrence, index=index, kind=type(request).__name__,
                                request=text,
                            )  # fmt: skip
                        sending = True  # from here on the request may reach AKOOL
                        self._submits += 1
                        self._requests_made[endpoint.name] += 1
                        job = await self._client._call(endpoint, request)
                    except AkoolError as exc:
                        slot.move("waiting_input")
                        error = exc
                    except BaseException:
                        if journal is not None and not sending:
                            await self._shielded_unsent(key, occurrence, index, request, text)
                        raise
                    else:
                        slot.move("pending")
                        break
            if isinstance(error, RateLimitError) and throttles < _THROTTLE_RESUBMITS:
                # The client already waited at the shared gate and gave up; 1005 is a
                # refusal without action, so trying again later cannot create a second job.
                throttles += 1
                delay = _RESUBMIT_BACKOFF.delay(throttles - 1, retry_after=error.retry_after)
                self._event("throttled", index, error=error, attempt=throttles, delay=delay)
                await anyio.sleep(delay)
                self._retries += 1
                self._event("retried", index, error=error, attempt=throttles + 1)
                continue
            if isinstance(error, InsufficientCreditError) and self._credit_error is None:
                self._credit_error = error  # stop admitting; jobs already paid for go on
                await self._refresh_credit()
            return await self._submit_failed(index, request, key, occurrence, text, error)
        await self._journal_write(
            key,
            occurrence,
            "submitted",
            job_id=job.id,
            job_ref=job.job_id,
            media=str(job.media),
            job_url=job.url,
        )
        self._event("submitted", index, job_id=job.id)
        return job

    async def _shielded_unsent(
        self, key: str, occurrence: int, index: int, request: R, text: str
    ) -> None:
        """Cancelled before sending: record that nothing went out (best effort)."""
        assert self._journal is not None
        with anyio.CancelScope(shield=True):
            # If even this fails, the row stays 'submitting' and a resume reports it as
            # ambiguous: safe, merely pessimistic.
            with contextlib.suppress(JournalError):
                await self._journal.record_unsubmitted(
                    key, occurrence, index=index, kind=type(request).__name__, request=text,
                    state="unsent", error_type=None, error_message="cancelled before sending",
                )  # fmt: skip

    async def _submit_failed(
        self, index: int, request: R, key: str, occurrence: int, text: str, error: AkoolError
    ) -> Outcome[R]:
        state: JournalState
        if isinstance(error, AmbiguousSubmitError):
            state = "ambiguous"
        elif _unsent(error):
            state = "unsent"
        else:
            state = "rejected"
        if self._journal is not None and not isinstance(error, JournalError):
            code = error.code if isinstance(error, APIError) else None
            message = error.message if isinstance(error, APIError) else str(error)
            try:
                await self._journal.record_unsubmitted(
                    key, occurrence, index=index, kind=type(request).__name__, request=text,
                    state=state, error_type=type(error).__name__, error_message=message,
                    error_code=code,
                )  # fmt: skip
            except JournalError as exc:
                error = exc
        return Outcome(request=request, index=index, error=error)

    async def _await_job(
        self,
        index: int,
        request: R,
        job: SwapJob,
        key: str,
        occurrence: int,
        slot: _Slot,
        *,
        resumed: bool = False,
    ) -> Outcome[R]:
        slot.move("pending")
        timeout = self._options.job_timeout
        if self._deadline_at < math.inf:
            left = max(0.0, self._deadline_at - anyio.current_time())
            timeout = left if timeout is None else min(timeout, left)

        def on_status(result: SwapResult) -> None:
            try:
                self._event("status_changed", index, job_id=job.id, status=result.status)
            except Exception as exc:  # the user's hook, called from the shared poller
                self.fail(exc)

        state: JournalState
        result: SwapResult | None = None
        try:
            result = await self._poller.wait(
                job.id, media=job.media, timeout=timeout, on_status=on_status
            )
        except (JobFailedError, JobTimeoutError, JobNotFoundError) as exc:
            state = (
                "failed"
                if isinstance(exc, JobFailedError)
                else "timed_out"
                if isinstance(exc, JobTimeoutError)
                else "not_found"
            )
            last = exc.result if isinstance(exc.result, SwapResult) else None
            await self._journal_write(
                key, occurrence, state, status=last.status if last else None,
                result=_result_json(last), **_error_columns(exc),
            )  # fmt: skip
            return Outcome(
                request=request, index=index, job=job, result=last, error=exc, resumed=resumed
            )
        except AkoolError as exc:
            # Polling itself failed (credentials, client closed): the job may still finish,
            # so its row stays 'submitted' and a resume re-attaches to it.
            return Outcome(request=request, index=index, job=job, error=exc, resumed=resumed)
        if self._options.download_dir is not None:
            return await self._fetch(index, request, job, result, key, occurrence, slot, resumed)
        await self._journal_write(
            key, occurrence, "succeeded", status=result.status, result=_result_json(result),
            **_error_columns(None),
        )  # fmt: skip
        return Outcome(request=request, index=index, job=job, result=result, resumed=resumed)

    async def _fetch(
        self,
        index: int,
        request: R,
        job: SwapJob,
        result: SwapResult,
        key: str,
        occurrence: int,
        slot: _Slot,
        resumed: bool,
    ) -> Outcome[R]:
        assert self._options.download_dir is not None
        slot.move("downloading")
        error: AkoolError | None = None
        path: Path | None = None
        sha256: str | None = None
        if not result.url:
            error = DownloadError(
                f"job {job.id} succeeded without a result URL", url="", reason="no URL"
            )
        else:
            url = result.url

            def on_retry(attempt: int, delay: float, exc: DownloadError) -> None:
                self._retries += 1
                self._event(
                    "retried", index, job_id=job.id, error=exc, attempt=attempt, delay=delay
                )

            destination = self._options.download_dir / file_name(job.id, url)
            with anyio.move_on_after(self._deadline_at - anyio.current_time()) as scope:
                try:
                    self._requests_made["download"] += 1
                    done = await download(
                        self._client._session(),
                        url,
                        destination,
                        retry=self._options.download_retry,
                        on_retry=on_retry,
                    )
                    path, sha256 = done.path, done.sha256
                except (DownloadError, ClientStateError) as exc:
                    error = exc
            if scope.cancelled_caught:
                error = DownloadError(
                    f"the batch deadline passed while downloading {url}",
                    url=url,
                    reason="deadline",
                )
        await self._journal_write(
            key, occurrence, "succeeded" if error is None else "download_failed",
            status=result.status, result=_result_json(result), path=str(path) if path else None,
            sha256=sha256, **_error_columns(error),
        )  # fmt: skip
        return Outcome(
            request=request,
            index=index,
            job=job,
            result=result,
            error=error,
            path=path,
            sha256=sha256,
            resumed=resumed,
        )

    async def _journal_write(
        self, key: str, occurrence: int, state: JournalState, **fields: object
    ) -> None:
        if self._journal is not None:
            await self._journal.update(key, occurrence, state, **fields)

    # -- outcomes, events, credit -----------------------------------------------------------

    async def _emit(self, outcome: Outcome[R]) -> None:
        error = outcome.error
        if error is None:
            self._counts["succeeded"] += 1
        elif isinstance(error, JobFailedError):
            self._counts["failed"] += 1
        elif isinstance(error, AmbiguousSubmitError):
            self._counts["ambiguous"] += 1
        else:
            self._counts["errored"] += 1
            if isinstance(error, TimeoutError):
                self._counts["timed_out"] += 1
        if outcome.resumed:
            self._counts["resumed"] += 1
        job_id = outcome.job.id if outcome.job else None
        status = outcome.result.status if outcome.result else None
        self._event(
            "finished", outcome.index, job_id=job_id, status=status, error=error, outcome=outcome
        )
        if error is not None and self._options.fail_fast:
            self.fail(error)
            return
        try:
            await self.send.send(outcome)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            self.cancel()  # nobody reads any more: the batch was closed

    def _event(self, kind: EventKind, index: int, **data: Any) -> None:
        hook = self._options.on_event
        if hook is not None:
            elapsed = anyio.current_time() - self._started_at
            hook(BatchEvent(kind=kind, index=index, elapsed=elapsed, **data))

    async def _check_credit(self) -> None:
        await self._refresh_credit()
        if self._credits_before is None:
            self._credits_before = self._credits_now
        if self._credits_now is not None and self._credits_now <= 0:
            self._credit_error = InsufficientCreditError(
                f"the credit balance is {self._credits_now:g}"
            )

    async def _refresh_credit(self) -> None:
        self._requests_made["quota"] += 1
        try:
            credit = await self._client._call(GET_CREDIT, CreditQuery())
        except AkoolError:
            return  # a balance is information, not a precondition: submits report real errors
        self._credits_now = credit.credit

    def _client_counters(self) -> tuple[int, int]:
        stats = self._client.statistics()
        return sum(stats.retries.values()), stats.throttled

    # -- statistics -------------------------------------------------------------------------

    def statistics(self) -> BatchStatistics:
        """A snapshot of the batch (see ``BatchStatistics``)."""
        now = self._finished_at if self._finished_at is not None else anyio.current_time()
        elapsed = max(0.0, now - self._started_at) if self.started else 0.0
        counts = self._counts
        client_now = self._client_stats_at_end or self._client_counters()
        requests = dict(self._requests_made)
        requests["list_results"] = self._poller.requests - self._poller_requests_at_start
        used = None
        if self._credits_before is not None and self._credits_now is not None:
            used = self._credits_before - self._credits_now
        done = counts["succeeded"] + counts["failed"] + counts["errored"] + counts["ambiguous"]
        return BatchStatistics(
            total=self.total,
            read=self._read,
            waiting_input=counts["waiting_input"],
            submitting=counts["submitting"],
            pending=counts["pending"],
            downloading=counts["downloading"],
            succeeded=counts["succeeded"],
            failed=counts["failed"],
            errored=counts["errored"],
            ambiguous=counts["ambiguous"],
            timed_out=counts["timed_out"],
            resumed=counts["resumed"],
            submits=self._submits,
            credits_before=self._credits_before,
            credits_now=self._credits_now,
            credits_used=used,
            requests=requests,
            retries=self._retries + client_now[0] - self._client_stats_at_start[0],
            throttles=client_now[1] - self._client_stats_at_start[1],
            elapsed=elapsed,
            throughput=done / elapsed if elapsed > 0 else 0.0,
            finished=self.finished,
        )


def _unwrap(exc: BaseException) -> BaseException:
    """The one real error inside (nested) single-exception groups."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc
