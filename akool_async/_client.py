"""``AsyncClient``: the public surface of the SDK, over the session manager ``_BaseClient``.

The operations are endpoint descriptors (``Operation``, ``_endpoints``): each builds its
request object and ends in ``_BaseClient._call``, whose ``Requester`` (``_requester``) does
auth, pacing at the client-wide rate controller, the exchange (``_transport``, the only place
aiohttp is called and its exceptions mapped), classification and retries.

The job methods (``wait``, ``swap_many``, ``use_webhooks``, ``notify_job``...) check their
arguments and hand over to the client's ``JobService`` (``_service``); the conveniences
(``get_results``, ``delete_results``, ``get_credit``, ``download``) are plain calls.
"""

from __future__ import annotations

import os
from collections.abc import (
    AsyncIterable,
    Callable,
    Iterable,
    Iterator,
)
from typing import TYPE_CHECKING

from ._base_client import DEFAULT_BASE_URL, DEFAULT_LEGACY_DETECTOR_URL, _BaseClient
from ._config import Timeout
from ._endpoints import (
    ANALYZE_FRAMES,
    DELETE_RESULTS,
    DETECT_FACES,
    FACESWAP_IMAGE,
    FACESWAP_PLUS,
    FACESWAP_PRO,
    FACESWAP_VIDEO,
    GET_CREDIT,
    LEGACY_DETECT,
    LIST_RESULTS,
    AsyncBinder,
    Operation,
)
from ._errors import (
    ClientStateError,
    ValidationError,
)
from ._frames import AnalyzeFrames
from ._jobs._batch import BatchRun
from ._jobs._download import DEFAULT_DOWNLOAD_TIMEOUT
from ._jobs._events import BatchEvent, R
from ._jobs._orchestrator import DEFAULT_JOB_TIMEOUT, Batch, batch_options, wait_target
from ._jobs._poll_config import PollConfig
from ._jobs._poller import PollerStatistics
from ._jobs._result_store import SavedFile, download_one
from ._jobs._service import JobService
from ._models import (
    CreditQuery,
    DeleteQuery,
    DetectFaces,
    ImageSwap,
    LegacyDetect,
    MediaType,
    PlusSwap,
    ProSwap,
    ResultsQuery,
    SwapJob,
    SwapResult,
    SwapStatus,
    VideoSwap,
    _check_url,
    validate_ids,
)
from ._requester import EventHook
from ._retry import RetryPolicy
from ._stats import ClientStatistics

if TYPE_CHECKING:
    from ._receiver import WebhookReceiver

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_LEGACY_DETECTOR_URL",
    "AsyncClient",
    "ClientStatistics",
    "EventHook",
]


def _chunks(ids: tuple[str, ...], size: int) -> Iterator[tuple[str, ...]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


# --------------------------------------------------------------------------------------------
# The client


class AsyncClient(_BaseClient, AsyncBinder):
    """Async client of the AKOOL Face Swap API; use it as ``async with AsyncClient() as c:``.

    Configuration comes from the arguments, else from the environment (``AKOOL_API_KEY``,
    ``AKOOL_CLIENT_ID``, ``AKOOL_CLIENT_SECRET``, ``AKOOL_BASE_URL``,
    ``AKOOL_DETECTOR_BASE_URL``). When any credential argument is passed, no credential is
    read from the environment.

    Args:
        api_key: Sent as ``x-api-key`` (the recommended auth). Wins over client credentials.
        client_id: With ``client_secret`` and no ``api_key``: a bearer token is fetched once
            from getToken and cached (re-fetched once on 1101). Also kept, with the secret
            (or the API key, which is the same value), for the webhook verifier.
        client_secret: See ``client_id``.
        base_url: The API host (default ``https://openapi.akool.com``).
        detector_base_url: The legacy detector's host. Defaults to ``https://sg3.akool.com``
            with the default ``base_url``, else to ``base_url`` (emulators serve ``/detect``).
        timeout: Per-attempt time limits.
        limits: Connection pool limits (ignored with a caller-owned ``session``).
        retry: The default ``RetryPolicy``; override per call with ``with_options(retry=...)``.
        max_ids_per_request: Most ids per listbyids/delbyids call (``get_results`` chunks).
        rate_limit: The account's request rate, if known: requests per second (a number) or
            a ``RateLimit`` (with a burst, ...). The client paces every request to it, so it
            never provokes a 1005. None (the default): discover it from 1005 / HTTP 429
            answers. One rate controller serves the client, its views, every batch and
            ``wait``.
        session: A caller-owned ``aiohttp.ClientSession`` to use; it is never closed here.
        on_event: Provisional instrumentation hook, ``on_event(name, **data)``, called
            synchronously for ``"retried"`` (endpoint, attempt, delay, error), ``"throttled"``
            (endpoint, delay, status, code), ``"token_fetched"`` () and
            ``"ambiguous_submit"`` (endpoint, request, error). Its exceptions are logged.
        upload_to: Object-store prefix (``"s3://bucket/prefix/"``) for media given as local
            files (``pathlib.Path``, ``file://``): each distinct file is uploaded once, under
            its SHA-256, and sent as a presigned URL. Needs ``akool-async[storage]``.
        storage_options: fsspec options of the object stores (``key``, ``secret``,
            ``endpoint_url``, ``client_kwargs``...), for ``upload_to``, ``s3://`` inputs and
            ``s3://`` download destinations alike.

    Raises:
        ValidationError: no usable credentials (nothing is sent), or a bad URL or option.
    """

    faceswap_plus = Operation(FACESWAP_PLUS, PlusSwap, name="faceswap_plus")
    faceswap_pro = Operation(FACESWAP_PRO, ProSwap, name="faceswap_pro")
    faceswap_image = Operation(FACESWAP_IMAGE, ImageSwap, name="faceswap_image")
    faceswap_video = Operation(FACESWAP_VIDEO, VideoSwap, name="faceswap_video")
    detect_faces = Operation(DETECT_FACES, DetectFaces, name="detect_faces")
    detect_faces_legacy = Operation(LEGACY_DETECT, LegacyDetect, name="detect_faces_legacy")
    analyze_frames = Operation(ANALYZE_FRAMES, AnalyzeFrames, name="analyze_frames")

    async def __aenter__(self) -> AsyncClient:
        await self._open(self.poll_config)
        return self

    def with_options(
        self, *, retry: RetryPolicy | None = None, timeout: Timeout | None = None
    ) -> AsyncClient:
        """A lightweight view with another retry policy and/or timeout.

        The view shares this client's session, token, rate controller and counters; open and
        close the original client, not the view. Example::

            patient = client.with_options(retry=attrs.evolve(client.retry, max_attempts=8))
            await patient.get_results(ids)
        """
        view = object.__new__(type(self))
        view._shared = self._shared
        view._retry = retry if retry is not None else self._retry
        view._timeout = timeout if timeout is not None else self._timeout
        view._owner = False
        return view

    # ---- lifecycle --------------------------------------------------------------------------

    # ---- jobs: waiting, batches, webhooks (the job service does the work) ------------------

    def _jobs(self) -> JobService:
        """The open client's job service (shared with its views)."""
        jobs = self._shared.jobs
        if jobs is None:
            raise ClientStateError(
                "this AsyncClient is not open: use 'async with AsyncClient(...) as client:'"
            )
        return jobs

    @property
    def poll_config(self) -> PollConfig:
        """How the shared poller schedules listbyids calls; set it before opening the client."""
        return self._poll_config or PollConfig()

    @poll_config.setter
    def poll_config(self, config: PollConfig) -> None:
        if not isinstance(config, PollConfig):
            raise ValidationError("must be a PollConfig", field="poll_config")
        self._poll_config = config
        if (jobs := self._shared.jobs) is not None:
            jobs.pace(config)  # an open client takes the new pacing at once

    def poller_statistics(self) -> PollerStatistics:
        """A snapshot of the shared poller: jobs tracked, waiters, listbyids calls made..."""
        return self._jobs().statistics()

    def notify_job(self, job_id: str, status: SwapStatus | int, url: str | None = None) -> bool:
        """Feed an external status (a verified webhook) to everyone waiting for ``job_id``.

        Example: ``receiver.subscribe(lambda e: client.notify_job(e.id, e.status, e.url))``.

        Returns:
            True if somebody was waiting for the job; False if the status was remembered for a
            waiter that registers later.
        """
        return self._jobs().notify(job_id, status, url)

    def attach_webhooks(self) -> Callable[[], None]:
        """Declare that webhooks feed ``notify_job``: polling drops to the safety-net pace.

        Returns:
            A function that detaches again.
        """
        return self._jobs().attach_webhooks()

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
        return self._jobs().use_webhooks(receiver, url)

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
        job_id, kind, seconds = wait_target(job, media, timeout)
        return await self._jobs().wait(job_id, media=kind, timeout=seconds, on_status=on_status)

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
        options = batch_options(
            requests,
            concurrency=concurrency,
            max_pending=max_pending,
            job_timeout=job_timeout,
            deadline=deadline,
            journal=journal,
            download_dir=download_dir,
            fail_fast=fail_fast,
            resubmit_ambiguous=resubmit_ambiguous,
            check_credit=check_credit,
            on_event=on_event,
            download_retry=download_retry,
            download_timeout=download_timeout,
            cancel_grace=cancel_grace,
            ambiguous_wait=ambiguous_wait,
            batch_id=batch_id,
            lease=lease,
            worker_id=worker_id,
        )
        jobs = self._jobs()
        return Batch(BatchRun(self, jobs.poller, requests, options, jobs), jobs)

    # ---- conveniences -----------------------------------------------------------------------

    async def get_results(self, ids: Iterable[str]) -> list[SwapResult]:
        """The current state of jobs, by ``_id``; unknown (deleted, expired) ids are absent.

        Ids are deduplicated and sent ``max_ids_per_request`` at a time.

        Raises:
            ValidationError: an id is not 24 hex digits (nothing is sent).
        """
        unique = validate_ids(ids)
        results: list[SwapResult] = []
        for chunk in _chunks(unique, self._shared.max_ids_per_request):
            page = await self._call(LIST_RESULTS, ResultsQuery(ids=chunk))
            results.extend(page.result)
        return results

    async def delete_results(self, ids: Iterable[str]) -> None:
        """Delete job records (permanent), ``max_ids_per_request`` ids per call.

        Raises:
            ValidationError: an id is not 24 hex digits (nothing is sent).
        """
        unique = validate_ids(ids)
        for chunk in _chunks(unique, self._shared.max_ids_per_request):
            await self._call(DELETE_RESULTS, DeleteQuery(ids=chunk))

    async def get_credit(self) -> float:
        """The account's credit balance."""
        return (await self._call(GET_CREDIT, CreditQuery())).credit

    async def download(self, result: SwapResult, dest: str | os.PathLike[str]) -> SavedFile:
        """Download one finished job's file into ``dest``, verified, and say where it is.

        ``dest`` is a local directory (created if missing) or an object-store URL
        (``"s3://bucket/results/"``, with ``storage_options``); the file is named
        ``<job _id><extension>``. The download is streamed, checked against its length and
        ETag, retried when transient, and only then written under its final name.

        Raises:
            DownloadError: no intact copy (no URL, HTTP 403/404 after the 7-day expiry...).
            StorageError: the object store refused the file.
        """
        return await download_one(self, result, dest)
