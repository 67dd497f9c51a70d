"""``Batch``, what ``swap_many`` returns, and the checks of the job methods' arguments.

``Batch`` is an async iterator of ``Outcome`` *and* an async context manager. The batch
starts on the first ``__anext__`` or ``__aenter__`` and runs as a task of the client's job
service (``_service.JobService``), so leaving the caller's loop early never leaves a task
group open across a ``yield``. ``async with`` (or ``aclose()``) stops it deterministically; a
bare ``async for`` that breaks stops it when the ``Batch`` is garbage collected (at once in
CPython when nothing else refers to it), at the latest when the client closes.

``batch_options`` and ``wait_target`` check ``swap_many``'s and ``wait``'s arguments. The
client runs them before it looks for its job service, so a bad argument is a
``ValidationError`` (nothing has started) even on a client that is not open.
"""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import AsyncIterable, Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Generic, Self

import anyio

from akool_async._errors import ValidationError
from akool_async._models import MediaType, SwapJob
from akool_async._retry import RetryPolicy
from akool_async._storage import is_store_url
from akool_async._validators import require_integer_at_least

from ._batch import BatchOptions, BatchRun
from ._download import DOWNLOAD_RETRY
from ._events import BatchEvent, BatchStatistics, Outcome, R
from ._journals import journal_spec

if TYPE_CHECKING:
    # The name ``Batch.__init__``'s signature has shown (tests/data/public_api.json).
    from ._service import JobService as _Orchestrator

__all__ = ["DEFAULT_JOB_TIMEOUT", "Batch", "batch_options", "wait_target"]

#: The server's own hint: "if your results are not generated in three hours, check your input".
DEFAULT_JOB_TIMEOUT: Final = 3 * 3600.0


class Batch(Generic[R]):
    """A running ``swap_many``: iterate it for one ``Outcome`` per input request.

    Use it as ``async with client.swap_many(requests) as batch: async for o in batch: ...``
    (deterministic cleanup), or as a bare ``async for o in client.swap_many(requests)``.
    Outcomes arrive in completion order; ``outcome.index`` is the input position.

    With ``fail_fast=False`` (the default) iteration never raises for a request's failure:
    every failure is an outcome. It raises only for a broken batch: an exception from the
    input iterable or from ``on_event`` (after the outcomes already produced), or
    ``ClientStateError`` when the client closes under it. With ``fail_fast=True`` the first
    error outcome is not yielded: it cancels everything still running, the outcomes that
    finished before it are yielded, and then its ``error`` is raised.
    """

    def __init__(self, run: BatchRun[R], orchestrator: _Orchestrator) -> None:
        self._run = run
        self._jobs = orchestrator  # the client's JobService, which runs the batch
        self._loop: asyncio.AbstractEventLoop | None = None
        self._raised = False

    def _start(self) -> None:
        run = self._run
        if run.started:
            return
        self._jobs.start(run)  # ClientStateError once the client is closed
        run.started = True
        self._loop = asyncio.get_running_loop()

    async def __aenter__(self) -> Self:
        self._start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Outcome[R]:
        self._start()
        run = self._run
        try:
            return await run.receive.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            pass
        with anyio.CancelScope(shield=True):
            await run.done.wait()  # the stream closes just before this is set
        if run.failure is not None and not self._raised:
            self._raised = True
            raise run.failure
        raise StopAsyncIteration

    async def aclose(self) -> None:
        """Stop the batch if it is still running and wait until it has stopped. Idempotent.

        Submits whose request already went out get up to ``cancel_grace`` seconds for their
        answer, so that their job ids are known (and journaled). Jobs already submitted keep
        running on AKOOL; with a journal, running the same input again re-attaches to them.
        """
        run = self._run
        if run.started and not run.finished:
            run.cancel()
            with anyio.CancelScope(shield=True):
                await run.done.wait()
        run.receive.close()

    def statistics(self) -> BatchStatistics:
        """A snapshot of the batch's progress and counters."""
        return self._run.statistics()

    def __del__(self) -> None:
        # Reached after a bare ``async for`` that broke out: stop the batch, on its loop (this
        # may run in any thread), and close the stream nobody will read any more.
        run: BatchRun[R] | None = getattr(self, "_run", None)
        if run is None:
            return
        loop = getattr(self, "_loop", None)
        if loop is not None:
            try:
                loop.call_soon_threadsafe(_abandon, run)
                return
            except RuntimeError:
                pass  # the loop is closed: nothing can be waiting on the streams any more
        run.send.close()
        run.receive.close()


def _abandon(run: BatchRun[Any]) -> None:
    if not run.finished:
        run.cancel()
    run.receive.close()


def _worker_name(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= 200 or not value.isprintable():
        raise ValidationError("must be 1 to 200 printable characters", field="worker_id")
    return value


def _seconds(value: object, field: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValidationError(
            f"must be a positive number of seconds or None, got {value!r}", field=field
        )
    if math.isnan(value):
        raise ValidationError("must not be NaN", field=field)
    return float(value)


def _grace(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ValidationError(
            f"must be a number of seconds >= 0, got {value!r}", field="cancel_grace"
        )
    if math.isinf(value):
        raise ValidationError("must be finite", field="cancel_grace")
    return float(value)


def wait_target(
    job: SwapJob | str, media: MediaType | str | None, timeout: float | None
) -> tuple[str, MediaType | str, float | None]:
    """``wait``'s arguments checked: the job's id, its media type and the timeout.

    Raises:
        ValidationError: ``job`` is neither a ``SwapJob`` nor an id, or a bad ``timeout``.
    """
    if isinstance(job, SwapJob):
        job_id, kind = job.id, media or job.media
    elif isinstance(job, str) and job:
        job_id, kind = job, media or MediaType.IMAGE
    else:
        raise ValidationError("must be a SwapJob or a job _id", field="job")
    return job_id, kind, _seconds(timeout, "timeout")


def batch_options(
    requests: object,
    *,
    concurrency: int,
    max_pending: int,
    job_timeout: float | None,
    deadline: float | None,
    journal: str | os.PathLike[str] | None,
    download_dir: str | os.PathLike[str] | None,
    fail_fast: bool,
    resubmit_ambiguous: bool,
    check_credit: bool,
    on_event: Callable[[BatchEvent], None] | None,
    download_retry: RetryPolicy | None,
    download_timeout: float | None,
    cancel_grace: float,
    ambiguous_wait: float | None,
    batch_id: str | None,
    lease: float | None,
    worker_id: str | None,
) -> BatchOptions:
    """``swap_many``'s arguments checked (see ``AsyncClient.swap_many``), as ``BatchOptions``.

    A local ``download_dir`` is created here, before anything is submitted.

    Raises:
        ValidationError: a bad option, or ``requests`` is not an iterable.
    """
    options = BatchOptions(
        concurrency=require_integer_at_least(concurrency, 1, "concurrency"),
        max_pending=require_integer_at_least(max_pending, 1, "max_pending"),
        job_timeout=_seconds(job_timeout, "job_timeout"),
        deadline=_seconds(deadline, "deadline"),
        journal=journal_spec(journal, batch_id),
        download_dir=(
            download_dir
            if isinstance(download_dir, str) and is_store_url(download_dir)
            else Path(download_dir)
            if download_dir is not None
            else None
        ),
        fail_fast=bool(fail_fast),
        resubmit_ambiguous=bool(resubmit_ambiguous),
        check_credit=bool(check_credit),
        on_event=on_event,
        download_retry=download_retry if download_retry is not None else DOWNLOAD_RETRY,
        download_timeout=_seconds(download_timeout, "download_timeout"),
        cancel_grace=_grace(cancel_grace),
        ambiguous_wait=_seconds(ambiguous_wait, "ambiguous_wait"),
        batch_id=batch_id,
        lease=_seconds(lease, "lease"),
        worker_id=_worker_name(worker_id),
    )
    if not isinstance(requests, Iterable | AsyncIterable):
        raise ValidationError("must be an iterable of swap requests", field="requests")
    if isinstance(options.download_dir, Path):
        options.download_dir.mkdir(parents=True, exist_ok=True)
    return options
