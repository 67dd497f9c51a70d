"""Property tests: WebhookVerifier.verify raises nothing but WebhookVerificationError, ever.

Random bytes, random JSON, mutated valid bodies and random (correctly encrypted) plaintexts are
thrown at the verifier; each either verifies to the expected event or is rejected with a
WebhookVerificationError whose message is neither the internal-error safety net nor the secret.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from akool_async import _crypto
from akool_async._errors import WebhookVerificationError
from akool_async._webhooks import WebhookEvent, WebhookVerifier
from tests.test_webhooks import CLIENT_ID, EXPECTED_EVENT, NOW, SECRET, TIMESTAMP, vector_body

FUZZ = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
VERIFIER = WebhookVerifier(CLIENT_ID, SECRET, tolerance=300, now=lambda: NOW)
VALID_RAW = json.dumps(vector_body(), separators=(",", ":")).encode()


def json_strategy(floats: st.SearchStrategy[float]) -> st.SearchStrategy[Any]:
    """Nested JSON-like values with the given floats."""
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(min_value=-(10**30), max_value=10**30)
        | floats
        | st.text(max_size=30)
    )
    return st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=10), children, max_size=4)
        ),
        max_leaves=12,
    )


#: Anything json.dumps writes, including NaN and Infinity (which are not JSON).
json_values = json_strategy(st.floats())
#: Only what real JSON can carry.
strict_json_values = json_strategy(st.floats(allow_nan=False, allow_infinity=False))


def outcome(body: Any, verifier: WebhookVerifier = VERIFIER, **kwargs: Any) -> WebhookEvent | None:
    """The event, or None when rejected properly; anything else fails the test."""
    try:
        return verifier.verify(body, **kwargs)
    except WebhookVerificationError as exc:
        message = str(exc)
        assert "internal error" not in message
        assert SECRET not in message
        return None


def thaw(value: Any) -> Any:
    """Undo the read-only copy of ``extra`` (proxies to dicts, tuples to lists)."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value


@FUZZ
@given(st.binary(max_size=400))
def test_random_bytes_are_rejected(raw: bytes) -> None:
    """Random bytes never verify and never raise anything else."""
    assert outcome(raw) is None


@FUZZ
@given(json_values)
def test_random_json_is_rejected(value: Any) -> None:
    """Random JSON, as text or as a decoded mapping, never verifies."""
    assert outcome(json.dumps(value)) is None
    if isinstance(value, dict):
        assert outcome(value) is None


@FUZZ
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "signature": json_values,
            "dataEncrypt": json_values,
            "timestamp": json_values,
            "nonce": json_values,
        },
    )
)
def test_random_field_values_are_rejected(body: dict[str, Any]) -> None:
    """The four fields with random values of random types never verify."""
    assert outcome(json.dumps(body)) is None


@FUZZ
@given(st.integers(0, len(VALID_RAW) * 8 - 1))
def test_bit_flips_are_rejected_or_harmless(bit: int) -> None:
    """A valid body with one bit flipped is rejected, or still means exactly the same event."""
    raw = bytearray(VALID_RAW)
    raw[bit // 8] ^= 1 << (bit % 8)

    assert outcome(bytes(raw), check_replay=False) in (None, EXPECTED_EVENT)


def test_every_bit_flip_and_truncation_is_rejected_or_harmless() -> None:
    """Exhaustively: each single-bit flip and each strict prefix of a valid body."""
    outcomes: set[WebhookEvent | None] = set()
    for bit in range(len(VALID_RAW) * 8):
        raw = bytearray(VALID_RAW)
        raw[bit // 8] ^= 1 << (bit % 8)
        outcomes.add(outcome(bytes(raw), check_replay=False))
    for length in range(len(VALID_RAW)):
        outcomes.add(outcome(VALID_RAW[:length], check_replay=False))

    assert outcomes == {None, EXPECTED_EVENT}  # flipping a hex digit's case is harmless


@FUZZ
@given(st.integers(0, len(VALID_RAW) - 1))
def test_truncations_are_rejected(length: int) -> None:
    """Every strict prefix of a valid body is rejected."""
    assert outcome(VALID_RAW[:length], check_replay=False) is None


@FUZZ
@given(
    st.sampled_from(["signature", "dataEncrypt", "timestamp", "nonce"]),
    json_values | st.just(None),
)
def test_field_swaps_and_removals_are_rejected_or_harmless(field: str, value: Any) -> None:
    """Replacing or removing (None) one field is rejected unless it is an equivalent value."""
    body = vector_body(**{field: value})

    assert outcome(json.dumps(body), check_replay=False) in (None, EXPECTED_EVENT)
    assert outcome(body, check_replay=False) in (None, EXPECTED_EVENT)


@FUZZ
@given(st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()))
def test_random_plaintexts_are_rejected(plaintext: bytes) -> None:
    """Correctly signed and encrypted junk plaintext is rejected after decryption."""
    data = _crypto.encrypt(plaintext, CLIENT_ID, SECRET)
    body = {
        "signature": _crypto.sign(CLIENT_ID, TIMESTAMP, "7", data),
        "dataEncrypt": data,
        "timestamp": TIMESTAMP,
        "nonce": "7",
    }

    event = outcome(body, check_replay=False)

    assert event is None or event.status in (1, 2, 3, 4)


payload_keys = st.text(max_size=8).filter(lambda k: k not in {"_id", "status", "type", "url"})
printable = st.characters(min_codepoint=33, max_codepoint=126)
ascii_text = st.text(printable, min_size=1, max_size=40)


@FUZZ
@given(
    job_id=st.text(min_size=1, max_size=30),
    status=st.integers(1, 4),
    kind=st.text(max_size=20),
    url=st.none() | st.text(max_size=60),
    extra=st.dictionaries(payload_keys, strict_json_values, max_size=3),
    client_id=ascii_text,
    secret=st.sampled_from([16, 24, 32]).flatmap(
        lambda n: st.text(
            st.characters(min_codepoint=33, max_codepoint=126), min_size=n, max_size=n
        )
    ),
    skew=st.integers(-300_000, 300_000),
    nonce=st.integers(0, 10**12) | st.from_regex(r"[0-9]{1,12}", fullmatch=True),
    numeric_timestamp=st.booleans(),
)
def test_valid_bodies_verify_to_their_payload(
    job_id: str,
    status: int,
    kind: str,
    url: str | None,
    extra: dict[str, Any],
    client_id: str,
    secret: str,
    skew: int,
    nonce: int | str,
    numeric_timestamp: bool,
) -> None:
    """Any well-formed payload, key length, client id and in-window timestamp round-trips."""
    plaintext = json.dumps({"_id": job_id, "status": status, "type": kind, "url": url} | extra)
    data = _crypto.encrypt(plaintext.encode(), client_id, secret)
    timestamp: int | str = TIMESTAMP + skew if numeric_timestamp else str(TIMESTAMP + skew)
    body = {
        "signature": _crypto.sign(client_id, timestamp, nonce, data),
        "dataEncrypt": data,
        "timestamp": timestamp,
        "nonce": nonce,
    }
    verifier = WebhookVerifier(client_id, secret, now=lambda: NOW)

    event = verifier.verify(json.dumps(body).encode())

    assert (event.id, event.status, event.type, event.url, event.nonce) == (
        job_id,
        status,
        kind,
        url or None,
        str(nonce),
    )
    assert thaw(event.extra) == extra
    assert outcome(json.dumps(body)) is None  # and it cannot be replayed
