"""Tests for webhook verification and decryption (_webhooks) and the receiver (_receiver)."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import hashlib
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import anyio
import anyio.lowlevel
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from akool_async import _crypto
from akool_async._errors import ClientStateError, ValidationError, WebhookVerificationError
from akool_async._models import SwapStatus
from akool_async._receiver import WebhookReceiver, WebhookReceiverStatistics
from akool_async._webhooks import WebhookEvent, WebhookVerifier, _ReplayCache
from akool_async.testing import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, Emulator, EmulatorConfig

# Contract 5.6.
CLIENT_ID = "AKDEMOclientId0123456789"
SECRET = "demoSecretKey0123456789abcdefXYZ"
PLAINTEXT = (
    b'{"_id":"6593c94c0ef703e8c055e3c8","status":3,"type":"faceswap",'
    b'"url":"https://example.com/result.jpg"}'
)
TIMESTAMP = 1710757981609
DATA_ENCRYPT = (
    "Wu2he/ZGjn6xw2t0lD0dv+LLJ+g+7VaxRjQ4qZfpx/tzjr0e69Ol0M0NPQIf/hOiIia1Znj/Pby2BPspcZggKYHBu"
    "X+Lwo/c33PLEGzvtMABE3MJ9Wz6aul1kTl5+l2VTHQX0blc3h7XbvLXLa93/w=="
)
SIGNATURE = "1f1d205bb3bb38718b63df79953350ec3803af47"
NOW = TIMESTAMP / 1000
EXPECTED_EVENT = WebhookEvent(
    id="6593c94c0ef703e8c055e3c8",
    status=SwapStatus.SUCCESS,
    type="faceswap",
    url="https://example.com/result.jpg",
    timestamp=TIMESTAMP,
    nonce="1529",
    signature=SIGNATURE,
)


class Clock:
    """A settable clock in epoch seconds."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def vector_body(**changes: Any) -> dict[str, Any]:
    """The contract's 5.6 body, with some fields changed (None removes one)."""
    body: dict[str, Any] = {
        "signature": SIGNATURE,
        "dataEncrypt": DATA_ENCRYPT,
        "timestamp": TIMESTAMP,
        "nonce": "1529",
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def make_body(
    plaintext: bytes | dict[str, Any],
    *,
    client_id: str = CLIENT_ID,
    secret: str = SECRET,
    timestamp: int | str = TIMESTAMP,
    nonce: int | str = "1529",
) -> dict[str, Any]:
    """A correctly signed and encrypted body for ``plaintext``, built with ``_crypto``."""
    raw = plaintext if isinstance(plaintext, bytes) else json.dumps(plaintext).encode()
    data = _crypto.encrypt(raw, client_id, secret)
    return {
        "signature": _crypto.sign(client_id, timestamp, nonce, data),
        "dataEncrypt": data,
        "timestamp": timestamp,
        "nonce": nonce,
    }


def signed(data_encrypt: str, *, timestamp: int = TIMESTAMP, nonce: str = "1529") -> bytes:
    """A raw body whose signature is right for an arbitrary ``dataEncrypt``."""
    signature = _crypto.sign(CLIENT_ID, timestamp, nonce, data_encrypt)
    return json.dumps(
        {
            "signature": signature,
            "dataEncrypt": data_encrypt,
            "timestamp": timestamp,
            "nonce": nonce,
        }
    ).encode()


def payload(**changes: Any) -> dict[str, Any]:
    """A valid decrypted payload, with some fields changed (None removes one)."""
    base: dict[str, Any] = {
        "_id": "6593c94c0ef703e8c055e3c8",
        "status": 3,
        "type": "faceswap",
        "url": "https://example.com/result.jpg",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


@pytest.fixture
def clock() -> Clock:
    """A clock standing at the contract vector's timestamp."""
    return Clock()


@pytest.fixture
def verifier(clock: Clock) -> WebhookVerifier:
    """A verifier for the contract's key pair, on the test clock."""
    return WebhookVerifier(CLIENT_ID, SECRET, tolerance=300, now=clock)


def reject(verifier: WebhookVerifier, body: Any, reason: str) -> WebhookVerificationError:
    """Assert that ``body`` is rejected with ``reason`` in the message, without the secret."""
    with pytest.raises(WebhookVerificationError) as info:
        verifier.verify(body)
    assert type(info.value) is WebhookVerificationError
    assert reason in str(info.value)
    assert SECRET not in str(info.value)
    return info.value


# -- the contract vector and our own vectors ------------------------------------------------


def test_contract_vector_decrypts_to_documented_plaintext() -> None:
    """The 5.6 dataEncrypt decrypts to exactly the documented plaintext with the documented IV."""
    assert _crypto.iv_for(CLIENT_ID) == b"AKDEMOclientId01"
    assert _crypto.decrypt(DATA_ENCRYPT, CLIENT_ID, SECRET) == PLAINTEXT


@pytest.mark.parametrize(
    ("timestamp", "nonce"),
    [(TIMESTAMP, "1529"), (str(TIMESTAMP), "1529"), (TIMESTAMP, 1529), (str(TIMESTAMP), 1529)],
)
def test_contract_vector_verifies(
    verifier: WebhookVerifier, timestamp: int | str, nonce: int | str
) -> None:
    """The 5.6 body verifies with timestamp and nonce each as a number or a string."""
    body = json.dumps(vector_body(timestamp=timestamp, nonce=nonce)).encode()

    assert verifier.verify(body) == EXPECTED_EVENT


@pytest.mark.parametrize(
    "convert",
    [
        lambda body: json.dumps(body).encode(),
        lambda body: json.dumps(body),
        lambda body: bytearray(json.dumps(body).encode()),
        lambda body: memoryview(json.dumps(body).encode()),
        lambda body: body,
    ],
    ids=["bytes", "str", "bytearray", "memoryview", "mapping"],
)
def test_verify_accepts_every_body_form(
    verifier: WebhookVerifier, convert: Callable[[dict[str, Any]], Any]
) -> None:
    """Raw bytes, text and an already-decoded mapping all verify."""
    assert verifier.verify(convert(vector_body())) == EXPECTED_EVENT


def independent_encrypt(plaintext: bytes, client_id: str, secret: str) -> str:
    """AES-CBC with cryptography's own PKCS7 padder, written from the contract, not _crypto."""
    iv = client_id.encode()[:16].ljust(16, b"\0")
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(algorithms.AES(secret.encode()), modes.CBC(iv)).encryptor()
    return base64.b64encode(encryptor.update(padded) + encryptor.finalize()).decode()


@pytest.mark.parametrize(
    ("client_id", "secret"),
    [
        ("AKshort", "0123456789abcdef"),  # AES-128, IV padded with NULs
        ("AKexactly16bytes", "0123456789abcdefghijklmn"),  # AES-192, IV used whole
        ("AKlongerClientIdThan16", "0123456789abcdefghijklmnopqrstuv"),  # AES-256, IV cut
    ],
)
def test_own_vectors_match_an_independent_computation(client_id: str, secret: str) -> None:
    """Bodies built with _crypto match cryptography's padder and hashlib, then verify."""
    plaintext = json.dumps(payload(status=4, url="")).encode()
    body = make_body(plaintext, client_id=client_id, secret=secret, nonce=77)
    verifier = WebhookVerifier(client_id, secret, now=Clock())

    joined = "".join(sorted([client_id, str(TIMESTAMP), "77", body["dataEncrypt"]]))
    assert independent_encrypt(plaintext, client_id, secret) == body["dataEncrypt"]
    assert hashlib.sha1(joined.encode()).hexdigest() == body["signature"]
    assert (
        verifier.verify(body).status,
        verifier.verify(body, check_replay=False).url,
        verifier.verify(body, check_replay=False).nonce,
    ) == (SwapStatus.FAILED, None, "77")


def test_short_client_id_iv_is_nul_padded() -> None:
    """A short client id becomes an IV padded with NUL bytes, as an independent cipher agrees."""
    data = _crypto.encrypt(b"{}", "AKshort", "0123456789abcdef")

    assert _crypto.iv_for("AKshort") == b"AKshort" + b"\0" * 9
    assert independent_encrypt(b"{}", "AKshort", "0123456789abcdef") == data


def test_uppercase_signature_is_accepted(verifier: WebhookVerifier) -> None:
    """Hex case carries no information, so an uppercase signature verifies too."""
    assert verifier.verify(vector_body(signature=SIGNATURE.upper())) == EXPECTED_EVENT


def test_integral_float_timestamp_is_signed_as_an_integer(verifier: WebhookVerifier) -> None:
    """A timestamp sent as 1710757981609.0 is the number 1710757981609, signed without '.0'."""
    body = json.dumps(vector_body()).replace(str(TIMESTAMP), f"{TIMESTAMP}.0")

    assert verifier.verify(body) == EXPECTED_EVENT


def test_event_fields_from_the_payload(verifier: WebhookVerifier) -> None:
    """An empty url becomes None, a missing type '', and unknown fields land read-only in extra."""
    body = make_body(payload(url="", type=None, job_id="2024-1", tags=[1, {"a": [2]}]))

    event = verifier.verify(body)

    assert (event.url, event.type, event.status) == (None, "", SwapStatus.SUCCESS)
    assert dict(event.extra) == {"job_id": "2024-1", "tags": (1, {"a": (2,)})}
    with pytest.raises(TypeError):
        event.extra["job_id"] = "x"  # type: ignore[index]
    assert hash(event) == hash(verifier.verify(body, check_replay=False))


def test_missing_or_null_url_is_none(verifier: WebhookVerifier) -> None:
    """A payload without url, or with url null, gives url None (a status 2 callback)."""
    missing = verifier.verify(make_body(payload(url=None, status=2)))
    null = verifier.verify(make_body(json.dumps(payload(url=None) | {"url": None}).encode()))

    assert (missing.url, null.url, missing.is_terminal) == (None, None, False)


# -- construction and secrecy ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"client_id": ""}, "client_id"),
        ({"client_secret": "x" * 15}, "client_secret"),
        ({"client_secret": "x" * 33}, "client_secret"),
        ({"tolerance": -1}, "tolerance"),
        ({"tolerance": True}, "tolerance"),
        ({"tolerance": float("inf")}, "tolerance"),
        ({"replay_cache_size": 0}, "replay_cache_size"),
    ],
)
def test_invalid_construction_raises_validation_error(kwargs: dict[str, Any], field: str) -> None:
    """Bad credentials or settings fail at construction, as a ValidationError (a ValueError)."""
    arguments: dict[str, Any] = {"client_id": CLIENT_ID, "client_secret": SECRET} | kwargs

    with pytest.raises(ValueError) as info:
        WebhookVerifier(**arguments)

    assert isinstance(info.value, ValidationError)
    assert field == info.value.field


def test_repr_redacts_the_secret_and_masks_the_client_id(verifier: WebhookVerifier) -> None:
    """repr shows neither the secret nor the whole client id (which keys the signature)."""
    text = repr(verifier)

    assert text == "WebhookVerifier(client_id='AKDE…', client_secret='<redacted>', tolerance=300)"


# -- rejections -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "body is not valid JSON"),
        (b'{"a":1}\xff', "body is not UTF-8"),
        ('{"nonce":NaN}', "body is not valid JSON"),
        ("[1, 2]", "body is not a JSON object"),
        ('{"nonce":"1","nonce":"2"}', "duplicate key 'nonce'"),
        ("[" * 100_000 + "]" * 100_000, "body is not valid JSON"),
        ({1: "x"}, "key that is not a string"),
        (42, "body must be bytes, str or a mapping"),
    ],
    ids=["syntax", "utf8", "nan", "array", "duplicate", "deep", "mapping-key", "type"],
)
def test_malformed_body_is_rejected(verifier: WebhookVerifier, body: Any, reason: str) -> None:
    """A body that is not one unambiguous UTF-8 JSON object is rejected."""
    reject(verifier, body, reason)


@pytest.mark.parametrize("field", ["signature", "dataEncrypt", "timestamp", "nonce"])
def test_missing_field_is_rejected(verifier: WebhookVerifier, field: str) -> None:
    """Each of the four body fields is required."""
    reject(verifier, vector_body(**{field: None}), f"missing field {field!r}")


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"signature": 123}, "'signature' must be a string"),
        ({"signature": SIGNATURE[:-1]}, "not a 40-character hex"),
        ({"signature": "g" * 40}, "not a 40-character hex"),
        ({"dataEncrypt": ["x"]}, "'dataEncrypt' must be a string"),
        ({"dataEncrypt": ""}, "'dataEncrypt' is empty"),
    ],
)
def test_bad_string_field_is_rejected(
    verifier: WebhookVerifier, changes: dict[str, Any], reason: str
) -> None:
    """signature and dataEncrypt must be strings of the right shape."""
    reject(verifier, vector_body(**changes), reason)


@pytest.mark.parametrize("field", ["timestamp", "nonce"])
@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (True, "not a boolean"),
        (1529.5, "has a fractional part"),
        (-1529, "is negative"),
        ("-1529", "is negative"),
        ("15a9", "is not a numeric string"),
        ("", "is not a numeric string"),
        (" 1529", "is not a numeric string"),
        ("١٥٢٩", "is not a numeric string"),
        ("1" * 21, "is too large"),
        (10**21, "is too large"),
        (1e300, "is too large"),
        ([1529], "not list"),
    ],
)
def test_bad_timestamp_or_nonce_is_rejected(
    verifier: WebhookVerifier, field: str, value: Any, reason: str
) -> None:
    """timestamp and nonce must be non-negative whole numbers, as numbers or ASCII digits."""
    error = reject(verifier, vector_body(**{field: value}), reason)

    assert str(error).startswith(repr(field))


def test_huge_exponent_is_rejected_quickly(verifier: WebhookVerifier) -> None:
    """A timestamp of 1e999999999 is rejected without trying to build the integer."""
    body = json.dumps(vector_body()).replace(str(TIMESTAMP), "1e999999999")

    reject(verifier, body, "'timestamp' is too large")


@pytest.mark.parametrize(
    "changes",
    [
        {"signature": "0" * 40},
        {"timestamp": TIMESTAMP + 1},
        {"nonce": "1530"},
        {"dataEncrypt": DATA_ENCRYPT.replace("Wu2", "Wu3")},
    ],
    ids=["signature", "timestamp", "nonce", "dataEncrypt"],
)
def test_signature_mismatch_is_rejected(verifier: WebhookVerifier, changes: dict[str, Any]) -> None:
    """Changing any signed field (or the signature) is a signature mismatch."""
    reject(verifier, vector_body(**changes), "signature mismatch")


def test_wrong_client_id_is_a_signature_mismatch(clock: Clock) -> None:
    """A verifier for another client id rejects the body at the signature."""
    other = WebhookVerifier("AKotherClientId", SECRET, now=clock)

    reject(other, vector_body(), "signature mismatch")


def test_stale_timestamp_is_rejected(verifier: WebhookVerifier, clock: Clock) -> None:
    """A body older than the tolerance is rejected as stale."""
    clock.now = NOW + 300.001

    reject(verifier, vector_body(), "timestamp is stale")


def test_future_timestamp_is_rejected(verifier: WebhookVerifier, clock: Clock) -> None:
    """A body from further in the future than the tolerance is rejected."""
    clock.now = NOW - 300.001

    reject(verifier, vector_body(), "timestamp is in the future")


@pytest.mark.parametrize("offset", [-300, 300])
def test_timestamp_at_the_window_edge_is_accepted(
    verifier: WebhookVerifier, clock: Clock, offset: float
) -> None:
    """A body exactly ``tolerance`` seconds away either way still verifies."""
    clock.now = NOW + offset

    assert verifier.verify(vector_body()) == EXPECTED_EVENT


def test_tolerance_none_disables_the_window(clock: Clock) -> None:
    """With tolerance=None a years-old body verifies (and replays are still caught)."""
    verifier = WebhookVerifier(CLIENT_ID, SECRET, tolerance=None, now=clock)
    clock.now = NOW + 10 * 365 * 86400

    assert verifier.verify(vector_body()) == EXPECTED_EVENT
    reject(verifier, vector_body(), "replayed message")


def test_replay_is_rejected(verifier: WebhookVerifier) -> None:
    """The same message a second time within the window is a replay, in any body form."""
    verifier.verify(json.dumps(vector_body()).encode())

    reject(verifier, vector_body(nonce=1529), "replayed message")


def test_check_replay_false_neither_checks_nor_records(verifier: WebhookVerifier) -> None:
    """check_replay=False re-verifies a stored body and leaves the cache untouched."""
    events = [verifier.verify(vector_body(), check_replay=False) for _ in range(2)]

    assert events == [EXPECTED_EVENT, EXPECTED_EVENT]
    assert verifier.verify(vector_body()) == EXPECTED_EVENT


def test_forget_lets_a_redelivery_verify(verifier: WebhookVerifier) -> None:
    """After forget(event), the byte-identical body verifies again (retry after a non-200)."""
    event = verifier.verify(vector_body())
    verifier.forget(event)

    assert verifier.verify(vector_body()) == EXPECTED_EVENT


def test_replay_cache_is_bounded(clock: Clock) -> None:
    """Past replay_cache_size, the oldest accepted message is forgotten first."""
    verifier = WebhookVerifier(CLIENT_ID, SECRET, now=clock, replay_cache_size=2)
    bodies = [make_body(payload(), nonce=n) for n in range(3)]
    for body in bodies:
        verifier.verify(body)

    reject(verifier, bodies[2], "replayed message")
    assert verifier.verify(bodies[0]).nonce == "0"


def test_replay_cache_entries_expire_with_the_window() -> None:
    """An entry is kept until its message's timestamp leaves the window, then pruned."""
    cache = _ReplayCache(10)
    cache.add((1, "n", "s"), expires=100.0, now=0.0)

    assert (cache.add((1, "n", "s"), expires=100.0, now=100.0), len(cache)) == (False, 1)
    assert (cache.add((2, "n", "s"), expires=300.0, now=100.5), len(cache)) == (True, 1)


def test_replay_check_is_atomic_across_threads(verifier: WebhookVerifier) -> None:
    """Of many threads verifying the same body at once, exactly one succeeds."""
    body = json.dumps(vector_body()).encode()
    barrier = threading.Barrier(16)

    def attempt() -> bool:
        barrier.wait()
        try:
            verifier.verify(body)
        except WebhookVerificationError:
            return False
        return True

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        results = [f.result() for f in [pool.submit(attempt) for _ in range(16)]]

    assert sum(results) == 1


@pytest.mark.parametrize(
    ("data_encrypt", "reason"),
    [
        ("not base64!", "not valid Base64"),
        ("QUJD\nREVG", "not valid Base64"),
        ("QQ", "not valid Base64"),
        (DATA_ENCRYPT[:-3] + "x==", "not canonical Base64"),
        (base64.b64encode(b"x" * 15).decode(), "not a positive multiple of 16"),
        (base64.b64encode(bytes(32)).decode(), "bad PKCS#7 padding"),
    ],
    ids=["alphabet", "newline", "padding", "canonical", "length", "pkcs7"],
)
def test_undecryptable_data_is_rejected(
    verifier: WebhookVerifier, data_encrypt: str, reason: str
) -> None:
    """A correctly signed body whose dataEncrypt cannot be decrypted is rejected."""
    error = reject(verifier, signed(data_encrypt), reason)

    assert str(error).startswith("cannot decrypt 'dataEncrypt'")


def test_wrong_secret_is_rejected(clock: Clock) -> None:
    """A verifier with the right client id but another secret cannot decrypt the vector."""
    other = WebhookVerifier(CLIENT_ID, "X" * 32, now=clock)

    reject(other, vector_body(), "bad PKCS#7 padding (wrong key")


@pytest.mark.parametrize(
    ("plaintext", "reason"),
    [
        (b"\xff\xfe{}", "decrypted payload is not UTF-8"),
        (b"hello", "decrypted payload is not valid JSON"),
        (b'"a string"', "decrypted payload is not a JSON object"),
        (b'{"_id":"a","_id":"b","status":3}', "duplicate key '_id'"),
        (json.dumps(payload(_id=None)).encode(), "missing field '_id'"),
        (json.dumps(payload(_id=42)).encode(), "'_id' must be a string"),
        (json.dumps(payload(_id="")).encode(), "'_id' is empty"),
        (json.dumps(payload(status=None)).encode(), "missing field 'status'"),
        (json.dumps(payload(status=True)).encode(), "'status' must be an integer"),
        (json.dumps(payload(status="3")).encode(), "'status' must be an integer"),
        (json.dumps(payload(status=3.0)).encode(), "'status' must be an integer"),
        (json.dumps(payload(status=5)).encode(), "'status' 5 is not a known status"),
        (json.dumps(payload(status=0)).encode(), "'status' 0 is not a known status"),
        (json.dumps(payload(type=1)).encode(), "'type' must be a string"),
        (json.dumps(payload(url=["u"])).encode(), "'url' must be a string"),
        (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
    ],
)
def test_bad_payload_is_rejected(verifier: WebhookVerifier, plaintext: bytes, reason: str) -> None:
    """A decrypted payload that is not the documented JSON object is rejected."""
    reject(verifier, make_body(plaintext), reason)


def test_payload_nested_too_deeply_to_freeze_is_rejected(verifier: WebhookVerifier) -> None:
    """An extra field that parses but is too deep to copy read-only is rejected, not raised."""
    deep = b'{"_id":"a","status":3,"x":' + b"[" * 900 + b"]" * 900 + b"}"

    reject(verifier, make_body(deep), "nested too deeply")


# -- the receiver ---------------------------------------------------------------------------


class Recorder:
    """An async listener that records events and can be told to fail."""

    def __init__(self, failures: int = 0) -> None:
        self.events: list[WebhookEvent] = []
        self.failures = failures

    async def __call__(self, event: WebhookEvent) -> None:
        await anyio.lowlevel.checkpoint()
        if self.failures:
            self.failures -= 1
            raise RuntimeError("listener failed")
        self.events.append(event)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """An aiohttp client session, closed after the test."""
    async with aiohttp.ClientSession() as client:
        yield client


async def post(session: aiohttp.ClientSession, url: str, body: Any) -> tuple[int, Any]:
    """POST ``body`` (a dict is sent as JSON, bytes as-is) and return (status, JSON answer)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with session.post(url, data=data, headers={"Content-Type": "application/json"}) as r:
        return r.status, await r.json()


@pytest.mark.anyio
async def test_receiver_answers_200_after_handling(
    verifier: WebhookVerifier, session: aiohttp.ClientSession
) -> None:
    """A valid callback is handed to the listener, and 200 {} comes back once it returned."""
    recorder = Recorder()
    async with WebhookReceiver(verifier, on_event=recorder) as receiver:
        answer = await post(session, receiver.url, vector_body())

    assert (answer, recorder.events) == ((200, {}), [EXPECTED_EVENT])


@pytest.mark.anyio
async def test_receiver_answers_400_on_bad_signature(
    verifier: WebhookVerifier, session: aiohttp.ClientSession
) -> None:
    """A callback that fails verification gets 400 and reaches no listener."""
    recorder = Recorder()
    async with WebhookReceiver(verifier, on_event=recorder) as receiver:
        answer = await post(session, receiver.url, vector_body(signature="0" * 40))

    assert (answer, recorder.events) == ((400, {"error": "verification failed"}), [])


@pytest.mark.anyio
async def test_receiver_400_does_not_tell_failures_apart(
    verifier: WebhookVerifier, session: aiohttp.ClientSession
) -> None:
    """Bad padding and bad JSON plaintext get the same answer (no padding oracle)."""
    async with WebhookReceiver(verifier, on_event=Recorder()) as receiver:
        padding_error = await post(
            session, receiver.url, signed(base64.b64encode(bytes(32)).decode())
        )
        json_error = await post(session, receiver.url, make_body(b"not json"))

    assert padding_error == json_error


@pytest.mark.anyio
async def test_receiver_answers_500_when_the_listener_fails_and_handles_the_retry(
    verifier: WebhookVerifier, session: aiohttp.ClientSession
) -> None:
    """A failing listener gets 500 (nothing recorded); AKOOL's byte-identical retry is handled."""
    recorder = Recorder(failures=1)
    async with WebhookReceiver(verifier, on_event=recorder) as receiver:
        answers = [await post(session, receiver.url, vector_body()) for _ in range(3)]

    assert answers == [(500, {"error": "handler failed"}), (200, {}), (200, {})]
    assert recorder.events == [EXPECTED_EVENT]


@pytest.mark.anyio
async def test_receiver_is_idempotent_on_duplicates(
    verifier: WebhookVerifier, session: aiohttp.ClientSession
) -> None:
    """A duplicate of a handled event, byte-identical or re-signed, gets 200 without a call."""
    recorder = Recorder()
    resigned = make_body(PLAINTEXT, nonce="9999", timestamp=TIMESTAMP + 1000)
    async with WebhookReceiver(verifier, on_event=recorder) as receiver:
        answers = [await post(session, receiver.url, b) for b in (vector_body(),) * 2 + (resigned,)]

    assert [status for status, _ in answers] == [200, 200, 200]
    assert recorder.events == [EXPECTED_EVENT]


@pytest.mark.anyio
async def test_receiver_handles_each_status_once_and_drops_late_progress(
    verifier: WebhookVerifier, session: aiohttp.ClientSession
) -> None:
    """Statuses 2 then 3 are both handled; a status 2 arriving after 3 is acknowledged only."""
    recorder = Recorder()
    processing = [make_body(payload(status=2, url=None), nonce=n) for n in (1, 2)]
    async with WebhookReceiver(verifier, on_event=recorder) as receiver:
        for body in (processing[0], make_body(payload()), processing[1]):
            assert (await post(session, receiver.url, body))[0] == 200

    assert [event.status for event in recorder.events] == [2, 3]


@pytest.mark.anyio
async def test_receiver_dedupe_memory_is_bounded(
    verifier: WebhookVerifier, session: aiohttp.ClientSession
) -> None:
    """Past dedupe_size job ids the least recent one is forgotten and handled again."""
    recorder = Recorder()
    bodies = {job: make_body(payload(_id=job)) for job in "ab"}
    async with WebhookReceiver(verifier, on_event=recorder, dedupe_size=1) as receiver:
        for job in "aba":
            await post(session, receiver.url, bodies[job])

    assert [event.id for event in recorder.events] == ["a", "b", "a"]


@pytest.mark.anyio
async def test_receiver_concurrent_duplicates_are_handled_once(
    verifier: WebhookVerifier, session: aiohttp.ClientSession
) -> None:
    """Two simultaneous deliveries of one event call the listener once and both get 200."""
    entered, gate = anyio.Event(), anyio.Event()
    calls: list[WebhookEvent] = []

    async def slow(event: WebhookEvent) -> None:
        calls.append(event)
        entered.set()
        await gate.wait()

    answers: list[int] = []

    async def deliver(url: str) -> None:
        answers.append((await post(session, url, vector_body()))[0])

    async with (
        WebhookReceiver(verifier, on_event=slow) as receiver,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(deliver, receiver.url)
        tg.start_soon(deliver, receiver.url)
        await entered.wait()
        gate.set()

    assert (answers, calls) == ([200, 200], [EXPECTED_EVENT])


@pytest.mark.anyio
async def test_receiver_rejects_oversized_bodies(
    verifier: WebhookVerifier, session: aiohttp.ClientSession
) -> None:
    """Bodies past max_body_size get 413, with or without a Content-Length."""

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield b" " * 600

    recorder = Recorder()
    async with WebhookReceiver(verifier, on_event=recorder, max_body_size=1024) as receiver:
        sized = await post(session, receiver.url, b" " * 1025)
        async with session.post(receiver.url, data=chunks()) as response:
            chunked = response.status
        fits = await post(session, receiver.url, json.dumps(vector_body()).encode().ljust(1024))

    assert (sized, chunked, fits) == ((413, {"error": "body too large"}), 413, (200, {}))


@pytest.mark.anyio
async def test_receiver_answers_503_without_listeners(
    verifier: WebhookVerifier, session: aiohttp.ClientSession
) -> None:
    """With nobody listening the event is not acknowledged, so AKOOL keeps retrying."""
    recorder = Recorder()
    async with WebhookReceiver(verifier) as receiver:
        first = await post(session, receiver.url, vector_body())
        receiver.subscribe(recorder)
        second = await post(session, receiver.url, vector_body())

    assert (first, second) == ((503, {"error": "no listener"}), (200, {}))
    assert recorder.events == [EXPECTED_EVENT]


@pytest.mark.anyio
async def test_receiver_subscribe_and_unsubscribe(
    verifier: WebhookVerifier, session: aiohttp.ClientSession
) -> None:
    """Every subscriber (sync or async) gets each new event until it unsubscribes."""
    seen_sync: list[str] = []
    recorder = Recorder()
    receiver = WebhookReceiver(verifier, on_event=recorder)
    unsubscribe = receiver.subscribe(lambda event: seen_sync.append(event.id))
    async with receiver:
        await post(session, receiver.url, make_body(payload(_id="a")))
        unsubscribe()
        unsubscribe()
        await post(session, receiver.url, make_body(payload(_id="b")))

    assert (seen_sync, [e.id for e in recorder.events]) == (["a"], ["a", "b"])


@pytest.mark.anyio
async def test_receiver_calls_every_listener_even_if_one_fails(
    verifier: WebhookVerifier, session: aiohttp.ClientSession
) -> None:
    """One failing listener makes the answer 500 but does not starve the others."""
    recorder = Recorder()

    def broken(event: WebhookEvent) -> None:
        raise ValueError("broken")

    async with WebhookReceiver(verifier, on_event=broken) as receiver:
        receiver.subscribe(recorder)
        answer = await post(session, receiver.url, vector_body())

    assert (answer[0], recorder.events) == (500, [EXPECTED_EVENT])


@pytest.mark.anyio
async def test_receiver_events_iterator(
    verifier: WebhookVerifier, session: aiohttp.ClientSession
) -> None:
    """events() yields each new event, and ends when the receiver closes."""
    received: list[WebhookEvent] = []
    async with WebhookReceiver(verifier) as receiver, receiver.events() as events:
        answer = await post(session, receiver.url, vector_body())
        await receiver.aclose()
        received.extend([event async for event in events])

    assert (answer, received) == ((200, {}), [EXPECTED_EVENT])


@pytest.mark.anyio
async def test_receiver_events_buffer_full_is_a_failure(
    verifier: WebhookVerifier, session: aiohttp.ClientSession
) -> None:
    """When the events() buffer is full the delivery gets 500 so AKOOL retries later."""
    async with WebhookReceiver(verifier) as receiver, receiver.events(max_buffer=1) as events:
        first = await post(session, receiver.url, make_body(payload(_id="a")))
        second = await post(session, receiver.url, make_body(payload(_id="b")))
        drained = await events.__anext__()

    assert (first[0], second[0], drained.id) == (200, 500, "a")


@pytest.mark.anyio
async def test_receiver_handler_mounts_on_a_user_app(
    verifier: WebhookVerifier, session: aiohttp.ClientSession
) -> None:
    """handler works on the user's own aiohttp application and route."""
    recorder = Recorder()
    receiver = WebhookReceiver(verifier, on_event=recorder)
    app = web.Application()
    app.router.add_post("/hooks/akool", receiver.handler)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        answer = await post(session, f"http://{host}:{port}/hooks/akool", vector_body())
    finally:
        await runner.cleanup()

    assert (answer, recorder.events) == ((200, {}), [EXPECTED_EVENT])


@pytest.mark.anyio
async def test_receiver_app_serves_post_only_on_its_path(
    verifier: WebhookVerifier, session: aiohttp.ClientSession
) -> None:
    """app(path) routes POST on path; other methods get 405, other paths 404."""
    receiver = WebhookReceiver(verifier, on_event=Recorder())
    url = await receiver.start(path="/custom")
    try:
        async with session.get(url) as get, session.post(url + "x", data=b"{}") as other:
            statuses = (get.status, other.status)
    finally:
        await receiver.aclose()

    assert url.startswith("http://127.0.0.1:")
    assert url.endswith("/custom")
    assert statuses == (405, 404)


@pytest.mark.anyio
async def test_receiver_handler_answers_405_to_other_methods(verifier: WebhookVerifier) -> None:
    """Mounted on a catch-all route, the handler still only accepts POST."""
    receiver = WebhookReceiver(verifier, on_event=Recorder())
    app = web.Application()
    app.router.add_route("*", "/hook", receiver.handler)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        async with (
            aiohttp.ClientSession() as client,
            client.put(f"http://{host}:{port}/hook", data=b"{}") as response,
        ):
            answer = (response.status, response.headers["Allow"])
    finally:
        await runner.cleanup()

    assert answer == (405, "POST")


@pytest.mark.anyio
async def test_receiver_state_errors(verifier: WebhookVerifier) -> None:
    """url before start, or a second start, raise ClientStateError."""
    receiver = WebhookReceiver(verifier)
    with pytest.raises(ClientStateError):
        _ = receiver.url
    async with receiver:
        with pytest.raises(ClientStateError):
            await receiver.start()
    with pytest.raises(ClientStateError):
        _ = receiver.url


@pytest.mark.anyio
async def test_events_must_be_entered_once(verifier: WebhookVerifier) -> None:
    """Iterating events() outside 'async with', or entering it twice, is a ClientStateError."""
    stream = WebhookReceiver(verifier).events()
    with pytest.raises(ClientStateError):
        await stream.__anext__()
    async with stream:
        with pytest.raises(ClientStateError):
            await stream.__aenter__()


def test_event_status_is_converted() -> None:
    """A WebhookEvent built by hand (e.g. in a test double) turns an int status into SwapStatus."""
    event = WebhookEvent(
        id="a", status=4, type="faceswap", url=None, timestamp=0, nonce="1", signature="0" * 40
    )

    assert (event.status, event.is_terminal) == (SwapStatus.FAILED, True)


def test_receiver_rejects_bad_settings(verifier: WebhookVerifier) -> None:
    """Sizes below 1 are refused at construction with a ValidationError naming the setting."""
    fields = []
    for build in (
        lambda: WebhookReceiver(verifier, max_body_size=0),
        lambda: WebhookReceiver(verifier, dedupe_size=0),
        lambda: WebhookReceiver(verifier).events(max_buffer=0),
    ):
        with pytest.raises(ValidationError) as info:
            build()
        fields.append(info.value.field)

    assert fields == ["max_body_size", "dedupe_size", "max_buffer"]


def test_receiver_repr_redacts_the_secret(verifier: WebhookVerifier) -> None:
    """The receiver's repr shows the verifier's redacted repr."""
    assert SECRET not in repr(WebhookReceiver(verifier))


@pytest.mark.anyio
async def test_receiver_end_to_end_with_the_emulator(session: aiohttp.ClientSession) -> None:
    """The emulator's real callbacks verify; a listener failure is retried and handled once."""
    config = EmulatorConfig(clock="manual", webhook_statuses=(2, 3, 4), webhook_include_job_id=True)
    async with Emulator(config=config) as emu:
        verifier = WebhookVerifier(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, now=emu.clock.now)
        recorder = Recorder(failures=1)
        async with WebhookReceiver(verifier, on_event=recorder) as receiver:
            request = {
                "sourceImage": [{"path": "https://example.com/source.jpg"}],
                "targetImage": [{"path": "https://example.com/target.jpg"}],
                "webhookUrl": receiver.url,
            }
            async with session.post(
                f"{emu.base_url}/api/open/v4/faceswap/faceswapByImage",
                json=request,
                headers={"x-api-key": emu.api_key},
            ) as response:
                job_id = (await response.json())["data"]["_id"]
            await emu.advance(3600)
            outcomes = [(a.status, a.outcome) for a in emu.webhook_attempts]

    assert outcomes == [(2, "rejected"), (2, "delivered"), (3, "delivered")]
    assert [(e.id, e.status, e.url is None) for e in recorder.events] == [
        (job_id, SwapStatus.PROCESSING, True),
        (job_id, SwapStatus.SUCCESS, False),
    ]
    assert "job_id" in recorder.events[1].extra


@pytest.mark.parametrize(
    ("body", "reason", "check_clock"),
    [
        (b"\xff", "json", False),
        (b"[1]", "json", False),
        (vector_body(nonce=None), "fields", False),
        (vector_body(signature="0" * 40), "signature", False),
        (vector_body(), "timestamp", True),
        (signed("Wu2he/ZGjn6xw2t0=="), "base64", False),
        (signed(base64.b64encode(b"x" * 15).decode()), "padding", False),
        (make_body(b"[1]"), "json", False),
        (make_body(payload(status=9)), "fields", False),
    ],
    ids=[
        "utf8",
        "array",
        "fields",
        "signature",
        "timestamp",
        "base64",
        "blocks",
        "payload",
        "status",
    ],
)
def test_rejection_reason_is_machine_readable(
    verifier: WebhookVerifier, clock: Clock, body: Any, reason: str, check_clock: bool
) -> None:
    """Every rejection carries ``reason``, the check that failed, for code to act on."""
    if check_clock:
        clock.now += 301
    with pytest.raises(WebhookVerificationError) as info:
        verifier.verify(body)

    assert info.value.reason == reason


def test_replay_reason_and_default_reason(verifier: WebhookVerifier) -> None:
    """A replay has reason "replay"; an error built with a message only has "unknown"."""
    verifier.verify(vector_body())
    with pytest.raises(WebhookVerificationError) as info:
        verifier.verify(vector_body())

    assert (info.value.reason, WebhookVerificationError("x").reason) == ("replay", "unknown")


@pytest.mark.anyio
async def test_receiver_counts_rejections_and_logs_a_bounded_summary(
    verifier: WebhookVerifier, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    """500 junk bodies and one oversized body give 2 WARNING lines (first, summary), all counted."""
    caplog.set_level(logging.DEBUG, logger="akool_async.webhooks")
    async with WebhookReceiver(verifier, on_event=Recorder(), max_body_size=1024) as receiver:
        for i in range(500):
            async with session.post(receiver.url, data=f"junk {i}") as response:
                assert response.status == 400
        oversized = await post(session, receiver.url, b" " * 2000)
        accepted = await post(session, receiver.url, vector_body())
        stats = receiver.statistics()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert (
        (oversized[0], accepted[0]),
        (stats.accepted, stats.rejected, dict(stats.rejected_by_reason)),
        warnings,
    ) == (
        (413, 200),
        (1, 501, {"json": 500, "size": 1}),
        [
            "rejected an AKOOL webhook from 127.0.0.1: body is not valid JSON: JSONDecodeError",
            "rejected 500 AKOOL webhooks since the last report (json 499, size 1); the last "
            "from 127.0.0.1: body over 1024 bytes",
        ],
    )


@pytest.mark.anyio
async def test_receiver_reports_pending_rejections_once_the_interval_passed(
    verifier: WebhookVerifier, session: aiohttp.ClientSession
) -> None:
    """Rejections after the first are reported when the interval ends, with no new rejection."""
    counts: list[int] = []
    reported = asyncio.Event()

    class Reports(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            words = record.getMessage().split()
            counts.append(1 if words[1] == "an" else int(words[1]))
            if sum(counts) == 3:
                reported.set()

    handler = Reports(level=logging.WARNING)
    logger = logging.getLogger("akool_async.webhooks")
    logger.addHandler(handler)
    try:
        async with WebhookReceiver(verifier, rejection_log_interval=0.2) as receiver:
            for i in range(3):
                async with session.post(receiver.url, data=f"junk {i}") as response:
                    assert response.status == 400
            with anyio.fail_after(10):
                await reported.wait()  # the loop's timer reports what is pending
    finally:
        logger.removeHandler(handler)
    # [1, 2] unless the machine was so slow that the interval passed between two rejections.
    assert (counts[0], sum(counts), len(counts) in (2, 3)) == (1, 3, True)


def test_receiver_statistics_start_at_zero(verifier: WebhookVerifier) -> None:
    """A new receiver's statistics are all zero; a negative log interval is refused."""
    with pytest.raises(ValidationError):
        WebhookReceiver(verifier, rejection_log_interval=-1)
    assert WebhookReceiver(verifier).statistics() == WebhookReceiverStatistics(
        accepted=0, duplicates=0, failed=0, unheard=0, rejected=0, rejected_by_reason={}
    )
