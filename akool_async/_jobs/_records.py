"""What a journal row says: request identity, and outcomes written down and read back.

A request is identified by ``request_key``: the sha256 of its canonical wire JSON. A result is
stored as its listbyids JSON (``result_json``), an error as its class name, message and code
(``error_columns``); ``rebuild_error`` makes the same exception again for a resumed outcome.
``never_acted`` is the resubmission rule: which failed submits provably left AKOOL untouched.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from enum import Enum
from typing import Any, Final

import attrs

from akool_async import _errors
from akool_async._endpoints import ENDPOINTS, Endpoint
from akool_async._errors import (
    AccountBannedError,
    AkoolError,
    AmbiguousSubmitError,
    APIError,
    AuthenticationError,
    BatchDeadlineError,
    ClientStateError,
    DownloadError,
    InsufficientCreditError,
    JobError,
    JournalError,
    RateLimitError,
    ServerError,
    TransportError,
    ValidationError,
)
from akool_async._models import MediaType, SwapJob, SwapResult
from akool_async._redact import redact
from akool_async._wire import build_request, converter

from ._journal import JournalRecord

__all__ = [
    "SUBMIT_ENDPOINTS",
    "ErrorColumns",
    "error_columns",
    "job_from_record",
    "never_acted",
    "rebuild_error",
    "request_key",
    "result_from_json",
    "result_json",
    "submit_endpoint",
]

#: The job-creating endpoint of each request class.
SUBMIT_ENDPOINTS: Final[Mapping[type[Any], Endpoint[Any, SwapJob]]] = {
    endpoint.request_type: endpoint for endpoint in ENDPOINTS.values() if endpoint.creates_job
}
_ERROR_TYPES: Final[Mapping[str, type[AkoolError]]] = {
    name: obj
    for name in _errors.__all__
    if isinstance(obj := getattr(_errors, name), type) and issubclass(obj, AkoolError)
}


def submit_endpoint(request: object) -> Endpoint[Any, SwapJob]:
    """The submit endpoint of a swap request.

    Raises:
        ValidationError: ``request`` is not a PlusSwap, ProSwap, ImageSwap or VideoSwap.
    """
    endpoint = SUBMIT_ENDPOINTS.get(type(request))
    if endpoint is None:
        raise ValidationError(
            f"swap_many takes PlusSwap, ProSwap, ImageSwap or VideoSwap requests, "
            f"not {type(request).__name__}",
            field="requests",
        )
    return endpoint


def request_key(request: object) -> tuple[str, str]:
    """``(key, canonical JSON)`` of a swap request: what identifies it in a journal.

    The canonical JSON is the endpoint name plus the request's wire body with sorted keys;
    ``webhookUrl`` is left out (where callbacks go is delivery, not the job itself).

    Raises:
        ValidationError: ``request`` is not a PlusSwap, ProSwap, ImageSwap or VideoSwap.
    """
    endpoint = submit_endpoint(request)
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


def result_json(result: SwapResult | None) -> str | None:
    if result is None:
        return None
    # Masked: a hostile host may echo the key into a result field, and the journal is a file.
    return redact(json.dumps(converter.unstructure(result), default=_json_default, sort_keys=True))


@attrs.frozen
class ErrorColumns:
    """How an error is stored: class name, message (``msg`` for API errors) and code."""

    error_type: str | None = None
    error_message: str | None = None
    error_code: int | None = None


def error_columns(error: AkoolError | None) -> ErrorColumns:
    """The journal columns of an outcome's error (all None without one)."""
    if error is None:
        return ErrorColumns()
    if isinstance(error, APIError):
        return ErrorColumns(type(error).__name__, redact(error.message), error.code)
    return ErrorColumns(type(error).__name__, redact(str(error)), None)


def rebuild_error(
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


def never_acted(error: AkoolError) -> bool:
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
        | AccountBannedError
        | ClientStateError
        | JournalError
        | BatchDeadlineError,
    )


def result_from_json(text: str | None) -> SwapResult | None:
    """The ``SwapResult`` stored by ``result_json``."""
    if text is None:
        return None
    return converter.structure(json.loads(text), SwapResult)


def job_from_record(record: JournalRecord, request: Any) -> SwapJob | None:
    """The ``SwapJob`` a journal row recorded, if its submit got an answer."""
    if record.job_id is None:
        return None
    return SwapJob(
        id=record.job_id,
        job_id=record.job_ref,
        url=record.job_url,
        kind=request.kind,
        media=MediaType(record.media or request.media),
    )
