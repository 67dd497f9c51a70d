"""Verify and decrypt AKOOL webhook callbacks (contract section 5).

``WebhookVerifier.verify`` turns the raw body AKOOL POSTs to a ``webhookUrl`` into a trusted
``WebhookEvent``, or raises ``WebhookVerificationError``; nothing else ever escapes it. The
checks, in order: strict JSON with no duplicate keys; the four fields and their types; the
SHA-1 signature (5.3, constant-time); the timestamp window; AES-CBC decryption with strict
Base64 and PKCS#7 (5.4); the decrypted JSON payload (5.2); and the replay cache.

What the protocol does and does not prove. The signature is keyed by the ``clientId`` alone
(the secret is not part of it), so anyone who knows the client id can sign a body, including a
captured ciphertext under a fresh ``timestamp`` and ``nonce``. The secret only protects the
payload, with unauthenticated AES-CBC. Treat the client id as a secret too (``repr`` masks it),
and make event handling idempotent on the event's identity (``_id``, ``status``): the replay
cache stops byte-identical replays within the window, not re-signed ones. ``WebhookReceiver``
(``_receiver.py``) does that deduplication for you.

The crypto primitives live in ``_crypto``; ``cryptography`` is an optional extra that is
imported lazily there, on first use (``WebhookVerifier`` uses it once, at construction).
"""

from __future__ import annotations

import collections
import hmac
import json
import math
import re
import threading
import time
import types
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, Final, NoReturn

import attrs

from akool_async import _crypto
from akool_async._errors import ValidationError, WebhookVerificationError
from akool_async._models import SwapStatus
from akool_async._redact import register

__all__ = ["WebhookEvent", "WebhookVerifier"]

_ReplayKey = tuple[int, str, str]

#: The payload keys that become ``WebhookEvent`` attributes; any others go to ``extra``.
_PAYLOAD_KEYS: Final = frozenset({"_id", "status", "type", "url"})
#: ASCII digits only: ``str.isdigit`` and ``int()`` also accept other scripts, signs, ``_``.
_DIGITS: Final = re.compile(r"[0-9]+")
_HEX40: Final = re.compile(r"[0-9a-fA-F]{40}")
#: Epoch milliseconds have 13 digits; anything past 20 digits is garbage, not a clock.
_MAX_DIGITS: Final = 20
_TOO_LARGE: Final[int] = 10**_MAX_DIGITS


def _freeze(value: Any) -> Any:
    """Return a read-only copy of decoded JSON (mappings become proxies, lists tuples)."""
    if isinstance(value, Mapping):
        return types.MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


def _frozen_mapping(value: Mapping[str, Any]) -> Mapping[str, Any]:
    frozen: Mapping[str, Any] = _freeze(value)
    return frozen


@attrs.frozen(kw_only=True)
class WebhookEvent:
    """One verified and decrypted webhook callback (contract 5.2).

    Attributes:
        id: The job's ``_id``, as returned by the create call.
        status: The job's status (``SwapStatus.SUCCESS`` and ``FAILED`` are terminal).
        type: The product family (presumably ``"faceswap"``; ``""`` when absent).
        url: The result URL (with ``status`` 3); None when absent, null or empty.
        timestamp: The body's ``timestamp``, epoch milliseconds.
        nonce: The body's ``nonce`` in the decimal string form that was signed.
        signature: The body's signature, lowercase hex (public; useful to correlate logs).
        extra: Any other payload fields (unconfirmed by the docs), read-only.
        reference: The ``akool_ref`` query value of the URL the callback was posted to
            (set by ``WebhookReceiver``; a batch's per-submit reference), else None.
    """

    id: str
    status: SwapStatus = attrs.field(converter=SwapStatus)
    type: str
    url: str | None
    timestamp: int
    nonce: str
    signature: str
    extra: Mapping[str, Any] = attrs.field(
        factory=dict, converter=_frozen_mapping, hash=False, repr=False
    )
    reference: str | None = None

    @property
    def is_terminal(self) -> bool:
        """Whether the status is final (success or failure)."""
        return self.status.is_terminal


def _reject(message: str, reason: str = "fields") -> NoReturn:
    raise WebhookVerificationError(message, reason=reason)


class _DuplicateKeyError(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Two parsers that disagree on which duplicate wins are a classic smuggling vector.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKeyError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _no_constants(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def _load_json(text: str, what: str, *, parse_float: Callable[[str], Any]) -> Any:
    try:
        return json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_float=parse_float,
            parse_constant=_no_constants,
        )
    except _DuplicateKeyError as exc:
        _reject(f"{what} is ambiguous JSON: {exc}", "json")
    except (ValueError, RecursionError) as exc:
        # ValueError covers JSONDecodeError and ints past sys.get_int_max_str_digits().
        _reject(f"{what} is not valid JSON: {type(exc).__name__}", "json")


def _decimal_field(name: str, value: object) -> tuple[str, int]:
    """Return ``(signed string form, integer value)`` of ``timestamp`` or ``nonce``."""
    if isinstance(value, bool):
        _reject(f"{name!r} must be a number or a numeric string, not a boolean")
    if isinstance(value, str):
        if value[:1] == "-" and _DIGITS.fullmatch(value[1:]):
            _reject(f"{name!r} is negative")
        if not _DIGITS.fullmatch(value):
            _reject(f"{name!r} is not a numeric string")
        if len(value) > _MAX_DIGITS:
            _reject(f"{name!r} is too large")
        return value, int(value)
    if isinstance(value, int):
        number = int(value)  # an IntEnum or other int subclass signs as its plain digits
    elif isinstance(value, float | Decimal):
        # Check the magnitude before int(): int(Decimal("1e999999999")) would never end.
        if not math.isfinite(value) or not -_TOO_LARGE < value < _TOO_LARGE:
            _reject(f"{name!r} is too large or not finite")
        if value != int(value):
            _reject(f"{name!r} has a fractional part")
        number = int(value)  # a sender's 1529.0 signed as "1529"
    else:
        _reject(f"{name!r} must be a number or a numeric string, not {type(value).__name__}")
    if number < 0:
        _reject(f"{name!r} is negative")
    if number >= _TOO_LARGE:
        _reject(f"{name!r} is too large")
    return str(number), number


def _string_field(body: Mapping[str, Any], name: str) -> str:
    if name not in body:
        _reject(f"missing field {name!r}")
    value = body[name]
    if not isinstance(value, str):
        _reject(f"{name!r} must be a string, not {type(value).__name__}")
    return value


def _parse_body(body: bytes | bytearray | memoryview | str | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(body, bytes | bytearray | memoryview):
        try:
            # RFC 8259: UTF-8 only (json.loads on bytes would also guess UTF-16 and UTF-32).
            text = bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            _reject("body is not UTF-8", "json")
    elif isinstance(body, str):
        text = body
    elif isinstance(body, Mapping):
        if not all(isinstance(key, str) for key in body):
            _reject("body has a key that is not a string", "json")
        return dict(body)
    else:
        _reject(f"body must be bytes, str or a mapping, not {type(body).__name__}", "json")
    parsed = _load_json(text, "body", parse_float=Decimal)
    if not isinstance(parsed, dict):
        _reject(f"body is not a JSON object but {type(parsed).__name__}", "json")
    return parsed


def _parse_payload(plaintext: bytes) -> dict[str, Any]:
    try:
        text = plaintext.decode("utf-8")
    except UnicodeDecodeError:
        _reject("decrypted payload is not UTF-8 (wrong key?)", "json")
    payload = _load_json(text, "decrypted payload", parse_float=float)
    if not isinstance(payload, dict):
        _reject(f"decrypted payload is not a JSON object but {type(payload).__name__}", "json")
    return payload


def _event_fields(payload: Mapping[str, Any]) -> dict[str, Any]:
    job_id = _string_field(payload, "_id")
    if not job_id:
        _reject("payload '_id' is empty")
    if "status" not in payload:
        _reject("missing field 'status' in the payload")
    status = payload["status"]
    if isinstance(status, bool) or not isinstance(status, int):
        _reject(f"payload 'status' must be an integer, not {type(status).__name__}")
    if status not in {s.value for s in SwapStatus}:
        _reject(f"payload 'status' {status} is not a known status (1 to 4)")
    kind = payload.get("type", "")
    if not isinstance(kind, str):
        _reject(f"payload 'type' must be a string, not {type(kind).__name__}")
    url = payload.get("url")
    if url is not None and not isinstance(url, str):
        _reject(f"payload 'url' must be a string, not {type(url).__name__}")
    return {
        "id": job_id,
        "status": SwapStatus(status),
        "type": kind,
        "url": url or None,
        "extra": {k: v for k, v in payload.items() if k not in _PAYLOAD_KEYS},
    }


class _ReplayCache:
    """Thread-safe bounded set of recently accepted messages, each kept until it expires."""

    def __init__(self, maxsize: int) -> None:
        self._maxsize = maxsize
        self._expiry: collections.OrderedDict[_ReplayKey, float] = collections.OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._expiry)

    def add(self, key: _ReplayKey, expires: float, now: float) -> bool:
        """Record ``key`` and return True, or return False if it is already recorded."""
        with self._lock:
            # Entries arrive in roughly timestamp order, so expired ones gather at the front.
            while self._expiry:
                oldest_key, oldest_expiry = next(iter(self._expiry.items()))
                if oldest_expiry >= now:
                    break
                del self._expiry[oldest_key]
            seen = self._expiry.get(key)
            # ``>=``: a message exactly ``tolerance`` old is still accepted, so still blocked.
            if seen is not None and seen >= now:
                return False
            self._expiry[key] = expires
            # Evicting the oldest is safe: only fully verified messages get in, so an attacker
            # without the secret cannot flush the cache.
            while len(self._expiry) > self._maxsize:
                self._expiry.popitem(last=False)
            return True

    def discard(self, key: _ReplayKey) -> None:
        with self._lock:
            self._expiry.pop(key, None)


class WebhookVerifier:
    """Checks and decrypts AKOOL webhook bodies with one key pair; thread-safe.

    Args:
        client_id: The key pair's client id (signature input and AES IV).
        client_secret: The key pair's secret (the API key): the AES key, 16, 24 or 32 bytes.
        tolerance: How far, in seconds, ``timestamp`` may be from ``now()`` either way;
            None disables the window (replay protection is then bounded by the cache size).
        now: Clock returning epoch seconds (``time.time``); injectable for tests.
        replay_cache_size: How many accepted messages the replay cache remembers at most.

    Raises:
        ValidationError: Empty client id, secret not 16/24/32 bytes, bad tolerance or size.
        ImportError: The optional ``cryptography`` package is not installed.
    """

    __slots__ = ("_client_id", "_client_secret", "_now", "_replay", "_tolerance")

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        *,
        tolerance: float | None = 300,
        now: Callable[[], float] = time.time,
        replay_cache_size: int = 10_000,
    ) -> None:
        if not isinstance(client_id, str) or not client_id:
            raise ValidationError("must be a non-empty string", field="client_id")
        if not isinstance(client_secret, str):
            raise ValidationError("must be a string", field="client_secret")
        register(client_secret)  # masked in every text the SDK makes from here on
        if tolerance is not None and (
            isinstance(tolerance, bool)
            or not isinstance(tolerance, int | float)
            or not 0 <= tolerance < math.inf
        ):
            raise ValidationError("must be None or a finite number >= 0", field="tolerance")
        if isinstance(replay_cache_size, bool) or not isinstance(replay_cache_size, int):
            raise ValidationError("must be an integer", field="replay_cache_size")
        if replay_cache_size < 1:
            raise ValidationError("must be at least 1", field="replay_cache_size")
        try:
            # Fails fast on a bad key length (and on a missing ``cryptography``).
            _crypto.encrypt(b"", client_id, client_secret)
        except _crypto.CryptoError as exc:
            raise ValidationError(str(exc), field="client_secret") from None
        self._client_id = client_id
        self._client_secret = client_secret
        self._tolerance = tolerance
        self._now = now
        self._replay = _ReplayCache(replay_cache_size)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(client_id={self._client_id[:4] + '…'!r}, "
            f"client_secret='<redacted>', tolerance={self._tolerance!r})"
        )

    @property
    def tolerance(self) -> float | None:
        """The timestamp window in seconds, or None when it is disabled."""
        return self._tolerance

    def verify(
        self,
        body: bytes | bytearray | memoryview | str | Mapping[str, Any],
        *,
        check_replay: bool = True,
    ) -> WebhookEvent:
        """Verify a webhook body and return its decrypted event.

        Args:
            body: The raw request body (preferred), or its already-decoded JSON object.
            check_replay: Reject a message already accepted within the window, and remember
                this one. Pass False to re-verify a stored body (nothing is recorded then).

        Returns:
            The verified event.

        Raises:
            WebhookVerificationError: For every reason the body cannot be trusted; its
                ``reason`` says which check failed, its message (for humans) never contains
                the secret.
        """
        try:
            return self._verify(body, check_replay)
        except WebhookVerificationError:
            raise
        except Exception as exc:
            # A safety net for hostile input: only the type name, never a value that could
            # carry key material. The fuzz tests assert that it is never reached.
            raise WebhookVerificationError(
                f"internal error while verifying: {type(exc).__name__}", reason="unknown"
            ) from None

    def forget(self, event: WebhookEvent) -> None:
        """Drop ``event`` from the replay cache so that a byte-identical redelivery verifies.

        Call it when you answer AKOOL with a non-200 after a successful ``verify()``: AKOOL
        then retries, possibly with the very same body, which would otherwise be a replay.
        """
        self._replay.discard((event.timestamp, event.nonce, event.signature))

    def _verify(
        self, body: bytes | bytearray | memoryview | str | Mapping[str, Any], check_replay: bool
    ) -> WebhookEvent:
        fields = _parse_body(body)
        signature = _string_field(fields, "signature")
        data_encrypt = _string_field(fields, "dataEncrypt")
        for name in ("timestamp", "nonce"):
            if name not in fields:
                _reject(f"missing field {name!r}")
        timestamp_text, timestamp = _decimal_field("timestamp", fields["timestamp"])
        nonce, _ = _decimal_field("nonce", fields["nonce"])
        if not data_encrypt:
            _reject("'dataEncrypt' is empty")
        # Hex case carries no information, so compare the digest bytes: the contract sends
        # lowercase, and an uppercase sender is not a forgery.
        if not _HEX40.fullmatch(signature):
            _reject("'signature' is not a 40-character hex SHA-1 digest")
        expected = _crypto.sign(self._client_id, timestamp_text, nonce, data_encrypt)
        if not hmac.compare_digest(bytes.fromhex(signature), bytes.fromhex(expected)):
            _reject("signature mismatch", "signature")

        now = self._now()
        if self._tolerance is not None:
            age = now - timestamp / 1000
            if age > self._tolerance:
                _reject(
                    f"timestamp is stale ({age:.0f} s old; tolerance {self._tolerance} s)",
                    "timestamp",
                )
            if -age > self._tolerance:
                _reject(
                    f"timestamp is in the future ({-age:.0f} s ahead; "
                    f"tolerance {self._tolerance} s)",
                    "timestamp",
                )

        try:
            plaintext = _crypto.decrypt(data_encrypt, self._client_id, self._client_secret)
        except _crypto.CryptoError as exc:
            _reject(f"cannot decrypt 'dataEncrypt': {exc}", exc.reason)
        try:
            event = WebhookEvent(
                timestamp=timestamp,
                nonce=nonce,
                signature=signature.lower(),
                **_event_fields(_parse_payload(plaintext)),
            )
        except RecursionError:
            _reject("decrypted payload is nested too deeply", "json")

        # Recorded last, atomically, and only for fully verified messages: two threads given
        # the same body cannot both pass, and garbage never takes a cache slot.
        if check_replay:
            expires = math.inf if self._tolerance is None else timestamp / 1000 + self._tolerance
            if not self._replay.add((timestamp, nonce, event.signature), expires, now):
                _reject(
                    "replayed message (same timestamp, nonce and signature seen before)", "replay"
                )
        return event
