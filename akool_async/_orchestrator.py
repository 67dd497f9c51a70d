"""The client's orchestration surface: ``wait``, ``swap_many`` and the shared poller's lifetime.

``_OrchestratorMixin`` is a base class of ``AsyncClient``. The client calls
``_start_orchestrator()`` at the end of ``__aenter__`` and ``_stop_orchestrator()`` at the
start of ``aclose()``; in between, one anyio task group owned by the client runs the shared
``Poller`` and every ``swap_many`` batch. Enter and close the client in the same task (as
``async with`` does): a task group cannot be left from another task.

``with_options()`` views share their parent's session and counters through ``_shared``; they
share its orchestrator the same way (looked up by ``_shared``), so ``view.wait`` and
``view.swap_many`` use the parent's poller while submitting with the view's retry policy.

``Batch`` is what ``swap_many`` returns: an async iterator of ``Outcome`` *and* an async
context manager. The batch starts on the first ``__anext__`` or ``__aenter__`` and runs as a
task of the client's task group, so leaving the caller's loop early never leaves a task group
open across a ``yield``. ``async with`` (or ``aclose()``) stops it deterministically; a bare
``async for`` that breaks stops it when the ``Batch`` is garbage collected (at once in CPython
when nothing else refers to it), at the latest when the client closes.
"""

from __future__ import annotations

import asyncio
import math
import os
import weakref
from collections.abc import AsyncIterable, Callable, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Generic, Self, cast

import anyio
import attrs
from anyio.abc import TaskGroup

from ._ambiguity import References
from ._batch import BatchOptions, BatchRun
from ._download import DEFAULT_DOWNLOAD_TIMEOUT, DOWNLOAD_RETRY
from ._endpoints import LIST_RESULTS, Endpoint
from ._errors import ClientStateError, ValidationError
from ._events import BatchEvent, BatchStatistics, Outcome, R
from ._journals import journal_spec
from ._models import MediaType, ResultsQuery, SwapJob, SwapResult, SwapStatus, _check_url
from ._poll_config import PollConfig
from ._poller import Poller, PollerStatistics
from ._retry import RetryPolicy
from ._storage import is_store_url

if TYPE_CHECKING:
    from ._client import AsyncClient
    from ._receiver import WebhookReceiver
    from ._webhooks import WebhookEvent

__all__ = ["Batch", "_OrchestratorMixin"]

#: The server's own hint: "if your results are not generated in three hours, check your input".
DEFAULT_JOB_TIMEOUT: Final = 3 * 3600.0


class _Orchestrator:
    """What one open client (and its views) share: the task group, the poller, the batches."""

    def __init__(self, poller: Poller, task_group: TaskGroup) -> None:
        self.poller = poller
        self.task_group = task_group
        self.batches: weakref.WeakSet[BatchRun[Any]] = weakref.WeakSet()
        #: While ``use_webhooks`` is in force: the ``webhookUrl`` for submits, and its undo.
        self.webhook_url: str | None = None
        self.detach_webhooks: Callable[[], None] | None = None
        #: Callbacks' ``akool_ref`` values meet the ambiguous submits expecting them here.
        self.references = References()


#: Orchestrators by ``id(client._shared)``, with a weak reference to check the identity.
_REGISTRY: dict[int, tuple[weakref.ref[object], _Orchestrator]] = {}


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
        self._orchestrator = orchestrator
        self._loop: asyncio.AbstractEventLoop | None = None
        self._raised = False

    def _start(self) -> None:
        run = self._run
        if run.started:
            return
        if self._orchestrator.poller.running is False:
            raise ClientStateError("the client is closed")
        run.started = True
        self._loop = asyncio.get_running_loop()
        self._orchestrator.batches.add(run)
        self._orchestrator.task_group.start_soon(run.main)

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


def _positive_int(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError(f"must be an integer >= 1, got {value!r}", field=field)
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


class _OrchestratorMixin:
    """``wait``, ``swap_many`` and the shared poller, mixed into ``AsyncClient``."""

    _poll_config: PollConfig | None = None

    # -- lifetime (called by AsyncClient) ---------------------------------------------------

    def _client(self) -> AsyncClient:
        return cast("AsyncClient", self)

    async def _start_orchestrator(self) -> None:
        """Start the client's task group and the shared poller (end of ``__aenter__``)."""
        client = self._client()
        config = self.poll_config
        config = attrs.evolve(config, batch_size=min(config.batch_size, client.max_ids_per_request))

        # Weakly: the poller task must not keep an unclosed client alive (its __del__ warns).
        client_ref = weakref.ref(client)

        async def fetch(ids: Sequence[str]) -> Sequence[SwapResult]:
            owner = client_ref()
            if owner is None:
                raise ClientStateError("the client was garbage collected without aclose()")
            page = await owner._call(LIST_RESULTS, ResultsQuery(ids=tuple(ids)))
            return page.result

        poller = Poller(fetch, config)
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        try:
            await task_group.start(poller.run)
        except BaseException as exc:
            task_group.cancel_scope.cancel()
            await task_group.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        shared = client._shared
        _REGISTRY[id(shared)] = (weakref.ref(shared), _Orchestrator(poller, task_group))

    async def _stop_orchestrator(self) -> None:
        """Cancel every batch and the poller, and leave the task group (start of ``aclose``)."""
        shared = self._client()._shared
        entry = _REGISTRY.get(id(shared))
        if entry is None or entry[0]() is not shared:
            return
        del _REGISTRY[id(shared)]
        orchestrator = entry[1]
        if orchestrator.detach_webhooks is not None:
            orchestrator.detach_webhooks()  # the receiver outlives us: stop feeding this poller
        # Batches stop as on aclose(): submits already sent get their grace for an answer,
        # with their journal still open; their iterators raise ClientStateError.
        running = [run for run in orchestrator.batches if not run.finished]
        for run in running:
            run.fail(ClientStateError("the client was closed while the batch ran"))
        with anyio.CancelScope(shield=True):
            for run in running:
                with anyio.move_on_after(run.grace + 1.0):
                    await run.done.wait()
        # Running batches see this cancellation as the client closing under them: their
        # iterators raise ClientStateError once their outcomes are drained.
        orchestrator.task_group.cancel_scope.cancel()
        await orchestrator.task_group.__aexit__(None, None, None)

    def _orchestrator(self) -> _Orchestrator:
        shared = self._client()._shared
        entry = _REGISTRY.get(id(shared))
        if entry is None or entry[0]() is not shared:
            raise ClientStateError(
                "this AsyncClient is not open: use 'async with AsyncClient(...) as client:'"
            )
        return entry[1]

    # -- the shared poller ------------------------------------------------------------------

    @property
    def poll_config(self) -> PollConfig:
        """How the shared poller schedules listbyids calls; set it before opening the client."""
        return self._poll_config or PollConfig()

    @poll_config.setter
    def poll_config(self, config: PollConfig) -> None:
        if not isinstance(config, PollConfig):
            raise ValidationError("must be a PollConfig", field="poll_config")
        self._poll_config = config
        shared = self._client()._shared
        entry = _REGISTRY.get(id(shared))
        if entry is not None and entry[0]() is shared:
            poller = entry[1].poller
            # An open client takes the new pacing at once (max_concurrent_requests excepted).
            batch = min(config.batch_size, self._client().max_ids_per_request)
            poller.config = attrs.evolve(config, batch_size=batch)

    def poller_statistics(self) -> PollerStatistics:
        """A snapshot of the shared poller: jobs tracked, waiters, listbyids calls made..."""
        return self._orchestrator().poller.statistics()

    def notify_job(self, job_id: str, status: SwapStatus | int, url: str | None = None) -> bool:
        """Feed an external status (a verified webhook) to everyone waiting for ``job_id``.

        Example: ``receiver.subscribe(lambda e: client.notify_job(e.id, e.status, e.url))``.

        Returns:
            True if somebody was waiting for the job; False if the status was remembered for a
            waiter that registers later.
        """
        return self._orchestrator().poller.notify(job_id, status, url)

    def attach_webhooks(self) -> Callable[[], None]:
        """Declare that webhooks feed ``notify_job``: polling drops to the safety-net pace.

        Returns:
            A function that detaches again.
        """
        return self._orchestrator().poller.attach_webhooks()

    def use_webhooks(self, receiver: WebhookReceiver, *, url: str) -> Callable[[], None]:
        """Let ``receiver``'s verified callbacks finish ``wait`` and ``swap_many`` jobs.

        Until detached: every submit without a ``webhook_url`` (single operations and
        ``swap_many`` alike) is sent with ``webhookUrl=url``; each event the receiver accepts
        (signature, timestamp and decryption verified; duplicates dropped) goes to
        ``notify_job``; and the poller asks listbyids about tracked jobs only every
        ``poll_config.safety_net_interval`` seconds, for callbacks that never come. An event
        that beats its submit's response is remembered for the waiter that follows.

        The receiver may run on this client's event loop or on another one (in another
        thread): events from elsewhere are handed over thread-safely. Closing the client
        detaches too.

        Args:
            receiver: A started (or mounted, or ASGI-served) ``WebhookReceiver`` with this
                account's verifier.
            url: Where AKOOL can reach the receiver (public), e.g. ``receiver.url`` locally.

        Returns:
            A function that detaches: back to normal polling, submits without a webhook URL
            (calling it again does nothing).

        Raises:
            ValidationError: ``url`` is not an absolute http(s) URL.
            ClientStateError: the client is not open, or webhooks are already in use.
        """
        _check_url(url, "url")
        orchestrator = self._orchestrator()
        if orchestrator.detach_webhooks is not None:
            raise ClientStateError("webhooks are already in use on this client: detach first")
        loop = asyncio.get_running_loop()
        poller, references = orchestrator.poller, orchestrator.references

        def notify(event: WebhookEvent) -> None:
            poller.notify(event.id, event.status, event.url)
            if event.reference is not None:  # a batch's submit: resolves it if ambiguous
                references.bind(event.reference, event.id)

        def on_event(event: WebhookEvent) -> None:
            try:
                here = asyncio.get_running_loop()
            except RuntimeError:
                here = None
            if here is loop:
                notify(event)
            else:  # raises once our loop is closed: the receiver answers 500, AKOOL retries
                loop.call_soon_threadsafe(notify, event)

        unsubscribe = receiver.subscribe(on_event)
        slow_down = orchestrator.poller.attach_webhooks()

        def detach() -> None:
            if orchestrator.detach_webhooks is not detach:
                return
            unsubscribe()
            slow_down()
            orchestrator.webhook_url = orchestrator.detach_webhooks = None

        orchestrator.webhook_url = url
        orchestrator.detach_webhooks = detach
        return detach

    def _with_webhook_url(self, endpoint: Endpoint[Any, Any], request: Any) -> Any:
        """``request`` with ``use_webhooks``' URL when it creates a job and names no URL."""
        if not endpoint.creates_job:
            return request
        shared = self._client()._shared
        entry = _REGISTRY.get(id(shared))
        if entry is None or entry[0]() is not shared or entry[1].webhook_url is None:
            return request
        if request.webhook_url is not None:
            return request
        return attrs.evolve(request, webhook_url=entry[1].webhook_url)

    # -- waiting for one job ----------------------------------------------------------------

    async def wait(
        self,
        job: SwapJob | str,
        *,
        timeout: float | None = 600.0,  # noqa: ASYNC109 - a job deadline, raised as JobTimeoutError
        media: MediaType | str | None = None,
        on_status: Callable[[SwapResult], None] | None = None,
    ) -> SwapResult:
        """Wait for a job to finish, through the client's shared poller.

        Any number of concurrent ``wait`` calls (and batches) share the same listbyids calls.

        Args:
            job: A ``SwapJob`` (from a submit) or a record ``_id``.
            timeout: Seconds to wait; None waits for as long as it takes.
            media: ``"image"`` or ``"video"`` (sets the polling pace); taken from a
                ``SwapJob``, else image.
            on_status: Called with the job's ``SwapResult`` each time a new non-terminal
                status (queued, processing) is seen; on the event loop, so keep it quick.

        Returns:
            The job's final ``SwapResult`` (status SUCCESS; ``url`` is the result file).

        Raises:
            JobFailedError: the job ended with status 4 (``exc.result`` has the details).
            JobTimeoutError: ``timeout`` passed first; the job may still finish.
            JobNotFoundError: listbyids kept leaving the id out.
            ClientStateError: the client is not open.
        """
        if isinstance(job, SwapJob):
            job_id, kind = job.id, media or job.media
        elif isinstance(job, str) and job:
            job_id, kind = job, media or MediaType.IMAGE
        else:
            raise ValidationError("must be a SwapJob or a job _id", field="job")
        timeout = _seconds(timeout, "timeout")
        return await self._orchestrator().poller.wait(
            job_id, media=kind, timeout=timeout, on_status=on_status
        )

    # -- many jobs --------------------------------------------------------------------------

    def swap_many(
        self,
        requests: Iterable[R] | AsyncIterable[R],
        *,
        concurrency: int = 64,
        max_pending: int = 2000,
        job_timeout: float | None = DEFAULT_JOB_TIMEOUT,
        deadline: float | None = None,
        journal: str | os.PathLike[str] | None = None,
        download_dir: str | os.PathLike[str] | None = None,
        fail_fast: bool = False,
        resubmit_ambiguous: bool = False,
        check_credit: bool = True,
        on_event: Callable[[BatchEvent], None] | None = None,
        download_retry: RetryPolicy | None = None,
        download_timeout: float | None = DEFAULT_DOWNLOAD_TIMEOUT,
        cancel_grace: float = 5.0,
        ambiguous_wait: float | None = 60.0,
        batch_id: str | None = None,
        lease: float | None = None,
        worker_id: str | None = None,
    ) -> Batch[R]:
        """Submit many swaps and wait for all of them: one ``Outcome`` per request.

        The input is read lazily (a generator of a million rows never becomes a million
        objects): at most ``max_pending`` requests are unfinished at a time, and at most
        ``concurrency`` of them are being submitted.

        Args:
            requests: PlusSwap / ProSwap / ImageSwap / VideoSwap objects, as any iterable or
                async iterable. Anything else becomes a ``ValidationError`` outcome.
            concurrency: Submits in flight at once.
            max_pending: Unfinished requests at once (submitting, waiting, downloading);
                reading the input pauses at this cap.
            job_timeout: Seconds a job may take from its submit (or re-attachment) before its
                outcome is a ``JobTimeoutError`` (its id is kept). None: no limit.
            deadline: Seconds for the whole batch. When it passes, nothing more is submitted
                (``BatchDeadlineError`` outcomes), waiting jobs end as ``JobTimeoutError``
                and downloads as ``DownloadError``; submits in flight still finish.
            journal: Path of an SQLite journal. Running the same input with the same journal
                after a crash re-attaches to jobs in flight, skips finished ones (their
                outcomes come back with ``resumed=True``) and resubmits only what provably was
                never submitted. Or a ``postgresql://`` URL (``akool-async[postgres]``): a
                shared journal that any number of workers (on any hosts) run one batch in,
                named by ``batch_id``; each worker then reads the whole input first (its
                digest must match the batch's) and yields outcomes only for the requests
                it was leased.
            download_dir: Download each successful result into this directory (created if
                missing) as ``<job _id><extension>``, verified and atomically renamed; or
                into an object store (``"s3://bucket/results/"``, the client's
                ``storage_options``), its SHA-256 recorded, re-read and checked on resume.
            fail_fast: Stop at the first error outcome and raise it (see ``Batch``).
            resubmit_ambiguous: On resume, submit again the requests whose earlier submit may
                or may not have reached AKOOL (may pay twice); by default they are reported as
                ``AmbiguousSubmitError`` outcomes.
            check_credit: Read the balance first; if it is <= 0 nothing is submitted. In any
                case a 1006 during the batch stops further submits (``InsufficientCreditError``
                outcomes, journaled as never submitted).
            on_event: Called synchronously with each ``BatchEvent`` (progress bars, logs).
            download_retry: Attempts and backoff of each download (default: 4 attempts).
            download_timeout: Seconds one result's download may take in all, retries included
                (default 3600); a transfer also fails when it stays under 1 KiB/s for 30 s.
                None: no total limit.
            cancel_grace: When the batch is stopped (``aclose``, cancellation, Ctrl-C, the
                client closing), submits whose request already went out get this many
                seconds to bring their answer back, so that their job id is journaled
                instead of the submit being reported ambiguous. Submits not yet sent (at the
                throttle gate, in backoff) are abandoned at once and journaled as unsent.
            ambiguous_wait: With ``use_webhooks`` in force, each submit's webhook URL carries
                a per-request reference; a submit that turns out ambiguous waits for a
                callback naming its reference (then it is bound to that job: nothing is
                resubmitted) until this many seconds after every other request finished
                (bounded by ``job_timeout`` and ``deadline``); so does, on resume, a journal
                row left ambiguous with its reference (a callback received meanwhile by this
                client binds it at once). None: report it at once.
            batch_id: The name of a shared batch (required with a PostgreSQL journal, refused
                without one): every worker of the batch passes the same name.
            lease: Seconds a worker's leases on requests outlive its last heartbeat (default
                30): after a crash, its requests go to the other workers this much later.
            worker_id: This worker's name in a shared journal (default ``host:pid:random``).

        Returns:
            A ``Batch``: iterate it, ideally inside ``async with``.

        Raises:
            ValidationError: a bad option (nothing has started).
        """
        options = BatchOptions(
            concurrency=_positive_int(concurrency, "concurrency"),
            max_pending=_positive_int(max_pending, "max_pending"),
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
        orchestrator = self._orchestrator()
        run = BatchRun(self._client(), orchestrator.poller, requests, options, orchestrator)
        return Batch(run, orchestrator)
