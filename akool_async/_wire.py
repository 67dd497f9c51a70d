"""Sans-I/O: turn request models into HTTP requests, and HTTP answers into models or errors.

Nothing here does I/O (the client's ``_call``, in ``_base_client.py``, reads an image file
named by path, and resolves media references to URLs, before it builds the request), so every
rule is tested from recorded JSON in ``tests/samples/`` without a server. The callers are
``_base_client`` (``build_request``) and the call pipeline, ``_requester`` (``decode``), which
owns the retries and auth headers; the session is the transport's.

Decoding rules (the single translation boundary; contract sections 1, 4 and 8):

* Errors are decided by the body's ``code`` (``error_code`` for the detectors), whatever the
  HTTP status, and never by ``msg``. ``error_for_code(code)`` picks the ``APIError`` subclass.
* HTTP 429 is always a ``RateLimitError`` (with the body's code if it has one).
* A body that is not JSON (an HTML error page, a truncated body) is a ``TransportError``
  carrying the status and at most 2 KiB of the body: the API itself did not answer.
* A JSON error body without a ``code``: ``ServerError`` (code None) for 5xx, ``APIError``
  (code None) for any other non-2xx status.
* The detectors and Analyze Frames have their own envelopes: ``error_code != 0`` and
  ``success: false`` are a ``DetectionError`` (on HTTP 401/403 an ``AuthenticationError`` /
  ``PermissionDeniedError``); a standard ``{code, msg}`` answer on their paths (the gateway's
  auth failures) is decoded by its ``code``.
* A 2xx JSON body of the wrong shape (no ``code``, ``data`` of the wrong type, a missing
  ``_id``...) is a ``TransportError``: cattrs, KeyError and TypeError never escape.
* A record ``_id`` that is not 24 hex digits (a submit's, or a listbyids item's) is such a
  shape error too: ids name files (downloads, the journal), so ``../`` never gets that far.
"""

from __future__ import annotations

import base64
import email.utils
import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Final, TypeVar, cast, get_origin

import attrs
import cattrs

from ._endpoints import Endpoint, Envelope, Host, ImageEncoding
from ._errors import (
    APIError,
    AuthenticationError,
    DetectionError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    TransportError,
    error_for_code,
)
from ._frames import FrameAnalysis
from ._models import (
    Credit,
    Deleted,
    DetectedFace,
    DetectedFrame,
    FaceDetection,
    LegacyFaceDetection,
    ResultPage,
    SubmitData,
    SwapJob,
    SwapResult,
    SwapStatus,
    Token,
    is_record_id,
)
from ._speedups import dumps, loads

__all__ = [
    "BODY_LIMIT",
    "SUCCESS_CODE",
    "WireRequest",
    "build_request",
    "converter",
    "decode",
    "parse_retry_after",
]

#: ``code`` of a successful answer.
SUCCESS_CODE: Final = 1000
#: Most characters of a raw body kept in an exception.
BODY_LIMIT: Final = 2048

T = TypeVar("T")


# --------------------------------------------------------------------------------------------
# The converter


def _structure_datetime(value: Any, _: type[Any]) -> datetime | None:
    """ISO-8601 (``2024-06-27T08:27:48.006Z``) or epoch seconds/milliseconds; junk -> None."""
    try:
        if isinstance(value, bool):
            return None
        if isinstance(value, int | float):
            seconds = value / 1000 if value > 1e11 else value
            return datetime.fromtimestamp(seconds, tz=UTC)
        if isinstance(value, str) and value:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return None


def _strict_int(value: Any, _: type[Any]) -> int:
    """Integers, and floats with an integral value (Go clients print ``uid`` as a float)."""
    if isinstance(value, bool):
        raise TypeError(f"expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise TypeError(f"expected an integer, got {value!r}")


def _strict_float(value: Any, _: type[Any]) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {value!r}")
    return float(value)


def _strict_str(value: Any, _: type[Any]) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {value!r}")
    return value


def _status(value: Any, _: type[Any]) -> SwapStatus:
    return SwapStatus(_strict_int(value, int))


def _or_none(hook: Callable[[Any, type[Any]], Any]) -> Callable[[Any, type[Any]], Any]:
    """``hook`` for ``X | None``: cattrs' generic Optional hook re-dispatches on every value."""

    def structure(value: Any, cls: type[Any]) -> Any:
        return None if value is None else hook(value, cls)

    return structure


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter()
    conv.register_structure_hook(SwapStatus, _status)  # before int: IntEnum is an int
    hooks: tuple[tuple[Any, Callable[[Any, type[Any]], Any]], ...] = (
        (datetime, _structure_datetime),
        (int, _strict_int),
        (float, _strict_float),
        (str, _strict_str),
    )
    # These hooks ignore their type argument, so an ``Annotated[X, wire name]`` field may call
    # them directly; cattrs' own Annotated hook adds a lambda call per field and value.
    direct: dict[Any, Callable[[Any, type[Any]], Any]] = {SwapStatus: _status}
    for cls, hook in hooks:
        conv.register_structure_hook(cls, hook)
        # A listbyids item is mostly optional fields: cattrs' generic Optional hook
        # re-dispatches on every value.
        optional = _or_none(hook)
        conv.register_structure_hook(cls | None, optional)
        direct[cls] = hook
        direct[cls | None] = optional

    def annotated(annotated_type: Any) -> Callable[[Any, type[Any]], Any]:
        origin = annotated_type.__origin__
        hook = direct.get(origin)
        if hook is not None:
            return hook
        inner = conv.get_structure_hook(origin)
        return lambda value, _: inner(value, origin)

    conv.register_structure_hook_factory(lambda t: get_origin(t) is cast(Any, Annotated), annotated)
    return conv


#: The one converter, built once. Field wire names come from the models' declarations.
converter: Final = _make_converter()


# --------------------------------------------------------------------------------------------
# Requests


@attrs.frozen(kw_only=True)
class WireRequest:
    """An HTTP request, before auth headers.

    Attributes:
        method: ``"GET"`` or ``"POST"``.
        host: Which base URL the path is relative to.
        path: The endpoint path.
        params: Query parameters (GET).
        json: The JSON body (POST).
        content: ``json`` encoded once, as sent (POST; orjson when installed).
    """

    method: str
    host: Host
    path: str
    params: Mapping[str, str] | None = None
    json: Mapping[str, Any] | None = attrs.field(default=None, repr=False)
    content: bytes | None = attrs.field(
        default=attrs.Factory(
            lambda self: None if self.json is None else dumps(self.json), takes_self=True
        ),
        repr=False,
        eq=False,
    )


def _data_uri(raw: bytes) -> str:
    if raw.startswith(b"\x89PNG"):
        mime = "image/png"
    elif raw[:4] == b"RIFF" and raw[8:12] == b"WEBP":
        mime = "image/webp"
    elif raw.startswith(b"GIF8"):
        mime = "image/gif"
    elif raw.startswith(b"BM"):
        mime = "image/bmp"
    else:
        mime = "image/jpeg"
    return f"data:{mime};base64,{base64.b64encode(raw).decode('ascii')}"


def build_request(endpoint: Endpoint[Any, Any], request: Any) -> WireRequest:
    """The HTTP request for ``request`` on ``endpoint`` (GET: query parameters; POST: JSON).

    Raises:
        TypeError: ``request`` is not the endpoint's request type, or its ``img`` is still a
            path (a programming error: the client reads the file first).
    """
    if not isinstance(request, endpoint.request_type):
        raise TypeError(
            f"{endpoint.name} takes a {endpoint.request_type.__name__}, "
            f"not {type(request).__name__}"
        )
    body: dict[str, Any] = converter.unstructure(request)
    for key, attribute in endpoint.explicit_fields:
        body[key] = getattr(request, attribute)
    if endpoint.image_encoding is not None and request.img is not None:
        raw = request.img
        if not isinstance(raw, bytes):
            raise TypeError(f"{endpoint.name}: img must be bytes here, not {type(raw).__name__}")
        if endpoint.image_encoding is ImageEncoding.DATA_URI:
            body["img"] = _data_uri(raw)
        else:
            body["img"] = base64.b64encode(raw).decode("ascii")
    if endpoint.method == "GET":
        return WireRequest(
            method="GET",
            host=endpoint.host,
            path=endpoint.path,
            params={key: str(value) for key, value in body.items()},
        )
    return WireRequest(method="POST", host=endpoint.host, path=endpoint.path, json=body)


# --------------------------------------------------------------------------------------------
# Responses


def _cap(body: bytes) -> str:
    return body[: BODY_LIMIT * 4].decode("utf-8", errors="replace")[:BODY_LIMIT]


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, item in headers.items():
        if key.lower() == lowered:
            return item
    return None


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), else None."""
    raw = _header(headers, "Retry-After")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _message(payload: Mapping[str, Any], *keys: str) -> str:
    for key in keys:
        value = payload.get(key)
        if isinstance(value, str) and value:
            return value
    return "no message"


def _int_code(payload: Mapping[str, Any], key: str) -> int | None:
    value = payload.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def _malformed(endpoint: Endpoint[Any, Any], status: int, body: bytes, why: str) -> TransportError:
    return TransportError(
        f"{endpoint.name}: HTTP {status} answer is not the API's JSON ({why})",
        status=status,
        body=_cap(body),
    )


def _structure(
    endpoint: Endpoint[Any, Any],
    status: int,
    body: bytes,
    value: Any,
    cls: type[T],
    *,
    path: str = "data",
) -> T:
    try:
        return converter.structure(value, cls)
    except Exception as exc:  # cattrs, KeyError, TypeError, ValueError: never let them escape
        if isinstance(exc, cattrs.BaseValidationError):
            why = "; ".join(cattrs.transform_error(exc, path=path))
        else:
            why = str(exc)
        raise _malformed(endpoint, status, body, f"unexpected shape: {why[:500]}") from exc


class _Unusual(Exception):
    """An item the fast listbyids decoder leaves to the converter (which explains errors)."""


_STATUSES: Final[Mapping[int, SwapStatus]] = {int(s): s for s in SwapStatus}
_NONE: Final = type(None)
_OPT_STR: Final = frozenset((str, _NONE))
_OPT_INT: Final = frozenset((int, _NONE))
_OPT_NUMBER: Final = frozenset((int, float, _NONE))


def _number(value: float | None) -> float | None:
    return value if value is None or type(value) is float else float(value)


def _fast_result(item: Any) -> SwapResult:
    """One listbyids item the common way: exact JSON types, no per-field hook dispatch.

    Produces exactly what ``converter.structure(item, SwapResult)`` does for such an item;
    anything else (a float ``uid``, a wrong type, a missing key) raises ``_Unusual`` and
    takes the converter's path, which decodes or explains it.
    """
    if type(item) is not dict:
        raise _Unusual
    get = item.get
    record_id = get("_id")
    code = get("faceswap_status")
    if type(record_id) is not str or type(code) is not int:
        raise _Unusual
    status = _STATUSES.get(code)
    url, job_id, user_id = get("url"), get("job_id"), get("userId")
    kind, quality, deduction = (
        get("faceswap_type"),
        get("faceswap_quality"),
        get("deduction_status"),
    )
    image, uid = get("image"), get("uid")
    duration, deducted, updated = (
        get("video_duration"),
        get("deduction_duration"),
        get("update_time"),
    )
    if (
        status is None
        or type(url) not in _OPT_STR
        or type(job_id) not in _OPT_STR
        or type(user_id) not in _OPT_STR
        or type(kind) not in _OPT_INT
        or type(quality) not in _OPT_INT
        or type(deduction) not in _OPT_INT
        or type(image) not in _OPT_INT
        or type(uid) not in _OPT_INT
        or type(duration) not in _OPT_NUMBER
        or type(deducted) not in _OPT_NUMBER
        or type(updated) not in _OPT_NUMBER
    ):
        raise _Unusual
    created = get("createdAt")
    return SwapResult(
        id=record_id,
        status=status,
        url=url,
        job_id=job_id,
        created_at=None if created is None else _structure_datetime(created, datetime),
        faceswap_type=kind,
        faceswap_quality=quality,
        deduction_status=deduction,
        image=image,
        video_duration=_number(duration),
        deduction_duration=_number(deducted),
        update_time=_number(updated),
        user_id=user_id,
        uid=uid,
    )


def _result_page(endpoint: Endpoint[Any, Any], status: int, body: bytes, data: Any) -> ResultPage:
    """listbyids' ``data``: the fast decoder per item, the converter for anything unusual."""
    items = data.get("result", ())
    if type(items) is list:
        try:
            return ResultPage(result=tuple([_fast_result(item) for item in items]))
        except _Unusual:
            pass
    return _structure(endpoint, status, body, data, ResultPage)


def _check_ids(endpoint: Endpoint[Any, Any], status: int, body: bytes, ids: list[str]) -> None:
    for record_id in ids:
        if not is_record_id(record_id):
            why = f"'_id' {record_id[:40]!r} is not 24 hex digits"
            raise _malformed(endpoint, status, body, why)


def _submit(endpoint: Endpoint[Any, Any], request: Any, data: SubmitData) -> SwapJob:
    return SwapJob(
        id=data.id, job_id=data.job_id, url=data.url, kind=request.kind, media=request.media
    )


def _error(
    payload: Any, code: int | None, status: int, headers: Mapping[str, str], *keys: str
) -> APIError:
    retry_after = parse_retry_after(headers)
    message = _message(payload, *keys) if isinstance(payload, Mapping) else "no message"
    if status == 429:
        cls: type[APIError] = RateLimitError
    elif code is None:
        cls = ServerError if status >= 500 else APIError
    else:
        cls = error_for_code(code)
    return cls(message, code=code, status=status, body=payload, retry_after=retry_after)


def decode(
    endpoint: Endpoint[Any, T],
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    request: Any = None,
) -> T:
    """Decode an answer of ``endpoint`` into its response type, or raise the matching error.

    Args:
        endpoint: The endpoint that answered.
        status: The HTTP status.
        headers: The response headers (for ``Retry-After``).
        body: The raw response body.
        request: The request sent (a submit's ``SwapJob`` records its kind and media).

    Raises:
        APIError: (a subclass for) the failure ``code`` in the body, or HTTP 429.
        DetectionError: a detector's ``error_code != 0``.
        TransportError: the body is not the API's JSON.
    """
    try:
        payload = loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # deep nesting: recursion
        if status == 429:
            raise _error(None, None, status, headers) from exc
        raise _malformed(endpoint, status, body, "not JSON") from exc
    if not isinstance(payload, dict):
        if status == 429 or status >= 400:
            raise _error(payload, None, status, headers)
        raise _malformed(endpoint, status, body, "not a JSON object")

    if endpoint.envelope is Envelope.DETECTOR:
        return _decode_detector(endpoint, status, headers, body, payload)
    if endpoint.envelope is Envelope.ANALYSIS:
        return cast("T", _decode_analysis(endpoint, status, headers, body, payload))

    code = _int_code(payload, "code")
    if status == 429 or code != SUCCESS_CODE:
        if code is None and 200 <= status < 300:
            raise _malformed(endpoint, status, body, "no integer 'code'")
        raise _error(payload, code, status, headers, "msg", "message")

    if endpoint.envelope is Envelope.TOKEN:
        token = payload.get("token")
        if not isinstance(token, str) or not token:
            raise _malformed(endpoint, status, body, "no 'token'")
        return cast("T", Token(token=token))

    data = payload.get("data")
    response_type: type[Any] = endpoint.response_type
    if response_type is Deleted:
        return cast("T", Deleted())
    if not isinstance(data, dict):
        raise _malformed(endpoint, status, body, "'data' is not an object")
    if response_type is SwapJob:
        submitted = _structure(endpoint, status, body, data, SubmitData)
        _check_ids(endpoint, status, body, [submitted.id])
        return cast("T", _submit(endpoint, request, submitted))
    if response_type in (ResultPage, Credit):
        decoded = (
            _result_page(endpoint, status, body, data)
            if response_type is ResultPage
            else _structure(endpoint, status, body, data, response_type)
        )
        if isinstance(decoded, ResultPage):
            _check_ids(endpoint, status, body, [item.id for item in decoded.result])
        return cast("T", decoded)
    raise TypeError(f"no decoder for {response_type.__name__}")  # a table error, not the wire's


# --------------------------------------------------------------------------------------------
# Detectors

#: A detector-envelope failure with one of these statuses is that error, not a DetectionError:
#: where the detectors answer auth failures is UNCONFIRMED (an emulator option), and an
#: HTTP 401 is the credentials' fault whatever the envelope says.
_STATUS_ERRORS: Final[Mapping[int, type[APIError]]] = {
    401: AuthenticationError,
    403: PermissionDeniedError,
}


def _decode_detector(
    endpoint: Endpoint[Any, T],
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    payload: dict[str, Any],
) -> T:
    error_code = _int_code(payload, "error_code")
    if error_code is None:
        # The platform's auth layer answers in the standard envelope (e.g. 1101) even here.
        code = _int_code(payload, "code")
        if code is not None and code != SUCCESS_CODE:
            raise _error(payload, code, status, headers, "msg", "message")
        if status == 429 or status >= 400:
            raise _error(payload, None, status, headers, "error_msg", "msg")
        raise _malformed(endpoint, status, body, "no integer 'error_code'")
    if status == 429:
        raise _error(payload, error_code, status, headers, "error_msg", "msg")
    if error_code != 0:
        raise _STATUS_ERRORS.get(status, DetectionError)(
            _message(payload, "error_msg", "msg"),
            code=error_code,
            status=status,
            body=payload,
            retry_after=parse_retry_after(headers),
        )
    parse: Callable[[dict[str, Any]], Any]
    parse = _faces_obj if endpoint.response_type is FaceDetection else _legacy
    try:
        return cast("T", parse(payload))
    except Exception as exc:  # wrong types anywhere in the arrays
        raise _malformed(endpoint, status, body, f"unexpected shape: {exc}") from exc


def _box(value: Any) -> tuple[int, int, int, int]:
    x, y, w, h = (_strict_int(item, int) for item in value)
    return (x, y, w, h)


def _point(value: Any) -> tuple[int, int]:
    x, y = (_strict_int(item, int) for item in value)
    return (x, y)


def _opt_str(value: Any) -> str | None:
    return None if value is None else _strict_str(value, str)


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {value!r}")
    return value


def _at(values: list[Any], index: int) -> Any:
    return values[index] if index < len(values) else None


def _faces_obj(payload: dict[str, Any]) -> FaceDetection:
    faces_obj = payload.get("faces_obj") or {}
    if not isinstance(faces_obj, dict):
        raise TypeError("'faces_obj' is not an object")
    frames: dict[int, DetectedFrame] = {}
    for key in sorted(faces_obj, key=int):
        number = int(key)
        item = faces_obj[key]
        if not isinstance(item, dict):
            raise TypeError(f"faces_obj[{key!r}] is not an object")
        regions = _list(item.get("region"))
        landmarks = _list(item.get("landmarks"))
        opts = _list(item.get("landmarks_str"))
        urls = _list(item.get("face_urls"))
        crops = _list(item.get("crop_region"))
        crop_landmarks = _list(item.get("crop_landmarks"))
        faces = tuple(
            DetectedFace(
                frame=number,
                index=index,
                region=_box(region),
                landmarks=tuple(_point(p) for p in _list(_at(landmarks, index))),
                opts=_opt_str(_at(opts, index)),
                face_url=_opt_str(_at(urls, index)),
                crop_region=None if _at(crops, index) is None else _box(crops[index]),
                crop_landmarks=_opt_str(_at(crop_landmarks, index)),
            )
            for index, region in enumerate(regions)
        )
        frame_time = item.get("frame_time")
        frames[number] = DetectedFrame(
            frame=number,
            frame_time=None if frame_time is None else _strict_float(frame_time, float),
            faces=faces,
            removed=tuple(_box(box) for box in _list(item.get("removed"))),
        )
    return FaceDetection(
        frames=frames, faces=tuple(face for frame in frames.values() for face in frame.faces)
    )


def _legacy(payload: dict[str, Any]) -> LegacyFaceDetection:
    seconds = payload.get("seconds")
    return LegacyFaceDetection(
        landmarks=tuple(
            tuple(_point(p) for p in _list(face)) for face in _list(payload.get("landmarks"))
        ),
        opts=tuple(_strict_str(s, str) for s in _list(payload.get("landmarks_str"))),
        regions=tuple(_box(box) for box in _list(payload.get("region"))),
        origin_url=_opt_str(payload.get("origin_url")) or None,
        trx_id=_opt_str(payload.get("trx_id")),
        seconds=None if seconds is None else _strict_float(seconds, float),
    )


# --------------------------------------------------------------------------------------------
# Analyze Frames


def _decode_analysis(
    endpoint: Endpoint[Any, Any],
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    payload: dict[str, Any],
) -> FrameAnalysis:
    """``{success: true, frame_count, persons}``, or ``{success: false, error}`` (3.10)."""
    success = payload.get("success")
    if not isinstance(success, bool):
        # The platform's auth layer may answer in the standard envelope (e.g. 1101) here too.
        code = _int_code(payload, "code")
        if code is not None and code != SUCCESS_CODE:
            raise _error(payload, code, status, headers, "msg", "message")
        if status == 429 or status >= 400:
            raise _error(payload, None, status, headers, "error", "msg", "message")
        raise _malformed(endpoint, status, body, "no boolean 'success'")
    if status == 429:
        raise _error(payload, None, status, headers, "error", "msg", "message")
    if not success or not 200 <= status < 300:
        raise _STATUS_ERRORS.get(status, DetectionError)(
            _message(payload, "error", "msg", "message"),
            status=status,
            body=payload,
            retry_after=parse_retry_after(headers),
        )
    analysis = _structure(endpoint, status, body, payload, FrameAnalysis, path="$")
    persons = tuple(sorted(analysis.persons, key=lambda person: person.index))
    return attrs.evolve(analysis, persons=persons)
