"""A ready aiohttp receiver for AKOOL webhooks: verify, hand to listeners, then answer.

AKOOL retries any callback that does not get HTTP 200 (contract 5.5), so the receiver answers
200 only once every listener has handled the event, and never handles the same event twice:

* 413 when the body passes ``max_body_size``; 400 when ``WebhookVerifier`` rejects it (one
  fixed body whatever the reason, so that the answer is no padding oracle; the reason is logged);
* 200 without calling anyone when the event's identity ``(_id, status)`` was already handled
  (a duplicate delivery), or when it is a non-terminal status of a job whose terminal status
  was already handled (a late or replayed "processing" after "success");
* otherwise every listener is called in subscription order; 200 if all succeeded, 500 if any
  raised (the identity is then not recorded, so AKOOL's retry is handled again);
* 503 when nobody listens yet, so that AKOOL keeps the event instead of it being dropped.

Rejected bodies (400, 413) are counted (``statistics()``), not logged one by one: anyone can
POST to a public URL, and 20,000 junk bodies must not become 20,000 WARNING lines. The first
rejection is logged at once; later ones are summed up in at most one WARNING per
``rejection_log_interval`` (the count, the reasons, the last sender and why).

Replays and idempotency. The receiver verifies with ``check_replay=False`` and deduplicates on
the event identity instead: a byte-identical retry after our 500 must be handled again, and a
byte-identical duplicate after our 200 must get 200, not 400. The timestamp window still bounds
how late any body is accepted. Delivery to listeners is therefore at-least-once (a listener
that succeeded sees the event again if another one failed); make listeners idempotent.

Frameworks. ``_answer`` computes every answer from the method, the declared length and the raw
body chunks, with no HTTP framework in sight; ``handler`` adapts it to aiohttp, and
``WebhookASGIApp`` (below, from ``asgi()``) to ASGI servers, FastAPI and Starlette. One
receiver can serve both at once: the listeners and the duplicate filter are its own. The two
classes name each other in their signatures, so they share this module.

ASGI. ``WebhookASGIApp`` (from ``receiver.asgi()``) is written against the ASGI 3 specification
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

import asyncio
import collections
import contextlib
import inspect
import json
import logging
import math
import time
import urllib.parse
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Mapping, MutableMapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, NamedTuple, Self

import anyio
import attrs
from aiohttp import web

from akool_async._ambiguity import REFERENCE_PARAM
from akool_async._errors import ClientStateError, ValidationError, WebhookVerificationError
from akool_async._models import SwapStatus
from akool_async._webhooks import WebhookEvent, WebhookVerifier

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

__all__ = [
    "ASGIReceive",
    "ASGIScope",
    "ASGISend",
    "EventCallback",
    "WebhookASGIApp",
    "WebhookEventStream",
    "WebhookReceiver",
    "WebhookReceiverStatistics",
]

_log = logging.getLogger("akool_async.webhooks")

#: A listener: a plain function or a coroutine function taking the verified event.
EventCallback = Callable[[WebhookEvent], Awaitable[None] | None]

DEFAULT_PATH: Final = "/akool/webhook"
_Identity = tuple[str, int]


class _Answer(NamedTuple):
    """A framework-neutral HTTP answer: status, JSON body and extra headers."""

    status: int
    body: Mapping[str, str]
    headers: Mapping[str, str] = {}


@attrs.frozen(kw_only=True)
class WebhookReceiverStatistics:
    """A snapshot of a ``WebhookReceiver``'s counters.

    Attributes:
        accepted: Deliveries handed to every listener without error (200).
        duplicates: Deliveries of an event already handled (200, no listener called).
        failed: Deliveries on which a listener raised (500: AKOOL retries).
        unheard: Deliveries that found no listener (503).
        rejected: Bodies refused: failed verification (400) or too large (413).
        rejected_by_reason: ``rejected`` per reason: a ``WebhookVerificationError.reason``
            (``"signature"``, ``"json"``, ``"timestamp"``...) or ``"size"``.
    """

    accepted: int
    duplicates: int
    failed: int
    unheard: int
    rejected: int
    rejected_by_reason: Mapping[str, int]


class _Rejections:
    """Counts rejected deliveries and logs them at a bounded rate (event-loop only)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.total: collections.Counter[str] = collections.Counter()
        self._pending: collections.Counter[str] = collections.Counter()
        self._last = ""
        self._next_report = -math.inf
        self._timer: asyncio.TimerHandle | None = None

    def add(self, reason: str, remote: str | None, why: str) -> None:
        self.total[reason] += 1
        self._pending[reason] += 1
        self._last = f"from {remote}: {why}"
        now = time.monotonic()
        if now >= self._next_report:
            self.report()
        elif self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self._next_report - now, self.report)

    def report(self) -> None:
        """Log what was rejected since the last report (nothing if nothing was)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        count = sum(self._pending.values())
        if count == 1:
            _log.warning("rejected an AKOOL webhook %s", self._last)
        elif count > 1:
            reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(self._pending.items()))
            _log.warning(
                "rejected %d AKOOL webhooks since the last report (%s); the last %s",
                count,
                reasons,
                self._last,
            )
        self._pending.clear()
        if count:
            self._next_report = time.monotonic() + self.interval


class _Handled:
    """Bounded LRU of the statuses already handled per job id (event-loop only)."""

    def __init__(self, max_jobs: int) -> None:
        self._max_jobs = max_jobs
        self._statuses: collections.OrderedDict[str, set[int]] = collections.OrderedDict()

    def covers(self, event: WebhookEvent) -> bool:
        statuses = self._statuses.get(event.id)
        if statuses is None:
            return False
        self._statuses.move_to_end(event.id)
        if event.status in statuses:
            return True
        # A job never leaves a terminal status; anything non-terminal after it is stale.
        return not event.is_terminal and any(SwapStatus(s).is_terminal for s in statuses)

    def record(self, event: WebhookEvent) -> None:
        self._statuses.setdefault(event.id, set()).add(int(event.status))
        self._statuses.move_to_end(event.id)
        while len(self._statuses) > self._max_jobs:
            self._statuses.popitem(last=False)


class WebhookReceiver:
    """Receives AKOOL webhooks over HTTP and hands each new verified event to its listeners.

    Mount ``handler`` on your own aiohttp route, serve ``app()``, run it standalone with
    ``async with WebhookReceiver(...) as receiver`` (or ``await receiver.start(...)``), or
    serve ``asgi()`` from FastAPI, Starlette or any ASGI server.

    Args:
        verifier: Checks and decrypts the bodies.
        on_event: An optional first listener (same as ``subscribe(on_event)``).
        max_body_size: Bodies longer than this many bytes get 413 (AKOOL's are ~300 bytes).
        dedupe_size: How many job ids the duplicate filter remembers (least recent go first).
        rejection_log_interval: Seconds between WARNING lines about rejected bodies: the
            first rejection is logged at once, later ones as one summary per interval.
    """

    def __init__(
        self,
        verifier: WebhookVerifier,
        on_event: EventCallback | None = None,
        *,
        max_body_size: int = 64 * 1024,
        dedupe_size: int = 10_000,
        rejection_log_interval: float = 60.0,
    ) -> None:
        if not 0 <= rejection_log_interval < math.inf:
            raise ValidationError("must be a finite number >= 0", field="rejection_log_interval")
        if max_body_size < 1:
            raise ValidationError("must be at least 1", field="max_body_size")
        if dedupe_size < 1:
            raise ValidationError("must be at least 1", field="dedupe_size")
        self._verifier = verifier
        self._max_body_size = max_body_size
        self._listeners: list[EventCallback] = []
        self._handled = _Handled(dedupe_size)
        self._inflight: dict[_Identity, asyncio.Event] = {}
        self._streams: set[WebhookEventStream] = set()
        self._runner: web.AppRunner | None = None
        self._url: str | None = None
        self._rejections = _Rejections(rejection_log_interval)
        self._counts: collections.Counter[str] = collections.Counter()
        if on_event is not None:
            self.subscribe(on_event)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._verifier!r}, url={self._url!r})"

    # -- listeners -------------------------------------------------------------------------

    def subscribe(self, callback: EventCallback) -> Callable[[], None]:
        """Call ``callback`` with every new verified event until unsubscribed.

        The callback runs on the receiver's event loop, before AKOOL gets its answer: return
        (or finish awaiting) to acknowledge, raise to have AKOOL retry. Keep sync callbacks
        short; move blocking work to a thread (``anyio.to_thread.run_sync``).

        Returns:
            A function that unsubscribes ``callback`` (calling it again does nothing).
        """
        self._listeners.append(callback)

        def unsubscribe() -> None:
            if callback in self._listeners:
                self._listeners.remove(callback)

        return unsubscribe

    def events(self, *, max_buffer: int = 100) -> WebhookEventStream:
        """Return an async iterator of new verified events, to use in ``async with``.

        An event counts as handled (AKOOL gets 200) once it is in the buffer; a full buffer
        makes the delivery fail with 500, so AKOOL retries later. For processing that must
        finish before the 200, use ``subscribe`` with an async callback instead.
        """
        return WebhookEventStream(self, max_buffer)

    def statistics(self) -> WebhookReceiverStatistics:
        """A snapshot of the delivery counters (rejections included)."""
        rejected = self._rejections.total
        return WebhookReceiverStatistics(
            accepted=self._counts["accepted"],
            duplicates=self._counts["duplicates"],
            failed=self._counts["failed"],
            unheard=self._counts["unheard"],
            rejected=sum(rejected.values()),
            rejected_by_reason=dict(rejected),
        )

    # -- HTTP ------------------------------------------------------------------------------

    async def handler(self, request: web.Request) -> web.StreamResponse:
        """The aiohttp request handler: mount it on a POST route of your application."""
        answer = await self._answer(
            request.method,
            request.content_length,
            request.content.iter_any(),
            request.remote,
            reference=request.query.get(REFERENCE_PARAM),
        )
        return web.json_response(dict(answer.body), status=answer.status, headers=answer.headers)

    def app(self, path: str = DEFAULT_PATH) -> web.Application:
        """Return a new aiohttp application that serves ``handler`` on POST ``path``."""
        application = web.Application()
        application.router.add_post(path, self.handler)
        return application

    def asgi(self) -> WebhookASGIApp:
        """Return an ASGI application serving this receiver (FastAPI, Starlette, uvicorn...).

        Same answers, listeners and duplicate filter as ``handler``; see ``WebhookASGIApp``.
        """
        return WebhookASGIApp(self)

    async def _answer(
        self,
        method: str,
        content_length: int | None,
        chunks: AsyncIterable[bytes],
        remote: str | None,
        *,
        reference: str | None = None,
    ) -> _Answer:
        """Answer one request, whatever the HTTP framework: each adapter only translates.

        Args:
            method: The request method.
            content_length: The declared body length, if any.
            chunks: The raw body, as the framework reads it (never parsed before verifying).
            remote: The peer's address, for the log.
            reference: The request reference from the URL's query (``akool_ref``), if any:
                it binds an ambiguous submit to the job calling back.
        """
        if method != "POST":
            return _Answer(405, {"error": "method not allowed"}, {"Allow": "POST"})
        body = await self._read_body(content_length, chunks)
        if body is None:
            self._rejections.add("size", remote, f"body over {self._max_body_size} bytes")
            return _Answer(413, {"error": "body too large"})
        try:
            event = self._verifier.verify(body, check_replay=False)
        except WebhookVerificationError as exc:
            self._rejections.add(exc.reason, remote, str(exc))
            return _Answer(400, {"error": "verification failed"})
        if reference:
            event = attrs.evolve(event, reference=reference)
        status = await self._dispatch(event)
        if status == 200:
            return _Answer(200, {})
        return _Answer(status, {"error": "handler failed" if status == 500 else "no listener"})

    async def _read_body(
        self, content_length: int | None, chunks: AsyncIterable[bytes]
    ) -> bytes | None:
        if content_length is not None and content_length > self._max_body_size:
            return None
        body = bytearray()
        # Read ourselves: a chunked body has no Content-Length to check up front.
        async for chunk in chunks:
            body += chunk
            if len(body) > self._max_body_size:
                return None
        return bytes(body)

    async def _dispatch(self, event: WebhookEvent) -> int:
        identity = (event.id, int(event.status))
        # A concurrent delivery of the same event: wait for its outcome instead of racing it.
        while (pending := self._inflight.get(identity)) is not None:
            await pending.wait()
        if self._handled.covers(event):
            _log.debug("duplicate AKOOL webhook for %s status %d", event.id, event.status)
            self._counts["duplicates"] += 1
            return 200
        listeners = list(self._listeners)
        if not listeners:
            _log.warning("no listener for the AKOOL webhook of %s; answering 503", event.id)
            self._counts["unheard"] += 1
            return 503
        done = self._inflight[identity] = asyncio.Event()
        try:
            failed = False
            # Every listener runs even if one fails: a broken one must not starve the others.
            for callback in listeners:
                try:
                    result = callback(event)
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    failed = True
                    _log.exception("a listener failed on the AKOOL webhook of %s", event.id)
            if failed:
                self._counts["failed"] += 1
                return 500
            self._handled.record(event)
            self._counts["accepted"] += 1
            return 200
        finally:
            del self._inflight[identity]
            done.set()

    # -- standalone server -----------------------------------------------------------------

    async def start(
        self, host: str = "127.0.0.1", port: int = 0, *, path: str = DEFAULT_PATH
    ) -> str:
        """Serve ``app(path)`` on ``host:port`` (0 picks a free port) and return its URL.

        Raises:
            ClientStateError: It is already running.
        """
        if self._runner is not None:
            raise ClientStateError("the webhook receiver is already running")
        runner = web.AppRunner(self.app(path))
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except BaseException:
            await runner.cleanup()
            raise
        bound_host, bound_port = runner.addresses[0][:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        self._runner = runner
        self._url = f"http://{shown}:{bound_port}{path}"
        return self._url

    @property
    def url(self) -> str:
        """The standalone server's URL (``http://127.0.0.1:PORT/akool/webhook``).

        Raises:
            ClientStateError: It is not running.
        """
        if self._url is None:
            raise ClientStateError("the webhook receiver is not running; call start() first")
        return self._url

    async def aclose(self) -> None:
        """Stop the server (if any), end every ``events()`` iterator, log unreported rejections."""
        self._rejections.report()
        for stream in list(self._streams):
            stream._end()
        runner, self._runner, self._url = self._runner, None, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        if self._runner is None:
            await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class WebhookEventStream:
    """The async iterator returned by ``WebhookReceiver.events()``; use it in ``async with``."""

    def __init__(self, receiver: WebhookReceiver, max_buffer: int) -> None:
        if max_buffer < 1:
            raise ValidationError("must be at least 1", field="max_buffer")
        self._receiver = receiver
        self._send, self._receive = anyio.create_memory_object_stream[WebhookEvent](max_buffer)
        self._unsubscribe: Callable[[], None] | None = None
        self._entered = False

    def _put(self, event: WebhookEvent) -> None:
        try:
            self._send.send_nowait(event)
        except anyio.WouldBlock:
            raise RuntimeError("the events() buffer is full; the consumer is too slow") from None

    def _end(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._receiver._streams.discard(self)
        self._send.close()

    async def __aenter__(self) -> Self:
        if self._entered:
            raise ClientStateError("an events() stream can be entered only once")
        self._entered = True
        self._receiver._streams.add(self)
        self._unsubscribe = self._receiver.subscribe(self._put)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._end()
        self._receive.close()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> WebhookEvent:
        if not self._entered:
            raise ClientStateError("enter events() with 'async with' before iterating it")
        try:
            return await self._receive.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise StopAsyncIteration from None


# --------------------------------------------------------------------------------------------
# ASGI (see the module docstring)

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
