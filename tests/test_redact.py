"""The one redaction point: registered secrets are masked in texts, errors, causes and logs."""

from __future__ import annotations

import json
import logging
import re
import traceback
from pathlib import Path

import pytest

import akool_async
from akool_async import AkoolError, APIError, TransportError, ValidationError
from akool_async._redact import (
    SDK_LOGGERS,
    RedactingFilter,
    describe,
    redact,
    register,
    safe_cause,
    scrub,
    scrub_error,
)

SECRET = "REDACTtestSECRET0123456789abcdef"
TOKEN = "eyREDACT.test-token." + "t" * 60

register(SECRET, TOKEN)


class FakeResponseError(Exception):
    """Stands in for aiohttp's ClientResponseError: it holds the request (and its headers)."""

    def __init__(self) -> None:
        super().__init__(f"headers: {{'x-api-key': '{SECRET}'}}")
        self.request_info = {"headers": {"x-api-key": SECRET}}
        self.status = 302


def test_redact_masks_every_registered_secret() -> None:
    """The key and the token are masked wherever they are in a text; other text is kept."""
    text = f"key={SECRET} auth=Bearer {TOKEN} end"
    assert redact(text) == "key=*** auth=Bearer *** end"


def test_short_values_are_not_registered() -> None:
    """A value too short to be a real credential is not masked (it would shred ordinary text)."""
    register("secret", "k", None, "")
    assert redact("client_secret: must be a string") == "client_secret: must be a string"


def test_scrub_masks_nested_values_and_a_cut_off_secret() -> None:
    """JSON-like containers are scrubbed; a text ending in a secret's first part loses it."""
    body = {"msg": f"bad {SECRET}", "list": [TOKEN, 3], "cut": "page ..." + SECRET[:12]}
    assert scrub(body) == {"msg": "bad ***", "list": ["***", 3], "cut": "page ...***"}


def test_akool_errors_are_masked_as_they_are_built() -> None:
    """An AkoolError's message (so str, repr, args and traceback) never holds a secret."""
    error = ValidationError(f"got {SECRET!r}", field="api_key")
    texts = [str(error), repr(error), repr(error.args), "".join(traceback.format_exception(error))]
    assert [SECRET in text for text in texts] == [False] * 4


def test_scrub_error_cleans_attributes_and_the_cause_chain() -> None:
    """A server's echo is removed from data attributes and from causes (a JSON error's doc)."""
    try:
        json.loads(f"<html>{SECRET}</html>")
    except json.JSONDecodeError as exc:
        cause = exc
    error = APIError(f"msg {SECRET}", code=1102, status=401, body={"msg": SECRET})
    error.__cause__ = cause
    scrub_error(error)
    texts = [repr(vars(error)), repr(vars(cause)), repr(error.args)]
    assert [SECRET in text for text in texts] == [False] * 3


def test_scrub_error_cuts_a_cause_holding_the_request() -> None:
    """A cause with ``request_info`` (the request headers) is removed from the chain."""
    error = TransportError("quota: the request failed")
    error.__cause__ = FakeResponseError()
    scrub_error(error)
    assert (error.__cause__, error.__suppress_context__) == (None, True)


def test_describe_shows_safe_parts_only() -> None:
    """Response errors show class and status; OS errors their strerror; others a redacted str."""
    assert [
        describe(FakeResponseError()),
        describe(ConnectionRefusedError(111, "Connection refused")),
        describe(RuntimeError(f"boom {SECRET}")),
        describe(TimeoutError()),
        safe_cause(FakeResponseError()),
    ] == [
        "FakeResponseError (HTTP 302)",
        "ConnectionRefusedError (Connection refused)",
        "RuntimeError: boom ***",
        "TimeoutError",
        None,
    ]


def test_the_filter_masks_messages_arguments_and_tracebacks() -> None:
    """A record's message, arguments and traceback are masked before any handler sees them."""
    try:
        raise RuntimeError(f"inner {TOKEN}")
    except RuntimeError as exc:
        record = logging.LogRecord(
            "akool_async", logging.ERROR, __file__, 1, "saw %s", (SECRET,), (type(exc), exc, None)
        )
    RedactingFilter().filter(record)
    text = logging.Formatter().format(record)
    assert (SECRET in text, TOKEN in text, "saw ***" in text, "inner ***" in text) == (
        False,
        False,
        True,
        True,
    )


def test_every_sdk_logger_has_the_filter() -> None:
    """Every logger the package creates is listed, and carries the redacting filter."""
    source = Path(akool_async.__file__).parent
    names = set()
    for path in source.rglob("*.py"):
        names.update(re.findall(r'getLogger\("([^"]+)"\)', path.read_text(encoding="utf-8")))
    filtered = {
        name
        for name in SDK_LOGGERS
        if any(isinstance(f, RedactingFilter) for f in logging.getLogger(name).filters)
    }
    assert (sorted(names), filtered) == (sorted(SDK_LOGGERS), set(SDK_LOGGERS))


def test_a_secret_logged_by_the_sdk_never_reaches_a_handler(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A record of an SDK logger is masked even when a handler of the root logger formats it."""
    caplog.set_level(logging.DEBUG)
    logging.getLogger("akool_async.poller").debug("token %s", TOKEN)
    assert [record.getMessage() for record in caplog.records] == ["token ***"]


def test_an_unregistered_value_is_not_an_error() -> None:
    """Texts without secrets come back unchanged, and an AkoolError keeps its message."""
    assert (redact("nothing here"), str(AkoolError("plain"))) == ("nothing here", "plain")
