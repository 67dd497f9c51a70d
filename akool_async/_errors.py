"""The one exception tree of akool_async.

Every failure the SDK raises is an ``AkoolError``; aiohttp and cattrs exceptions are translated
at a single boundary (``raise ... from``) and never escape on their own::

    AkoolError
    +-- ValidationError (ValueError)          bad input, caught before any request is sent
    +-- ClientStateError (RuntimeError)       client used before ``__aenter__`` or after close
    +-- TransportError                        no usable response (connect, timeout, bad body)
    |   +-- AmbiguousSubmitError              a create that may have reached the server
    +-- APIError                              the server answered with a failure ``code``
    |   +-- ParameterError                    1003
    |   +-- RateLimitError                    1005 (and HTTP 429)
    |   +-- InsufficientCreditError           1006, 1104
    |   +-- TooManyFacesError                 1007
    |   +-- NotFoundError                     1008, 1014
    |   +-- PermissionDeniedError             1004, 1009, 1010, 1011, 1103, 1109, 1213, 1221
    |   +-- AuthenticationError               1101, 1102
    |   +-- AccountBannedError                1200
    |   +-- MediaError                        1015, 1016, 1108, 1204, 1207-1210
    |   +-- ServerError                       2001 and HTTP 5xx
    |   +-- DetectionError                    a detector's ``error_code != 0``, Analyze
    |                                             Frames' ``success: false``
    +-- JobError                              a job that did not end in success
    |   +-- JobFailedError                    status 4
    |   +-- JobTimeoutError (TimeoutError)    no terminal status before the deadline
    |   +-- JobNotFoundError                  listbyids kept leaving the id out
    +-- BatchDeadlineError (TimeoutError)     a batch's deadline passed before the submit
    +-- DownloadError                         a result file that could not be downloaded intact
    +-- StorageError                          an object store refused an input or an output
    +-- JournalError                          the batch journal is unusable or mismatched
    +-- WebhookVerificationError              a callback that failed signature or decryption

The command line's ``ManifestError`` (a ``ValidationError``, in ``akool_async.cli``) is the one
exception defined elsewhere: it is the CLI's, and the SDK never imports the CLI.

Exceptions carry data (``code``, ``status``, ``body``, ``retry_after``, ``request``);
``str(exc)`` is for humans. Decisions are made on ``code``, never on the server's ``msg``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ._redact import redact

__all__ = [
    "APIError",
    "AccountBannedError",
    "AkoolError",
    "AmbiguousSubmitError",
    "AuthenticationError",
    "BatchDeadlineError",
    "ClientStateError",
    "DetectionError",
    "DownloadError",
    "InsufficientCreditError",
    "JobError",
    "JobFailedError",
    "JobNotFoundError",
    "JobTimeoutError",
    "JournalError",
    "MediaError",
    "NotFoundError",
    "ParameterError",
    "PermissionDeniedError",
    "RateLimitError",
    "ServerError",
    "StorageError",
    "TooManyFacesError",
    "TransportError",
    "ValidationError",
    "WebhookVerificationError",
    "error_for_code",
]


class AkoolError(Exception):
    """Base class of every exception raised by akool_async.

    Its message never holds a configured secret or a bearer token handed out: they are
    masked (``***``) as the exception is built, whatever put them there.
    """

    def __init__(self, *args: object) -> None:
        super().__init__(*(redact(arg) if isinstance(arg, str) else arg for arg in args))


class ValidationError(AkoolError, ValueError):
    """Input that the API would reject, caught before any request was sent.

    Attributes:
        field: Dotted path of the offending field (``"source[3].opts"``), or None.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.reason = message


class ClientStateError(AkoolError, RuntimeError):
    """The client was used before it was opened or after it was closed."""


class TransportError(AkoolError):
    """No usable response: connection failure, timeout, or a body that is not the API's JSON.

    Attributes:
        status: The HTTP status if a response arrived, else None.
        body: Up to 2 KiB of the raw response body if one arrived, else None.
    """

    def __init__(self, message: str, *, status: int | None = None, body: str | None = None):
        super().__init__(message)
        self.status = status
        self.body = body


class AmbiguousSubmitError(TransportError):
    """A job-creating request failed after it may have reached the server.

    The job may or may not exist (and may or may not have been charged). It is never retried
    silently; reconcile it yourself (for example by checking your webhook receiver or the
    AKOOL dashboard) before submitting it again.

    Attributes:
        request: The request object whose submission is ambiguous.
    """

    def __init__(
        self,
        message: str,
        *,
        request: object,
        status: int | None = None,
        body: str | None = None,
    ) -> None:
        super().__init__(message, status=status, body=body)
        self.request = request


class APIError(AkoolError):
    """The server answered, and the answer was a failure ``code``.

    Attributes:
        code: AKOOL's business code (``1003``, ``1101``...), or None for a bare HTTP failure.
        message: The server's ``msg`` text, for humans only.
        status: The HTTP status of the response.
        body: The decoded JSON body (or None).
        retry_after: Seconds the server asked us to wait, when it said so.
    """

    codes: ClassVar[frozenset[int]] = frozenset()

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        status: int | None = None,
        body: Any = None,
        retry_after: float | None = None,
    ) -> None:
        label = f"[{code}] " if code is not None else ""
        super().__init__(f"{label}{message}" + (f" (HTTP {status})" if status else ""))
        self.code = code
        self.message = message
        self.status = status
        self.body = body
        self.retry_after = retry_after


class ParameterError(APIError):
    """1003: a parameter is wrong or empty."""

    codes = frozenset({1003})


class RateLimitError(APIError):
    """1005 (or HTTP 429): operations too frequent."""

    codes = frozenset({1005})


class InsufficientCreditError(APIError):
    """1006 / 1104: the account's credit balance is too low."""

    codes = frozenset({1006, 1104})


class TooManyFacesError(APIError):
    """1007: more than 8 faces to swap."""

    codes = frozenset({1007})


class NotFoundError(APIError):
    """1008 / 1014: content or resource does not exist."""

    codes = frozenset({1008, 1014})


class PermissionDeniedError(APIError):
    """The account may not do this (verification, payment, subscription, permission)."""

    codes = frozenset({1004, 1009, 1010, 1011, 1103, 1109, 1213, 1221})


class AuthenticationError(APIError):
    """1101 / 1102: the credentials are invalid, expired or missing."""

    codes = frozenset({1101, 1102})


class AccountBannedError(APIError):
    """1200: the account is blocked."""

    codes = frozenset({1200})


class MediaError(APIError):
    """The media could not be processed (duration, size, fps, codec, swap failure)."""

    codes = frozenset({1015, 1016, 1108, 1204, 1207, 1208, 1209, 1210})


class ServerError(APIError):
    """2001 or an HTTP 5xx with a JSON body: the server failed."""

    codes = frozenset({2001})


class DetectionError(APIError):
    """A face detector answered with ``error_code != 0``, or Analyze Frames with
    ``success: false`` (then ``code`` is None; ``status`` is 400 for bad input, 500 when
    processing failed)."""


class JobError(AkoolError):
    """A job that did not end in success.

    Attributes:
        job_id: The job's ``_id``.
        result: The last ``SwapResult`` seen for it, if any.
    """

    def __init__(self, message: str, *, job_id: str, result: object | None = None) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.result = result


class JobFailedError(JobError):
    """The job ended with status 4 (failed)."""


class JobTimeoutError(JobError, TimeoutError):
    """The job had no terminal status before its deadline."""


class JobNotFoundError(JobError):
    """listbyids kept leaving the job out (unknown, deleted or expired id)."""


class DownloadError(AkoolError):
    """A finished job's result file could not be downloaded intact.

    Attributes:
        url: The result URL.
        status: The HTTP status of the last attempt, if one answered.
        reason: What went wrong (``"HTTP 404"``, ``"short body"``, ``"MD5 mismatch"``...).
        attempts: Download attempts made.
    """

    def __init__(
        self, message: str, *, url: str, reason: str, status: int | None = None, attempts: int = 1
    ) -> None:
        super().__init__(message)
        self.url = url
        self.reason = reason
        self.status = status
        self.attempts = attempts


class BatchDeadlineError(AkoolError, TimeoutError):
    """The batch's ``deadline`` passed before this request was submitted; it never was.

    Requests already submitted when the deadline passes end with ``JobTimeoutError`` instead
    (their job id is kept, so you can look them up later or resume the batch).
    """


class StorageError(AkoolError):
    """An object store refused an input or an output (credentials, permissions, a failure).

    Attributes:
        field: The request field whose media it was (``"source_url"``), or None for outputs.
        url: The object-store URL concerned.
        reason: What went wrong.
    """

    def __init__(self, message: str, *, url: str, reason: str, field: str | None = None):
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.url = url
        self.reason = reason


class JournalError(AkoolError):
    """The batch journal cannot be used (corrupt, locked, or written by a different batch)."""


class WebhookVerificationError(AkoolError):
    """A webhook callback failed verification; nothing in it may be trusted.

    Attributes:
        reason: Why, for code to act on (``str(exc)`` is for humans): ``"json"`` (the body
            or the decrypted payload is not a UTF-8 JSON object), ``"fields"`` (a field is
            missing or has the wrong type or form), ``"signature"`` (mismatch),
            ``"timestamp"`` (outside the window), ``"base64"`` (``dataEncrypt`` is not
            canonical Base64), ``"padding"`` (not whole AES blocks, or bad PKCS#7: usually the
            wrong secret), ``"replay"`` (already accepted), or ``"unknown"``.
    """

    def __init__(self, message: str, *, reason: str = "unknown") -> None:
        super().__init__(message)
        self.reason = reason


_BY_CODE: dict[int, type[APIError]] = {
    code: cls
    for cls in (
        ParameterError,
        RateLimitError,
        InsufficientCreditError,
        TooManyFacesError,
        NotFoundError,
        PermissionDeniedError,
        AuthenticationError,
        AccountBannedError,
        MediaError,
        ServerError,
    )
    for code in cls.codes
}


def error_for_code(code: int | None) -> type[APIError]:
    """Return the most specific ``APIError`` subclass for an AKOOL business code."""
    if code is None:
        return APIError
    return _BY_CODE.get(code, APIError)
