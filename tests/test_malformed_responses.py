"""Malformed server answers through the real client: always APIError/TransportError, never a crash.

A tiny local aiohttp app answers every API route with one canned malformed response (wrong
types, truncated JSON, HTML error pages, huge, empty or deeply nested bodies, the wrong
content type, a body cut short, a body that never comes). Reads (credit, results, token) and
job-creating submits must each end in an ``APIError`` or ``TransportError`` (for a submit, an
``AmbiguousSubmitError`` when the server may have acted), within the client's timeouts.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import pytest
from aiohttp import web

from akool_async import (
    AmbiguousSubmitError,
    APIError,
    AsyncClient,
    PlusSwap,
    RetryPolicy,
    Timeout,
    TransportError,
)

pytestmark = pytest.mark.anyio

RETRY = RetryPolicy(max_attempts=2, initial_delay=0.001, max_delay=0.002, jitter=False)
JOB_ID = "6593c94c0ef703e8c055e3c8"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_text(text: str, status: int = 200, content_type: str = "application/json") -> Handler:
    """Answer ``text`` as the body with ``status`` and ``content_type``."""

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, text=text, content_type=content_type)

    return handler


def raw(body: bytes, status: int = 200) -> Handler:
    """Answer these exact bytes."""

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, body=body, content_type="application/json")

    return handler


async def cut_short(request: web.Request) -> web.StreamResponse:
    """Promise 1,000 bytes, send 10, and close the connection."""
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.content_length = 1000
    await response.prepare(request)
    await response.write(b'{"code": 10')
    assert request.transport is not None
    request.transport.close()
    return response


async def never_finishes(request: web.Request) -> web.StreamResponse:
    """Send the headers and part of the body, then stall far past the read timeout."""
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    await response.write(b'{"code": 1000, ')
    await asyncio.sleep(30)
    return response


HTML = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
CASES: dict[str, Handler] = {
    "truncated json": json_text('{"code": 1000, "data": {"cre'),
    "empty body": raw(b""),
    "html 200": json_text(HTML, content_type="text/html"),
    "html 502": json_text(HTML, status=502, content_type="text/html"),
    "html 500": json_text(HTML, status=500, content_type="text/html"),
    "json null": json_text("null"),
    "json list": json_text("[1, 2, 3]"),
    "json string": json_text('"OK"'),
    "code as text": json_text('{"code": "1000", "data": {}}'),
    "code as float": json_text('{"code": 1000.5, "data": {}}'),
    "code as bool": json_text('{"code": true, "data": {}}'),
    "no code": json_text('{"data": {"credit": 5}}'),
    "data as list": json_text('{"code": 1000, "data": []}'),
    "data as text": json_text('{"code": 1000, "data": "x"}'),
    "wrong field types": json_text(
        '{"code": 1000, "data": {"credit": "lots", "result": "x", "_id": 5, "job_id": []}}'
    ),
    "error code with wrong msg type": json_text('{"code": 1003, "msg": {"a": [1]}}'),
    "huge code": json_text('{"code": 1' + "0" * 5000 + ', "data": {}}'),
    "nan": json_text('{"code": NaN, "data": {"credit": Infinity}}'),
    "deeply nested": json_text('{"code": 1000, "data": ' + "[" * 100_000 + "]" * 100_000 + "}"),
    "huge body": raw(b'{"code": 1000, "data": {"pad": "' + b"x" * 20_000_000 + b'"}'),
    "not utf-8": raw(b'{"code": 1000, "msg": "\xff\xfe"}'),
    "wrong content type": json_text('{"code": 1000, "data": []}', content_type="text/plain"),
    "429 without body": raw(b"", status=429),
    "json error 503": json_text('{"code": 2001, "msg": "busy"}', status=503),
    "cut short": cut_short,
    "never finishes": never_finishes,
}


@pytest.fixture(params=sorted(CASES))
async def server(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A local server answering every path with the case's response; yields its base URL."""
    handler = CASES[request.param]
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def outcome(result: Any) -> str:
    """Classify what a call produced: an allowed error's kind, or a returned value."""
    if isinstance(result, AmbiguousSubmitError):
        return "ambiguous"
    if isinstance(result, APIError | TransportError):
        return "api/transport"
    return "value"


async def attempt(call: Callable[[], Awaitable[Any]]) -> Any:
    """Await ``call()``; return the AkoolError it raised (anything else propagates)."""
    try:
        with anyio.fail_after(10):  # a hang fails the test instead of blocking the suite
            return await call()
    except (APIError, TransportError) as exc:
        return exc


async def test_every_operation_fails_cleanly(server: str) -> None:
    """Credit, results, submit and getToken each end in APIError/TransportError, never a crash."""
    timeout = Timeout(connect=1, read=0.5, total=5)
    swap = PlusSwap(source_url="https://x/a.png", target_url="https://x/b.png")
    async with (
        AsyncClient(api_key="k", base_url=server, retry=RETRY, timeout=timeout) as keyed,
        AsyncClient(
            client_id="id", client_secret="s", base_url=server, retry=RETRY, timeout=timeout
        ) as token,
    ):
        results = {
            "credit": await attempt(keyed.get_credit),
            "results": await attempt(lambda: keyed.get_results([JOB_ID])),
            "submit": await attempt(lambda: keyed.faceswap_plus(swap)),
            "token": await attempt(token.get_credit),
        }
    kinds = {name: outcome(value) for name, value in results.items()}
    assert kinds["credit"] == "api/transport"
    assert kinds["token"] == "api/transport"
    assert kinds["submit"] in ("ambiguous", "api/transport")
    # A wrong content type with an otherwise valid "no results" body may legitimately decode.
    assert kinds["results"] in ("api/transport", "value")
