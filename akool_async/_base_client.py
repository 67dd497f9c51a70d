"""The session manager under ``AsyncClient``: configuration, lifecycle and the one ``_call``.

``_BaseClient`` turns the constructor's arguments and the environment into the state a client
shares with its ``with_options`` views (``_Shared``: credentials, hosts, the rate controller,
the counters, the session, the job service and the call pipeline), opens and closes the
session and the job service, and sends every operation through ``_call``: media given as
files or object-store URLs are resolved to URLs (``_storage``), the request is encoded by the
sans-I/O ``_wire.build_request``, and the ``Requester`` (``_requester``) does auth, pacing,
the exchange (``_transport``), classification and retries.

``AsyncClient`` (``_client``) adds the public surface: the operations, the job methods and
the conveniences. The job methods hand over to the client's ``JobService`` (``_service``):
opened at the end of ``_open``, held by ``_Shared``, closed at the start of ``aclose()``,
before the session.
"""

from __future__ import annotations

import enum
import os
import warnings
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

import aiohttp
import anyio
import attrs

from ._config import Limits, Timeout
from ._endpoints import LIST_RESULTS, Endpoint
from ._errors import ClientStateError, ValidationError
from ._jobs._poll_config import PollConfig
from ._jobs._poller import FetchResults
from ._jobs._service import JobService
from ._models import ResultsQuery, SwapResult
from ._ratelimit import RateController, RateLimit
from ._redact import register
from ._requester import EventHook, Requester, _Auth
from ._retry import RetryPolicy
from ._stats import ClientStatistics, _Stats
from ._storage import MEDIA_TYPES, MediaResolver, media_refs
from ._transport import open_session
from ._wire import build_request

__all__ = ["DEFAULT_BASE_URL", "DEFAULT_LEGACY_DETECTOR_URL"]

#: What a call decodes to (the endpoint's response type).
RespT = TypeVar("RespT")

#: The API host (contract section 1).
DEFAULT_BASE_URL: Final = "https://openapi.akool.com"
#: The legacy detector's host, used when ``base_url`` is the default.
DEFAULT_LEGACY_DETECTOR_URL: Final = "https://sg3.akool.com"


class _State(enum.Enum):
    UNOPENED = "unopened"
    OPEN = "open"
    CLOSED = "closed"


@attrs.define(eq=False)
class _Connection:
    """The session and the client's lifecycle state (shared with the ``Requester``)."""

    session: aiohttp.ClientSession | None
    owns: bool
    state: _State = _State.UNOPENED

    def live(self) -> aiohttp.ClientSession:
        """The session of the open client; ``ClientStateError`` if it is not open."""
        if self.state is _State.UNOPENED:
            raise ClientStateError(
                "this AsyncClient is not open: use 'async with AsyncClient(...) as client:'"
            )
        if self.state is _State.CLOSED or self.session is None:
            raise ClientStateError("this AsyncClient is closed; create a new one")
        if self.session.closed:
            raise ClientStateError("the caller-owned session was closed under this AsyncClient")
        return self.session


@attrs.define(kw_only=True, eq=False)
class _Shared:
    """What a client and its ``with_options`` views share."""

    auth: _Auth
    base_url: str
    detector_base_url: str
    limits: Limits
    max_ids_per_request: int
    connection: _Connection
    on_event: EventHook | None
    rate: RateController = attrs.field(factory=RateController)
    stats: _Stats = attrs.field(factory=_Stats)
    media: MediaResolver | None = None
    #: The poller, the batches and the webhook state while the client is open (else None).
    jobs: JobService | None = None
    #: The call pipeline every operation ends in (``_requester``).
    requester: Requester = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        # No reference back to this object (nor to the client): an unclosed client is
        # freed, and warned about, as soon as it is dropped, not at the next GC.
        self.requester = Requester(
            auth=self.auth,
            base_url=self.base_url,
            detector_base_url=self.detector_base_url,
            rate=self.rate,
            stats=self.stats,
            on_event=self.on_event,
            session=self.connection.live,
        )

    @property
    def state(self) -> _State:
        return self.connection.state

    @property
    def session(self) -> aiohttp.ClientSession | None:
        return self.connection.session


def _results_fetcher(client: _BaseClient) -> FetchResults:
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


def _with_webhook_url(jobs: JobService | None, endpoint: Endpoint[Any, Any], request: Any) -> Any:
    """``request`` with ``use_webhooks``' URL when it creates a job and names no URL."""
    return request if jobs is None else jobs.with_webhook_url(endpoint, request)


class _BaseClient:
    """Configuration, lifecycle and the generic call of ``AsyncClient`` (documented there)."""

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
            connection=_Connection(session, owns=session is None),
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

    def statistics(self) -> ClientStatistics:
        """A snapshot of the request, retry, throttle and token counters and the rate."""
        return self._shared.stats.snapshot(self._shared.rate)

    def __repr__(self) -> str:
        auth = "api_key" if self._shared.auth.api_key is not None else "client_credentials"
        view = "" if self._owner else " view"
        state = self._shared.state.value
        return f"<AsyncClient{view} {self._shared.base_url!r} auth={auth} {state}>"

    # ---- lifecycle --------------------------------------------------------------------------

    async def _open(self, poll_config: PollConfig) -> None:
        """Open the session (unless caller-owned) and the job service, paced by ``poll_config``."""
        shared = self._shared
        if not self._owner:
            raise ClientStateError(
                "a with_options() view shares its parent's session: open the parent client"
            )
        if shared.state is _State.OPEN:
            raise ClientStateError("this AsyncClient is already open")
        if shared.state is _State.CLOSED:
            raise ClientStateError("this AsyncClient was closed; create a new one")
        connection = shared.connection
        if connection.session is None:
            connection.session = open_session(shared.limits, self._timeout)
        elif connection.session.closed:
            raise ClientStateError("the session passed as session= is already closed")
        connection.state = _State.OPEN
        # The shared poller and swap_many's task group, for this client and its views.
        shared.jobs = await JobService.open(
            _results_fetcher(self),
            poll_config,
            max_ids_per_request=shared.max_ids_per_request,
        )

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
        shared.connection.state = _State.CLOSED
        jobs, shared.jobs = shared.jobs, None  # from here on the job methods say "not open"
        try:
            if jobs is not None:
                await jobs.aclose()  # cancels batches and the poller before the session
        finally:
            # Closing while the closing task is being cancelled (Ctrl-C under asyncio.run) must
            # still release the connector, or aiohttp warns about an unclosed session.
            connection = shared.connection
            session, connection.session = connection.session, None
            if session is not None and connection.owns:
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
        return self._shared.connection.live()

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
        # A detector's image given as a path is read off the loop before it is encoded.
        if endpoint.image_encoding is not None and isinstance(request.img, Path):
            request = attrs.evolve(request, img=await anyio.Path(request.img).read_bytes())
        if type(request) in MEDIA_TYPES and media_refs(request):
            request = await self._media().resolve(request)  # local/object-store media to URLs
        wire = build_request(endpoint, _with_webhook_url(self._shared.jobs, endpoint, request))
        return await self._shared.requester.call(endpoint, wire, request, policy, self._timeout)
