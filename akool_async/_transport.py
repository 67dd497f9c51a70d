"""The aiohttp boundary of API calls: one request out, one answer (or one mapped error) back.

Everything aiohttp does for an API call happens here, and every aiohttp exception is mapped
here, once (as httpx's ``_transports/default.py`` maps httpcore's and aiobotocore's
``httpsession.send`` maps aiohttp's): ``map_aiohttp_exception`` turns them into an
``Unanswered`` carrying a safe ``TransportError`` and whether the request may have reached the
server. Messages are built from safe parts (the endpoint, the host, the exception's class and
``_redact.describe``), never from a foreign exception's repr, whose ``RequestInfo`` holds the
request headers.

What an answer *means* (success, a failure code, how far the request provably got) is the
sans-I/O ``_wire.decode`` and the call pipeline's ``_classify`` (``_requester``), not this
module's business.
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import time
from collections.abc import Mapping
from typing import Any, Final, NamedTuple

import aiohttp

from ._config import Limits, Timeout
from ._errors import TransportError
from ._redact import describe, safe_cause

__all__ = [
    "Answer",
    "Unanswered",
    "client_timeout",
    "AIOHTTP_FAILURES",
    "map_aiohttp_exception",
    "open_session",
    "send",
]

_logger = logging.getLogger("akool_async")


class Answer(NamedTuple):
    """What the server sent back: a redirect's body is never read (nor followed)."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class Unanswered(Exception):
    """No answer came back; ``sent``: the request may have reached the server."""

    def __init__(self, error: TransportError, *, sent: bool, kind: str) -> None:
        super().__init__(str(error))
        self.error = error
        self.sent = sent
        self.kind = kind  # the class name of what aiohttp raised, for the DEBUG line


#: What aiohttp (and the socket and timers under it) raise for a request without an answer.
AIOHTTP_FAILURES: Final = (aiohttp.ClientError, TimeoutError, OSError)


def map_aiohttp_exception(exc: BaseException, name: str, base: str) -> Unanswered:
    """The ``Unanswered`` for an ``AIOHTTP_FAILURES`` exception of a request to ``base``.

    Not connected (the connection could not be made, or not in time) is ``sent=False``:
    nothing reached the server. Anything later (a read timeout, a dropped connection, a
    broken body) may have reached it: ``sent=True``. The ``TransportError``'s cause is a
    redacted stand-in for the aiohttp exception (``_redact.safe_cause``).
    """
    if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError):
        error = TransportError(f"{name}: could not connect to {base}: {describe(exc)}")
        sent = False
    else:
        what = "timed out" if isinstance(exc, TimeoutError) else f"failed: {describe(exc)}"
        error = TransportError(f"{name}: the request {what}")
        sent = True
    error.__cause__ = safe_cause(exc)
    unanswered = Unanswered(error, sent=sent, kind=type(exc).__name__)
    unanswered.__cause__ = error.__cause__
    return unanswered


async def send(
    session: aiohttp.ClientSession,
    *,
    name: str,
    method: str,
    base: str,
    path: str,
    params: Any,
    content: bytes | None,
    headers: Mapping[str, str],
    time_limits: Timeout,
    attempt: int,
) -> Answer:
    """Send one API request and read its answer; one DEBUG line whatever happens.

    Raises:
        Unanswered: no answer (see ``map_aiohttp_exception``).
    """
    started = time.monotonic()
    try:
        async with session.request(
            method,
            base + path,
            params=params,
            # Encoded once in build_request (orjson when installed), not by aiohttp.
            data=content,
            headers=headers,
            timeout=client_timeout(time_limits),
            # Never follow: a redirect would carry the credentials (and a create) to
            # whatever host it names. A caller-owned session's raise_for_status would
            # raise errors holding the request headers.
            allow_redirects=False,
            raise_for_status=False,
        ) as response:
            status = response.status
            body = b"" if 300 <= status < 400 else await response.read()
            answer = Answer(status, response.headers, body)
    except AIOHTTP_FAILURES as exc:  # the one place they are caught
        lost = map_aiohttp_exception(exc, name, base)
        _logger.debug(
            "%s %s -> %s in %.3fs (attempt %d): %s",
            method,
            path,
            "failed" if lost.sent else "not connected",
            time.monotonic() - started,
            attempt,
            lost.kind,
        )
        raise lost from lost.__cause__
    _logger.debug(
        "%s %s -> %d in %.3fs (attempt %d)",
        method,
        path,
        answer.status,
        time.monotonic() - started,
        attempt,
    )
    return answer


@functools.lru_cache(maxsize=32)  # one per Timeout in use, not one per request
def client_timeout(time_limits: Timeout) -> aiohttp.ClientTimeout:
    """``time_limits`` as aiohttp's per-request limits."""
    return aiohttp.ClientTimeout(
        total=time_limits.total, sock_connect=time_limits.connect, sock_read=time_limits.read
    )


def open_session(limits: Limits, time_limits: Timeout) -> aiohttp.ClientSession:
    """The client's own session: a pool sized by ``limits``, the SDK's User-Agent."""
    connector_args: dict[str, Any] = {
        "limit": limits.max_connections,
        "limit_per_host": limits.max_connections_per_host,
    }
    if limits.keepalive_timeout is not None:
        connector_args["keepalive_timeout"] = limits.keepalive_timeout
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(**connector_args),
        timeout=client_timeout(time_limits),
        headers={"User-Agent": _user_agent()},
    )


def _user_agent() -> str:
    try:
        version = importlib.metadata.version("akool-async")
    except importlib.metadata.PackageNotFoundError:
        version = "0+unknown"
    return f"akool-async/{version}"
