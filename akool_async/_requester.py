"""The call pipeline behind every operation: auth, pacing, one exchange, classification, retries.

``Requester.call(endpoint, wire, request, policy, time_limits)`` sends an encoded request
(``_wire.build_request``) and returns the decoded answer:

1. each attempt adds the auth header (fetching the getToken token once, under a lock, in
   client-id mode), waits for its turn at the client-wide rate controller (``_ratelimit``),
   sends through the aiohttp boundary (``_transport``, which maps every aiohttp exception),
   and decodes with ``_wire.decode``;
2. a failed attempt is classified by how far the request provably got (``_Delivery``) and
   retried by ``_retry.retrying`` under the call's ``RetryPolicy`` when that is safe:

   * reads (listbyids, quota, detectors, getToken, delbyids) on a transport error, HTTP 5xx,
     1005 or HTTP 429;
   * job-creating POSTs only when the request never reached the server (the connection could
     not be made) or the server refused it without acting (1005, HTTP 429, HTTP 503). A
     create that may have been accepted (read timeout, dropped connection, other 5xx, a
     malformed 200) raises ``AmbiguousSubmitError`` and is never retried silently.

Every attempt anywhere (submitters and pollers together) is paced by one ``RateController``
per client; a 1005/429 lowers its rate for everybody (once per throttle episode), not only
for the request that was refused, and the refused request is retried at its next turn.

One ``Requester`` serves a client and its ``with_options`` views (their retry policy and
timeout are arguments of each call); it counts into the client's ``_Stats`` and reports to
its ``on_event`` hook.
"""

from __future__ import annotations

import enum
import functools
import json
import logging
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit

import aiohttp
import anyio
import attrs

from ._config import Timeout
from ._endpoints import GET_TOKEN, Endpoint, Host
from ._errors import (
    AkoolError,
    AmbiguousSubmitError,
    APIError,
    AuthenticationError,
    DetectionError,
    RateLimitError,
    ServerError,
    TransportError,
)
from ._models import TokenRequest
from ._ratelimit import RateController
from ._redact import register, scrub_error
from ._retry import Retryable, RetryPolicy, retrying
from ._stats import _Stats
from ._transport import Unanswered, send
from ._wire import BODY_LIMIT, WireRequest, build_request, decode

__all__ = ["EventHook", "Requester", "submit_events", "submit_sending"]

#: What a call decodes to (the endpoint's response type).
RespT = TypeVar("RespT")

#: ``on_event(name, **data)``: called synchronously; exceptions are logged and swallowed.
EventHook = Callable[..., None]

_logger = logging.getLogger("akool_async")

#: Set inside a batch's per-request task when the batch has an ``on_event`` hook: the client
#: reports that request's submit retries and throttles through it (``report(kind, **data)``),
#: so a batch's events include what the client's retry loop did for each request.
submit_events: ContextVar[Callable[..., None] | None] = ContextVar(
    "akool_async_submit_events", default=None
)
#: Set by a batch around each submit: the client calls it right before the request's bytes
#: go out (each attempt), so the batch knows a submit waiting at the throttle gate, for a
#: token or in backoff was never sent. It may raise to stop the attempt before it is sent.
submit_sending: ContextVar[Callable[[], None] | None] = ContextVar(
    "akool_async_submit_sending", default=None
)


class _Delivery(enum.Enum):
    """How far a failed attempt provably got."""

    UNSENT = "unsent"  # never reached the server: no connection, or failed before sending
    REFUSED = "refused"  # the server answered that it did not act (1005, 429, 503)
    AMBIGUOUS = "ambiguous"  # it may have been accepted (timeout, dropped, 5xx, bad body)
    ANSWERED = "answered"  # the server answered with a definite failure code


class _Failure(Retryable):
    """One failed attempt, classified; ``retrying`` retries it when ``retryable``."""

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


# --------------------------------------------------------------------------------------------
# Retries (``_retry.retrying``) and what they report


def _tell_batch(endpoint: Endpoint[Any, Any], kind: str, **data: Any) -> None:
    """Report a submit's retry or throttle to the batch request it belongs to, if any."""
    if endpoint.creates_job and (report := submit_events.get()) is not None:
        report(kind, **data)


def _pace_delay(rate: RateController, retry_after: float | None) -> float:
    """About how long a throttled request waits for its next turn."""
    return retry_after if retry_after is not None else 1.0 / rate.rate()


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
# The pipeline


@attrs.define(kw_only=True, eq=False)
class Requester:
    """Sends a client's (and its views') encoded requests; see the module docstring."""

    auth: _Auth
    base_url: str
    detector_base_url: str
    rate: RateController
    stats: _Stats
    on_event: EventHook | None
    #: The open client's session (raises ``ClientStateError`` when it is not open).
    session: Callable[[], aiohttp.ClientSession]

    async def call(
        self,
        endpoint: Endpoint[Any, RespT],
        wire: WireRequest,
        request: Any,
        policy: RetryPolicy,
        time_limits: Timeout,
    ) -> RespT:
        """Send ``wire`` (encoded from ``request``) with retries; return the decoded answer.

        Raises:
            ClientStateError: the client is not open.
            AmbiguousSubmitError: a job-creating request may have reached the server.
            APIError: the server's failure code (after any retries).
            TransportError: no usable answer (after any retries).
        """
        started = time.monotonic()
        try:
            try:
                # The fast path: no backoff machinery (generator, details, timers) unless an
                # attempt failed in a way that may be retried.
                result: RespT = await self._attempt(endpoint, wire, request, policy, time_limits, 1)
            except _Failure as first:
                if not first.retryable or policy.max_attempts == 1:
                    raise
                result = await retrying(
                    policy,
                    functools.partial(self._attempt, endpoint, wire, request, policy, time_limits),
                    first=first,
                    spent=time.monotonic() - started,
                    on_retry=functools.partial(self._retried, endpoint),
                )
        except _Failure as failure:
            error = failure.error
            if endpoint.creates_job and failure.delivery is _Delivery.AMBIGUOUS:
                self.stats.ambiguous_submits += 1
                self.emit("ambiguous_submit", endpoint=endpoint.name, request=request, error=error)
                raise AmbiguousSubmitError(
                    f"{endpoint.name}: the request may have reached the server and created a "
                    f"job ({error}); it was not retried, reconcile before resubmitting",
                    request=request,
                    status=getattr(error, "status", None),
                    body=_body_text(error),
                ) from error
            raise error from error.__cause__
        return result

    def _retried(
        self, endpoint: Endpoint[Any, Any], attempt: int, delay: float, failure: _Failure
    ) -> None:
        """Count, log and report a retry of ``endpoint`` after attempt ``attempt`` failed."""
        self.stats.retries[endpoint.name] += 1
        if failure.paced:  # it waits at the rate controller instead: about one turn
            delay = _pace_delay(self.rate, failure.retry_after)
        _logger.info(
            "retrying %s in %.3fs after attempt %d: %s",
            endpoint.name,
            delay,
            attempt,
            failure.error,
        )
        self.emit(
            "retried", endpoint=endpoint.name, attempt=attempt, delay=delay, error=failure.error
        )
        _tell_batch(endpoint, "retried", attempt=attempt, delay=delay, error=failure.error)

    def emit(self, name: str, **data: Any) -> None:
        """Call the ``on_event`` hook, if any; its exceptions are logged, never raised."""
        hook = self.on_event
        if hook is None:
            return
        try:
            hook(name, **data)
        except Exception:
            _logger.exception("the on_event hook raised for %r", name)

    async def _attempt(
        self,
        endpoint: Endpoint[Any, RespT],
        wire: WireRequest,
        request: Any,
        policy: RetryPolicy,
        time_limits: Timeout,
        attempt: int,
    ) -> RespT:
        """One attempt (plus one replay after a 1101 in token mode); raises ``_Failure``."""
        auth = self.auth
        if auth.api_key is not None and endpoint.authenticated:
            # API-key mode: the headers were built once (no token can be refused).
            json_body = wire.content is not None
            headers = auth.key_json_headers if json_body else auth.key_headers
            return await self._paced(endpoint, wire, request, headers, policy, time_limits, attempt)
        headers, token = await self._auth_headers(endpoint, policy, time_limits)
        if wire.content is not None:
            headers["Content-Type"] = "application/json"
        try:
            return await self._paced(endpoint, wire, request, headers, policy, time_limits, attempt)
        except _Failure as failure:
            error = failure.error
            if not (token is not None and isinstance(error, AuthenticationError)):
                raise
            if error.code != 1101:
                raise
        # 1101: the token was refused before anything was done; fetch a new one, replay once.
        self.stats.token_refreshes += 1
        _logger.info("%s: token refused (1101); fetching a new one", endpoint.name)
        headers, _ = await self._auth_headers(endpoint, policy, time_limits, stale=token)
        if wire.content is not None:
            headers["Content-Type"] = "application/json"
        return await self._paced(endpoint, wire, request, headers, policy, time_limits, attempt)

    async def _paced(
        self,
        endpoint: Endpoint[Any, RespT],
        wire: WireRequest,
        request: Any,
        headers: dict[str, str],
        policy: RetryPolicy,
        time_limits: Timeout,
        attempt: int,
    ) -> RespT:
        """Wait for this request's turn at the rate controller, then send it once.

        Nothing has been sent while ``acquire`` waits: cancelling it there loses nothing.
        """
        rate = self.rate
        sent_at = await rate.acquire(poll=endpoint.status_poll)
        _tell_batch(endpoint, "sending", name=endpoint.name)
        try:
            result = await self._exchange(
                endpoint, wire, request, headers, policy, time_limits, attempt
            )
        except _Failure as failure:
            if failure.throttled:
                rate.refused(sent_at, retry_after=failure.retry_after)
            elif failure.delivery is _Delivery.ANSWERED:
                rate.accepted(sent_at)  # a definite answer: the rate was not the problem
            raise
        rate.accepted(sent_at)
        return result

    async def _auth_headers(
        self,
        endpoint: Endpoint[Any, Any],
        policy: RetryPolicy,
        time_limits: Timeout,
        *,
        stale: str | None = None,
    ) -> tuple[dict[str, str], str | None]:
        """The auth header (never both kinds: ``Authorization`` would win, quirk 19)."""
        auth = self.auth
        if not endpoint.authenticated:
            return {}, None
        if auth.api_key is not None:
            return {"x-api-key": auth.api_key}, None
        try:
            token = await self._token(policy, time_limits, stale=stale)
        except AkoolError as exc:
            # getToken ran its own retries; the request itself was never sent.
            raise _Failure(exc, _Delivery.UNSENT, retryable=False) from exc
        return {"Authorization": f"Bearer {token}"}, token

    async def _token(self, policy: RetryPolicy, time_limits: Timeout, *, stale: str | None) -> str:
        """The cached token; one getToken call for any number of concurrent first callers."""
        auth = self.auth
        if auth.token is not None and auth.token != stale:
            return auth.token
        async with auth.lock:
            if auth.token is not None and auth.token != stale:
                return auth.token
            assert auth.client_id is not None
            assert auth.client_secret is not None
            self.session()  # still open
            request = TokenRequest(client_id=auth.client_id, client_secret=auth.client_secret)
            answer = await self.call(
                GET_TOKEN, build_request(GET_TOKEN, request), request, policy, time_limits
            )
            register(answer.token)
            auth.token = answer.token
            self.stats.token_fetches += 1
            self.emit("token_fetched")
            return answer.token

    async def _exchange(
        self,
        endpoint: Endpoint[Any, RespT],
        wire: WireRequest,
        request: Any,
        headers: dict[str, str],
        policy: RetryPolicy,
        time_limits: Timeout,
        attempt: int,
    ) -> RespT:
        """Send once, decode, and classify any failure into a ``_Failure``."""
        session = self.session()
        base = self.base_url if wire.host is Host.API else self.detector_base_url
        if endpoint.creates_job and (sending := submit_sending.get()) is not None:
            sending()  # a batch's submit: from here on it may reach the server
        self.stats.requests[endpoint.name] += 1
        try:
            answer = await send(
                session,
                name=endpoint.name,
                method=wire.method,
                base=base,
                path=wire.path,
                params=wire.params,
                content=wire.content,
                headers=headers,
                time_limits=time_limits,
                attempt=attempt,
            )
        except Unanswered as lost:
            if lost.sent:
                failure = _Failure(
                    lost.error, _Delivery.AMBIGUOUS, retryable=not endpoint.creates_job
                )
            else:
                failure = _Failure(lost.error, _Delivery.UNSENT, retryable=True)
            raise failure from lost.error.__cause__
        status = answer.status
        if 300 <= status < 400:
            # Classified like any answer that may have acted: a create is not retried.
            location = answer.headers.get("Location")
            refused = _redirect_error(endpoint, status, base + wire.path, location)
            raise self._classify(endpoint, refused, status, policy, attempt=attempt)
        try:
            result = decode(endpoint, status, answer.headers, answer.body, request=request)
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
        delay = _pace_delay(self.rate, error.retry_after)
        self.stats.throttled += 1
        _logger.info(
            "%s throttled (HTTP %d, code %s): next turn in about %.3fs",
            endpoint.name,
            status,
            error.code,
            delay,
        )
        self.emit("throttled", endpoint=endpoint.name, delay=delay, status=status, code=error.code)
        _tell_batch(endpoint, "throttled", attempt=attempt, delay=delay, error=error)
