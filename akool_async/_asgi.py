"""Serve a ``WebhookReceiver`` over ASGI: uvicorn, hypercorn, FastAPI, Starlette.

``WebhookASGIApp`` (from ``receiver.asgi()``) is written against the ASGI 3 specification
alone, so the core needs no web framework: it reads the raw body from ``receive`` and hands
method, declared length and chunks to the receiver's framework-neutral ``_answer``, the very
code the aiohttp ``handler`` runs. Every answer is therefore the aiohttp receiver's: 413 past
``max_body_size`` (checked on the ``Content-Length`` and again while reading), 400 when
verification fails, 200 only after every listener returned, 500 when one raised (AKOOL
retries), 200 without a call for a duplicate, 503 with no listener, 405 for a method other
than POST. The body is never parsed before the signature check.

Nothing is answered to a client that disconnected before its body was complete; once the body
is in, the listeners run to the end and their outcome is recorded even if the answer can no
longer be sent (AKOOL's retry is then a duplicate, acknowledged without a call).

It runs on asyncio, as the receiver does (uvicorn, hypercorn's asyncio worker, daphne).
Starlette (and so FastAPI) is needed only by ``route()`` and ``endpoint()``, and imported
there, lazily (``pip install '.[asgi]'`` in a checkout, or ``pip install starlette``).
"""

from __future__ import annotations

import contextlib
import json
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import TYPE_CHECKING, Any, Final, Self

from akool_async._ambiguity import REFERENCE_PARAM
from akool_async._errors import ValidationError
from akool_async._receiver import DEFAULT_PATH, WebhookReceiver, _Answer

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

__all__ = ["ASGIReceive", "ASGIScope", "ASGISend", "WebhookASGIApp"]

#: The three ASGI callables' types, duck-typed (no framework's own type is needed).
ASGIScope = MutableMapping[str, Any]
ASGIReceive = Callable[[], Awaitable[MutableMapping[str, Any]]]
ASGISend = Callable[[MutableMapping[str, Any]], Awaitable[None]]

STARLETTE_HINT: Final = "pip install '.[asgi]' in an akool-async checkout, or pip install starlette"
_JSON: Final = (b"content-type", b"application/json")


class _Disconnected(Exception):
    """The client went away before its body was complete."""


class _BodyChunks:
    """The ``http.request`` bodies of one request, as an async iterator of bytes."""

    def __init__(self, receive: ASGIReceive) -> None:
        self._receive = receive
        self._done = False

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> bytes:
        while not self._done:
            message = await self._receive()
            kind = message.get("type")
            if kind == "http.disconnect":
                raise _Disconnected
            if kind == "http.request":
                self._done = not message.get("more_body", False)
                return bytes(message.get("body", b""))
        raise StopAsyncIteration


def _content_length(headers: Iterable[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name.lower() == b"content-length":
            with contextlib.suppress(ValueError):
                return int(value)
            return None
    return None


def _reference(query_string: object) -> str | None:
    # The submit's reference rides in the webhook URL's query (see _ambiguity).
    if not isinstance(query_string, bytes | bytearray):
        return None
    values = urllib.parse.parse_qs(bytes(query_string).decode("latin-1")).get(REFERENCE_PARAM)
    return values[-1] if values else None


def _render(answer: _Answer) -> bytes:
    return json.dumps(dict(answer.body)).encode()


class WebhookASGIApp:
    """An ASGI 3 application that serves a ``WebhookReceiver``; get it from ``receiver.asgi()``.

    Route it from your framework or serve it on its own; it answers on whatever path it is
    given. Its listeners, ``events()`` and duplicate filter are the receiver's, so
    ``client.use_webhooks(receiver, url=...)`` finishes jobs from its callbacks.

    * Any ASGI server: ``uvicorn mymodule:webhooks`` with ``webhooks = receiver.asgi()``.
    * Starlette: ``Starlette(routes=[webhooks.route("/akool/webhook")])``.
    * FastAPI: ``FastAPI(routes=[webhooks.route()])``, or in a route of your own,
      ``return await webhooks.endpoint(request)`` (dependencies, auth and logging included).

    Args:
        receiver: The receiver whose listeners handle the events.
    """

    def __init__(self, receiver: WebhookReceiver) -> None:
        self._receiver = receiver

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._receiver!r})"

    @property
    def receiver(self) -> WebhookReceiver:
        """The receiver this application serves."""
        return self._receiver

    async def __call__(self, scope: ASGIScope, receive: ASGIReceive, send: ASGISend) -> None:
        """The ASGI entry point: ``http`` requests, ``lifespan`` and (refused) ``websocket``.

        Raises:
            ValidationError: An ASGI scope type that is none of those three.
        """
        kind = scope.get("type")
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "websocket":
            await send({"type": "websocket.close", "code": 1003})
        else:
            raise ValidationError(f"unsupported ASGI scope type {kind!r}", field="scope")

    async def _http(self, scope: ASGIScope, receive: ASGIReceive, send: ASGISend) -> None:
        client = scope.get("client")
        try:
            answer = await self._receiver._answer(
                str(scope.get("method", "")),
                _content_length(scope.get("headers") or ()),
                _BodyChunks(receive),
                str(client[0]) if client else None,
                reference=_reference(scope.get("query_string", b"")),
            )
        except _Disconnected:
            return
        body = _render(answer)
        headers = [_JSON, (b"content-length", str(len(body)).encode())]
        headers += [(k.lower().encode(), v.encode()) for k, v in answer.headers.items()]
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _lifespan(self, receive: ASGIReceive, send: ASGISend) -> None:
        # Served on its own, the server asks for a lifespan; there is nothing to set up.
        while True:
            message = await receive()
            if message.get("type") == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message.get("type") == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- Starlette and FastAPI --------------------------------------------------------------

    def route(self, path: str = DEFAULT_PATH, *, name: str = "akool_webhook") -> Route:
        """Return a Starlette ``Route`` serving this application on ``path``.

        For ``Starlette(routes=[...])``, ``FastAPI(routes=[...])`` or
        ``app.router.routes.append(...)``. Every method reaches the receiver, which answers
        405 itself to anything but POST (as the aiohttp handler does).

        Raises:
            ImportError: Starlette is not installed.
        """
        try:
            from starlette.routing import Route
        except ImportError as exc:  # pragma: no cover - exercised only without the extra
            raise ImportError(f"route() needs Starlette: {STARLETTE_HINT}") from exc
        return Route(path, self, name=name)

    async def endpoint(self, request: Request) -> Response:
        """Answer a Starlette or FastAPI ``Request``: call it from a POST route of your own.

        The raw body is read from ``request.stream()`` (so do not read or parse it before):
        ``return await webhooks.endpoint(request)``.

        Raises:
            ImportError: Starlette is not installed.
        """
        try:
            from starlette.requests import ClientDisconnect
            from starlette.responses import Response
        except ImportError as exc:  # pragma: no cover - exercised only without the extra
            raise ImportError(f"endpoint() needs Starlette: {STARLETTE_HINT}") from exc
        async with contextlib.aclosing(request.stream()) as chunks:
            try:
                answer = await self._receiver._answer(
                    request.method,
                    _content_length(request.headers.raw),
                    chunks,
                    request.client.host if request.client else None,
                    reference=_reference(request.scope.get("query_string", b"")),
                )
            except ClientDisconnect:
                # Nobody is left to read it; a status is still needed to return something.
                answer = _Answer(400, {"error": "client disconnected"})
        return Response(
            _render(answer),
            status_code=answer.status,
            headers=dict(answer.headers),
            media_type="application/json",
        )
