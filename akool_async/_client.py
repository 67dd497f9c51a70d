"""``AsyncClient``: the aiohttp session, authentication, retries, and one generic ``_call``.

Every operation ends in ``AsyncClient._call(endpoint, request)``:

1. the request is encoded by ``_wire.build_request`` (sans-I/O);
2. each attempt adds the auth header (fetching the getToken token once, under a lock, in
   client-id mode), waits for its turn at the client-wide rate controller (``_ratelimit``),
   sends, and decodes with ``_wire.decode``; aiohttp exceptions are translated here and
   nowhere else;
3. a failed attempt is classified by how far the request provably got (``_Delivery``) and
   retried by ``backoff`` under the call's ``RetryPolicy`` when that is safe:

   * reads (listbyids, quota, detectors, getToken, delbyids) on a transport error, HTTP 5xx,
     1005 or HTTP 429;
   * job-creating POSTs only when the request never reached the server (the connection could
     not be made) or the server refused it without acting (1005, HTTP 429, HTTP 503). A
     create that may have been accepted (read timeout, dropped connection, other 5xx, a
     malformed 200) raises ``AmbiguousSubmitError`` and is never retried silently.

Every attempt anywhere (submitters and pollers together) is paced by one ``RateController``
per client; a 1005/429 lowers its rate for everybody (once per throttle episode), not only
for the request that was refused, and the refused request is retried at its next turn.

Instrumentation for orchestration: ``statistics()`` (a snapshot of counters) and the
provisional ``on_event(name, **data)`` hook; see ``AsyncClient``.

The job methods (``wait``, ``swap_many``, ``use_webhooks``, ``notify_job``...) check their
arguments and hand over to the client's ``JobService`` (``_service``): opened at the end of
``__aenter__``, held by the state the client shares with its ``with_options`` views, and
closed at the start of ``aclose()``, before the session.
"""

from __future__ import annotations

import contextvars
import enum
import functools
import importlib.metadata
import json
import logging
import os
import time
import warnings
import weakref
from collections.abc import (
    AsyncIterable,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, TypeVar
from urllib.parse import urljoin, urlsplit

import aiohttp
import anyio
import attrs
import backoff

from ._batch import BatchRun
from ._config import Limits, Timeout
from ._download import DEFAULT_DOWNLOAD_TIMEOUT
from ._endpoints import (
    ANALYZE_FRAMES,
    DELETE_RESULTS,
    DETECT_FACES,
    FACESWAP_IMAGE,
    FACESWAP_PLUS,
    FACESWAP_PRO,
    FACESWAP_VIDEO,
    GET_CREDIT,
    GET_TOKEN,
    LEGACY_DETECT,
    LIST_RESULTS,
    AsyncBinder,
    Endpoint,
    Host,
    Operation,
)
from ._errors import (
    AkoolError,
    AmbiguousSubmitError,
    APIError,
    AuthenticationError,
    ClientStateError,
    DetectionError,
    RateLimitError,
    ServerError,
    TransportError,
    ValidationError,
)
from ._events import BatchEvent, R, submit_events, submit_sending
from ._frames import AnalyzeFrames
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
    TokenRequest,
    VideoSwap,
    _check_url,
    validate_ids,
)
from ._orchestrator import DEFAULT_JOB_TIMEOUT, Batch, batch_options, wait_target
from ._poll_config import PollConfig
from ._poller import FetchResults, PollerStatistics
from ._ratelimit import RateController, RateLimit
from ._redact import describe, register, safe_cause, scrub_error
from ._result_store import SavedFile, download_one
from ._retry import RetryPolicy
from ._service import JobService
from ._stats import ClientStatistics, _Stats
from ._storage import MEDIA_TYPES, MediaResolver, media_refs
from ._wire import BODY_LIMIT, WireRequest, build_request, decode

if TYPE_CHECKING:
    from ._receiver import WebhookReceiver

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_LEGACY_DETECTOR_URL",
    "AsyncClient",
    "ClientStatistics",
    "EventHook",
]

#: What a call decodes to (the endpoint's response type).
RespT = TypeVar("RespT")

#: The API host (contract section 1).
DEFAULT_BASE_URL: Final = "https://openapi.akool.com"
#: The legacy detector's host, used when ``base_url`` is the default.
DEFAULT_LEGACY_DETECTOR_URL: Final = "https://sg3.akool.com"

#: ``on_event(name, **data)``: called synchronously; exceptions are logged and swallowed.
EventHook = Callable[..., None]

_logger = logging.getLogger("akool_async")

#: The requests whose image may be a path, read (off the loop) before building the request.
_DETECTORS: Final = (DetectFaces, LegacyDetect)


def _user_agent() -> str:
    try:
        version = importlib.metadata.version("akool-async")
    except importlib.metadata.PackageNotFoundError:
        version = "0+unknown"
    return f"akool-async/{version}"


# --------------------------------------------------------------------------------------------
# Internal state


class _State(enum.Enum):
    UNOPENED = "unopened"
    OPEN = "open"
    CLOSED = "closed"


class _Delivery(enum.Enum):
    """How far a failed attempt provably got."""

    UNSENT = "unsent"  # never reached the server: no connection, or failed before sending
    REFUSED = "refused"  # the server answered that it did not act (1005, 429, 503)
    AMBIGUOUS = "ambiguous"  # it may have been accepted (timeout, dropped, 5xx, bad body)
    ANSWERED = "answered"  # the server answered with a definite failure code


class _Failure(Exception):
    """One failed attempt, classified; ``backoff`` retries it when ``retryable``."""

    def __init__(
        self, error: AkoolError, delivery: _Delivery, *, retryable: bool, throttled: bool = False
    ) -> None:
        super().__init__(str(error))
        self.error = error
        self.delivery = delivery
        self.retryable = retryable
        self.throttled = throttled
        # A throttled attempt is retried at its next turn at the rate controller, which
        # also honours Retry-After: no backoff wait on top (``RetryPolicy.wait_gen``).
        self.paced = throttled
        self.retry_after = error.retry_after if isinstance(error, APIError) else None


def _not_retryable(exc: Exception) -> bool:
    return not (isinstance(exc, _Failure) and exc.retryable)


async def _counted_attempt(
    client: AsyncClient,
    endpoint: Endpoint[Any, RespT],
    wire: WireRequest,
    request: Any,
    policy: RetryPolicy,
    tries: list[int],
    first: _Failure,
) -> RespT:
    tries[0] += 1
    if tries[0] == 1:
        # The first attempt already ran, outside backoff (``_call``'s fast path): backoff
        # starts from its failure, which decides whether and how long to wait.
        raise first
    return await client._attempt(endpoint, wire, request, policy, tries[0])


#: Seconds the first attempt took before backoff took over (its ``max_time`` is the rest).
_first_attempt_seconds: contextvars.ContextVar[float] = contextvars.ContextVar(
    "akool_first_attempt_seconds", default=0.0
)


def _tell_batch(endpoint: Endpoint[Any, Any], kind: str, **data: Any) -> None:
    """Report a submit's retry or throttle to the batch request it belongs to, if any."""
    if endpoint.creates_job and (report := submit_events.get()) is not None:
        report(kind, **data)


async def _on_backoff(details: Mapping[str, Any]) -> None:
    client: AsyncClient = details["args"][0]
    endpoint: Endpoint[Any, Any] = details["args"][1]
    failure: _Failure = details["exception"]
    client._shared.stats.retries[endpoint.name] += 1
    delay: float = details["wait"]
    if failure.paced:  # it waits at the rate controller instead: about one turn
        delay = _pace_delay(client, failure.retry_after)
    _logger.info(
        "retrying %s in %.3fs after attempt %d: %s",
        endpoint.name,
        delay,
        details["tries"],
        failure.error,
    )
    client._emit(
        "retried",
        endpoint=endpoint.name,
        attempt=details["tries"],
        delay=delay,
        error=failure.error,
    )
    _tell_batch(endpoint, "retried", attempt=details["tries"], delay=delay, error=failure.error)


def _pace_delay(client: AsyncClient, retry_after: float | None) -> float:
    """About how long a throttled request waits for its next turn."""
    return retry_after if retry_after is not None else 1.0 / client._shared.rate.rate()


@functools.lru_cache(maxsize=64)
def _retrying(policy: RetryPolicy) -> Callable[..., Awaitable[Any]]:
    """``_counted_attempt`` under ``policy``'s backoff, decorated once per policy.

    ``backoff`` keeps each call's state (tries, start time) in the call itself, so one
    decorated function serves every call; decorating per call cost ~100 us of CPU. It only
    runs once a first attempt failed: ``max_time`` is what ``max_elapsed`` leaves after it.
    """
    max_elapsed = policy.max_elapsed
    retrying: Callable[..., Awaitable[Any]] = backoff.on_exception(
        policy.wait_gen,
        _Failure,
        max_tries=policy.max_attempts,
        max_time=None
        if max_elapsed is None
        else (lambda: max_elapsed - _first_attempt_seconds.get()),
        jitter=None,
        giveup=_not_retryable,
        on_backoff=_on_backoff,
        logger=None,
    )(_counted_attempt)
    return retrying


def _hidden(value: object) -> str:
    return "None" if value is None else "'***'"


@attrs.define(kw_only=True)
class _Auth:
    """Credentials (never in a repr) and the cached bearer token."""

    api_key: str | None = attrs.field(repr=_hidden)
    client_id: str | None
    client_secret: str | None = attrs.field(repr=_hidden)
    token: str | None = attrs.field(default=None, repr=_hidden)
    lock: anyio.Lock = attrs.field(factory=anyio.Lock, repr=False)

    #: The request headers of API-key mode, built once (aiohttp copies them per request).
    key_headers: dict[str, str] = attrs.field(init=False, repr=False)
    #: The same plus the JSON content type, for a POST's pre-encoded body.
    key_json_headers: dict[str, str] = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        self.key_headers = {} if self.api_key is None else {"x-api-key": self.api_key}
        self.key_json_headers = {**self.key_headers, "Content-Type": "application/json"}

    @property
    def uses_token(self) -> bool:
        return self.api_key is None


@attrs.define(kw_only=True)
class _Shared:
    """What a client and its ``with_options`` views share."""

    auth: _Auth
    base_url: str
    detector_base_url: str
    limits: Limits
    max_ids_per_request: int
    session: aiohttp.ClientSession | None
    owns_session: bool
    on_event: EventHook | None
    state: _State = _State.UNOPENED
    rate: RateController = attrs.field(factory=RateController)
    stats: _Stats = attrs.field(factory=_Stats)
    media: MediaResolver | None = None
    #: The poller, the batches and the webhook state while the client is open (else None).
    jobs: JobService | None = None


def _results_fetcher(client: AsyncClient) -> FetchResults:
    """The shared poller's listbyids call, through ``client``'s ``_call``."""
    # Weakly: the poller task must not keep an unclosed client alive (its __del__ warns).
    client_ref = weakref.ref(client)

    async def fetch(ids: Sequence[str]) -> Sequence[SwapResult]:
        owner = client_ref()
        if owner is None:
            raise ClientStateError("the client was garbage collected without aclose()")
        page = await owner._call(LIST_RESULTS, ResultsQuery(ids=tuple(ids)))
        return page.result

    return fetch


def _check_base_url(value: str, field: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValidationError(f"must be an absolute http(s) URL, got {value!r}", field=field)
    return value.rstrip("/")


def _chunks(ids: tuple[str, ...], size: int) -> Iterator[tuple[str, ...]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def _redirect_error(
    endpoint: Endpoint[Any, Any], status: int, url: str, location: str | None
) -> TransportError:
    """The error for a 3xx answer: API calls never follow redirects."""
    if location is None:
        target = "nowhere (no Location)"
    else:
        try:
            parts = urlsplit(urljoin(url, location))
            target = parts.netloc.rpartition("@")[2][:200] or "an invalid URL"
        except ValueError:
            target = "an invalid URL"
    return TransportError(
        f"{endpoint.name}: HTTP {status} redirect to {target} refused "
        "(API calls never follow redirects)",
        status=status,
    )


def _body_text(error: AkoolError) -> str | None:
    body = getattr(error, "body", None)
    if body is None or isinstance(body, str):
        return body
    try:
        return json.dumps(body)[:BODY_LIMIT]
    except (TypeError, ValueError):
        return repr(body)[:BODY_LIMIT]


# --------------------------------------------------------------------------------------------
# The client


class AsyncClient(AsyncBinder):
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

    _shared: _Shared
    _retry: RetryPolicy
    _timeout: Timeout
    _owner: bool
    #: Set by the ``poll_config`` setter (on this client or view only).
    _poll_config: PollConfig | None = None

    def __init__(
        self,
        *,
        api_key: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        base_url: str | None = None,
        detector_base_url: str | None = None,
        timeout: Timeout | None = None,
        limits: Limits | None = None,
        retry: RetryPolicy | None = None,
        max_ids_per_request: int = 100,
        rate_limit: RateLimit | float | None = None,
        session: aiohttp.ClientSession | None = None,
        on_event: EventHook | None = None,
        upload_to: str | None = None,
        storage_options: Mapping[str, Any] | None = None,
    ) -> None:
        self._owner = False  # until construction succeeds: __del__ must not warn
        env = os.environ
        if api_key is None and client_id is None and client_secret is None:
            api_key = env.get("AKOOL_API_KEY") or None
            client_id = env.get("AKOOL_CLIENT_ID") or None
            client_secret = env.get("AKOOL_CLIENT_SECRET") or None
        if api_key is not None and not api_key:
            raise ValidationError("must not be empty", field="api_key")
        if api_key is None and not (client_id and client_secret):
            raise ValidationError(
                "no credentials: pass api_key= (or client_id= and client_secret=), or set "
                "AKOOL_API_KEY (or AKOOL_CLIENT_ID and AKOOL_CLIENT_SECRET)",
                field="api_key",
            )
        base = _check_base_url(
            base_url or env.get("AKOOL_BASE_URL") or DEFAULT_BASE_URL, "base_url"
        )
        detector = detector_base_url or env.get("AKOOL_DETECTOR_BASE_URL")
        if detector is None:
            detector = DEFAULT_LEGACY_DETECTOR_URL if base == DEFAULT_BASE_URL else base
        detector = _check_base_url(detector, "detector_base_url")
        if isinstance(max_ids_per_request, bool) or not isinstance(max_ids_per_request, int):
            raise ValidationError("must be an integer", field="max_ids_per_request")
        if max_ids_per_request < 1:
            raise ValidationError("must be at least 1", field="max_ids_per_request")
        if session is not None and not isinstance(session, aiohttp.ClientSession):
            raise ValidationError("must be an aiohttp.ClientSession", field="session")
        register(api_key, client_secret)  # masked in every text the SDK makes from here on
        if rate_limit is not None and not isinstance(rate_limit, RateLimit):
            if isinstance(rate_limit, bool) or not isinstance(rate_limit, int | float):
                raise ValidationError(
                    f"must be requests per second, a RateLimit or None, got {rate_limit!r}",
                    field="rate_limit",
                )
            rate_limit = RateLimit(rate=rate_limit)
        self._shared = _Shared(
            auth=_Auth(api_key=api_key, client_id=client_id, client_secret=client_secret),
            base_url=base,
            detector_base_url=detector,
            limits=limits if limits is not None else Limits(),
            max_ids_per_request=max_ids_per_request,
            session=session,
            owns_session=session is None,
            on_event=on_event,
            rate=RateController(rate_limit),
            media=(
                MediaResolver(upload_to, storage_options)
                if upload_to is not None or storage_options is not None
                else None
            ),
        )
        self._retry = retry if retry is not None else RetryPolicy()
        self._timeout = timeout if timeout is not None else Timeout()
        self._owner = True

    # ---- configuration ----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The API host."""
        return self._shared.base_url

    @property
    def detector_base_url(self) -> str:
        """The legacy detector's host."""
        return self._shared.detector_base_url

    @property
    def retry(self) -> RetryPolicy:
        """The retry policy of this client (or view)."""
        return self._retry

    @property
    def timeout(self) -> Timeout:
        """The per-attempt time limits of this client (or view)."""
        return self._timeout

    @property
    def limits(self) -> Limits:
        """The connection pool limits."""
        return self._shared.limits

    @property
    def rate_limit(self) -> RateLimit:
        """The configured rate limit (``RateLimit()``: discovered from throttles)."""
        return self._shared.rate.limit

    @property
    def max_ids_per_request(self) -> int:
        """Most ids per listbyids/delbyids call."""
        return self._shared.max_ids_per_request

    @property
    def client_id(self) -> str | None:
        """The clientId, if one was configured (webhook decryption needs it)."""
        return self._shared.auth.client_id

    @property
    def client_secret(self) -> str | None:
        """The clientSecret for webhook decryption: the one given, else the API key.

        The docs say the API key *is* the clientSecret. Never logged or shown in a repr.
        """
        auth = self._shared.auth
        return auth.client_secret if auth.client_secret is not None else auth.api_key

    @property
    def is_closed(self) -> bool:
        """True once ``aclose()`` ran."""
        return self._shared.state is _State.CLOSED

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

    def statistics(self) -> ClientStatistics:
        """A snapshot of the request, retry, throttle and token counters and the rate."""
        return self._shared.stats.snapshot(self._shared.rate)

    def __repr__(self) -> str:
        auth = "api_key" if self._shared.auth.api_key is not None else "client_credentials"
        view = "" if self._owner else " view"
        state = self._shared.state.value
        return f"<AsyncClient{view} {self._shared.base_url!r} auth={auth} {state}>"

    # ---- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> AsyncClient:
        shared = self._shared
        if not self._owner:
            raise ClientStateError(
                "a with_options() view shares its parent's session: open the parent client"
            )
        if shared.state is _State.OPEN:
            raise ClientStateError("this AsyncClient is already open")
        if shared.state is _State.CLOSED:
            raise ClientStateError("this AsyncClient was closed; create a new one")
        if shared.session is None:
            limits = shared.limits
            connector_args: dict[str, Any] = {
                "limit": limits.max_connections,
                "limit_per_host": limits.max_connections_per_host,
            }
            if limits.keepalive_timeout is not None:
                connector_args["keepalive_timeout"] = limits.keepalive_timeout
            shared.session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(**connector_args),
                timeout=self._client_timeout(self._timeout),
                headers={"User-Agent": _user_agent()},
            )
        elif shared.session.closed:
            raise ClientStateError("the session passed as session= is already closed")
        shared.state = _State.OPEN
        # The shared poller and swap_many's task group, for this client and its views.
        shared.jobs = await JobService.open(
            _results_fetcher(self),
            self.poll_config,
            max_ids_per_request=shared.max_ids_per_request,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the client and its own session (never a caller-owned one). Idempotent."""
        shared = self._shared
        if not self._owner or shared.state is _State.CLOSED:
            return
        shared.state = _State.CLOSED
        jobs, shared.jobs = shared.jobs, None  # from here on the job methods say "not open"
        try:
            if jobs is not None:
                await jobs.aclose()  # cancels batches and the poller before the session
        finally:
            # Closing while the closing task is being cancelled (Ctrl-C under asyncio.run) must
            # still release the connector, or aiohttp warns about an unclosed session.
            session, shared.session = shared.session, None
            if session is not None and shared.owns_session:
                with anyio.CancelScope(shield=True):
                    await session.close()

    def __del__(self, _warn: Callable[..., None] = warnings.warn) -> None:
        shared: _Shared | None = getattr(self, "_shared", None)
        if getattr(self, "_owner", False) and shared is not None and shared.state is _State.OPEN:
            _warn(
                f"unclosed {self!r}: use 'async with AsyncClient(...)' or 'await client.aclose()'",
                ResourceWarning,
                stacklevel=1,
            )

    def _session(self) -> aiohttp.ClientSession:
        shared = self._shared
        if shared.state is _State.UNOPENED:
            raise ClientStateError(
                "this AsyncClient is not open: use 'async with AsyncClient(...) as client:'"
            )
        if shared.state is _State.CLOSED or shared.session is None:
            raise ClientStateError("this AsyncClient is closed; create a new one")
        if shared.session.closed:
            raise ClientStateError("the caller-owned session was closed under this AsyncClient")
        return shared.session

    # ---- jobs: waiting, batches, webhooks (the job service does the work) ------------------

    def _jobs(self) -> JobService:
        """The open client's job service (shared with its views)."""
        jobs = self._shared.jobs
        if jobs is None:
            raise ClientStateError(
                "this AsyncClient is not open: use 'async with AsyncClient(...) as client:'"
            )
        return jobs

    def _with_webhook_url(self, endpoint: Endpoint[Any, Any], request: Any) -> Any:
        """``request`` with ``use_webhooks``' URL when it creates a job and names no URL."""
        jobs = self._shared.jobs
        return request if jobs is None else jobs.with_webhook_url(endpoint, request)

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

    def _media(self) -> MediaResolver:
        """The client's media resolver (one without ``upload_to`` when none was configured)."""
        shared = self._shared
        if shared.media is None:
            shared.media = MediaResolver()
        return shared.media

    # ---- the one generic call ---------------------------------------------------------------

    async def _call(
        self, endpoint: Endpoint[Any, RespT], request: Any, *, retry: RetryPolicy | None = None
    ) -> RespT:
        """Send ``request`` to ``endpoint`` with retries; return the decoded answer.

        Raises:
            ClientStateError: the client is not open.
            AmbiguousSubmitError: a job-creating request may have reached the server.
            APIError: the server's failure code (after any retries).
            TransportError: no usable answer (after any retries).
        """
        self._session()
        policy = retry if retry is not None else self._retry
        if isinstance(request, _DETECTORS) and isinstance(request.img, Path):
            request = attrs.evolve(request, img=await anyio.Path(request.img).read_bytes())
        if type(request) in MEDIA_TYPES and media_refs(request):
            request = await self._media().resolve(request)  # local/object-store media to URLs
        wire = build_request(endpoint, self._with_webhook_url(endpoint, request))
        started = time.monotonic()
        try:
            try:
                # The fast path: no backoff machinery (generator, details, timers) unless an
                # attempt failed in a way that may be retried.
                result: RespT = await self._attempt(endpoint, wire, request, policy, 1)
            except _Failure as first:
                if not first.retryable or policy.max_attempts == 1:
                    raise
                spent = _first_attempt_seconds.set(time.monotonic() - started)
                try:
                    result = await _retrying(policy)(
                        self, endpoint, wire, request, policy, [0], first
                    )
                finally:
                    _first_attempt_seconds.reset(spent)
        except _Failure as failure:
            error = failure.error
            if endpoint.creates_job and failure.delivery is _Delivery.AMBIGUOUS:
                self._shared.stats.ambiguous_submits += 1
                self._emit("ambiguous_submit", endpoint=endpoint.name, request=request, error=error)
                raise AmbiguousSubmitError(
                    f"{endpoint.name}: the request may have reached the server and created a "
                    f"job ({error}); it was not retried, reconcile before resubmitting",
                    request=request,
                    status=getattr(error, "status", None),
                    body=_body_text(error),
                ) from error
            raise error from error.__cause__
        return result

    async def _attempt(
        self,
        endpoint: Endpoint[Any, RespT],
        wire: WireRequest,
        request: Any,
        policy: RetryPolicy,
        attempt: int,
    ) -> RespT:
        """One attempt (plus one replay after a 1101 in token mode); raises ``_Failure``."""
        shared = self._shared
        auth = shared.auth
        if auth.api_key is not None and endpoint.authenticated:
            # API-key mode: the headers were built once (no token can be refused).
            json_body = wire.content is not None
            headers = auth.key_json_headers if json_body else auth.key_headers
            return await self._paced(endpoint, wire, request, headers, policy, attempt)
        headers, token = await self._auth_headers(endpoint)
        if wire.content is not None:
            headers["Content-Type"] = "application/json"
        try:
            return await self._paced(endpoint, wire, request, headers, policy, attempt)
        except _Failure as failure:
            error = failure.error
            if not (token is not None and isinstance(error, AuthenticationError)):
                raise
            if error.code != 1101:
                raise
        # 1101: the token was refused before anything was done; fetch a new one, replay once.
        shared.stats.token_refreshes += 1
        _logger.info("%s: token refused (1101); fetching a new one", endpoint.name)
        headers, _ = await self._auth_headers(endpoint, stale=token)
        if wire.content is not None:
            headers["Content-Type"] = "application/json"
        return await self._paced(endpoint, wire, request, headers, policy, attempt)

    async def _paced(
        self,
        endpoint: Endpoint[Any, RespT],
        wire: WireRequest,
        request: Any,
        headers: dict[str, str],
        policy: RetryPolicy,
        attempt: int,
    ) -> RespT:
        """Wait for this request's turn at the rate controller, then send it once.

        Nothing has been sent while ``acquire`` waits: cancelling it there loses nothing.
        """
        rate = self._shared.rate
        sent_at = await rate.acquire(poll=endpoint is LIST_RESULTS)
        _tell_batch(endpoint, "sending", name=endpoint.name)
        try:
            result = await self._exchange(endpoint, wire, request, headers, policy, attempt)
        except _Failure as failure:
            if failure.throttled:
                rate.refused(sent_at, retry_after=failure.retry_after)
            elif failure.delivery is _Delivery.ANSWERED:
                rate.accepted(sent_at)  # a definite answer: the rate was not the problem
            raise
        rate.accepted(sent_at)
        return result

    async def _auth_headers(
        self, endpoint: Endpoint[Any, Any], *, stale: str | None = None
    ) -> tuple[dict[str, str], str | None]:
        """The auth header (never both kinds: ``Authorization`` would win, quirk 19)."""
        auth = self._shared.auth
        if not endpoint.authenticated:
            return {}, None
        if auth.api_key is not None:
            return {"x-api-key": auth.api_key}, None
        try:
            token = await self._token(stale=stale)
        except AkoolError as exc:
            # getToken ran its own retries; the request itself was never sent.
            raise _Failure(exc, _Delivery.UNSENT, retryable=False) from exc
        return {"Authorization": f"Bearer {token}"}, token

    async def _token(self, *, stale: str | None = None) -> str:
        """The cached token; one getToken call for any number of concurrent first callers."""
        auth = self._shared.auth
        if auth.token is not None and auth.token != stale:
            return auth.token
        async with auth.lock:
            if auth.token is not None and auth.token != stale:
                return auth.token
            assert auth.client_id is not None
            assert auth.client_secret is not None
            answer = await self._call(
                GET_TOKEN,
                TokenRequest(client_id=auth.client_id, client_secret=auth.client_secret),
            )
            register(answer.token)
            auth.token = answer.token
            self._shared.stats.token_fetches += 1
            self._emit("token_fetched")
            return answer.token

    async def _exchange(
        self,
        endpoint: Endpoint[Any, RespT],
        wire: WireRequest,
        request: Any,
        headers: dict[str, str],
        policy: RetryPolicy,
        attempt: int,
    ) -> RespT:
        """Send once, decode, and classify any failure into a ``_Failure``."""
        shared = self._shared
        session = self._session()
        base = shared.base_url if wire.host is Host.API else shared.detector_base_url
        url = base + wire.path
        if endpoint.creates_job and (sending := submit_sending.get()) is not None:
            sending()  # a batch's submit: from here on it may reach the server
        shared.stats.requests[endpoint.name] += 1
        started = time.monotonic()
        try:
            async with session.request(
                wire.method,
                url,
                params=wire.params,
                # Encoded once in build_request (orjson when installed), not by aiohttp.
                data=wire.content,
                headers=headers,
                timeout=self._client_timeout(self._timeout),
                # Never follow: a redirect would carry the credentials (and a create) to
                # whatever host it names. A caller-owned session's raise_for_status would
                # raise errors holding the request headers.
                allow_redirects=False,
                raise_for_status=False,
            ) as response:
                status = response.status
                response_headers = response.headers
                body = b"" if 300 <= status < 400 else await response.read()
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            elapsed = time.monotonic() - started
            _logger.debug(
                "%s %s -> not connected in %.3fs (attempt %d): %s",
                wire.method,
                wire.path,
                elapsed,
                attempt,
                type(exc).__name__,
            )
            cause = safe_cause(exc)
            error = TransportError(f"{endpoint.name}: could not connect to {base}: {describe(exc)}")
            error.__cause__ = cause
            raise _Failure(error, _Delivery.UNSENT, retryable=True) from cause
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            elapsed = time.monotonic() - started
            _logger.debug(
                "%s %s -> failed in %.3fs (attempt %d): %s",
                wire.method,
                wire.path,
                elapsed,
                attempt,
                type(exc).__name__,
            )
            what = "timed out" if isinstance(exc, TimeoutError) else f"failed: {describe(exc)}"
            cause = safe_cause(exc)
            error = TransportError(f"{endpoint.name}: the request {what}")
            error.__cause__ = cause
            raise _Failure(
                error, _Delivery.AMBIGUOUS, retryable=not endpoint.creates_job
            ) from cause
        elapsed = time.monotonic() - started
        _logger.debug(
            "%s %s -> %d in %.3fs (attempt %d)", wire.method, wire.path, status, elapsed, attempt
        )
        if 300 <= status < 400:
            # Classified like any answer that may have acted: a create is not retried.
            refused = _redirect_error(endpoint, status, url, response_headers.get("Location"))
            raise self._classify(endpoint, refused, status, policy, attempt=attempt)
        try:
            result = decode(endpoint, status, response_headers, body, request=request)
        except (APIError, TransportError) as exc:
            scrub_error(exc)  # what a server sent back may echo the key or the token
            raise self._classify(endpoint, exc, status, policy, attempt=attempt) from exc
        return result

    def _classify(
        self,
        endpoint: Endpoint[Any, Any],
        error: APIError | TransportError,
        status: int,
        policy: RetryPolicy,
        *,
        attempt: int = 1,
    ) -> _Failure:
        """How far a request that got an answer provably got, and whether to retry it."""
        read = not endpoint.creates_job
        if isinstance(error, RateLimitError):
            self._throttle(endpoint, error, status, policy, attempt)
            return _Failure(error, _Delivery.REFUSED, retryable=True, throttled=True)
        if status == 503:
            return _Failure(error, _Delivery.REFUSED, retryable=True)
        if isinstance(error, DetectionError):
            return _Failure(error, _Delivery.ANSWERED, retryable=False)
        if isinstance(error, TransportError | ServerError) or (
            status >= 500 and error.code is None
        ):
            return _Failure(error, _Delivery.AMBIGUOUS, retryable=read)
        return _Failure(error, _Delivery.ANSWERED, retryable=read and status >= 500)

    def _throttle(
        self,
        endpoint: Endpoint[Any, Any],
        error: RateLimitError,
        status: int,
        policy: RetryPolicy,
        attempt: int,
    ) -> None:
        # The rate controller paces the retry (``_paced``); the delay reported is its pacing
        # interval at the new rate, or the server's Retry-After.
        delay = _pace_delay(self, error.retry_after)
        self._shared.stats.throttled += 1
        _logger.info(
            "%s throttled (HTTP %d, code %s): next turn in about %.3fs",
            endpoint.name,
            status,
            error.code,
            delay,
        )
        self._emit("throttled", endpoint=endpoint.name, delay=delay, status=status, code=error.code)
        _tell_batch(endpoint, "throttled", attempt=attempt, delay=delay, error=error)

    @staticmethod
    @functools.lru_cache(maxsize=32)  # one per Timeout in use, not one per request
    def _client_timeout(timeout: Timeout) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(
            total=timeout.total, sock_connect=timeout.connect, sock_read=timeout.read
        )

    def _emit(self, name: str, **data: Any) -> None:
        hook = self._shared.on_event
        if hook is None:
            return
        try:
            hook(name, **data)
        except Exception:
            _logger.exception("the on_event hook raised for %r", name)
