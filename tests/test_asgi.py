"""The ASGI webhook receiver under a real uvicorn server: the aiohttp receiver's semantics.

Each served test starts uvicorn on 127.0.0.1 (a free port, bound by the test) with the
receiver mounted one of four ways (the bare ASGI app, a Starlette ``route()``, FastAPI
``routes=[route()]``, a FastAPI route calling ``endpoint()``), and the emulator delivers its
signed, encrypted callbacks to it through the real aiohttp stack.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aiohttp
import anyio
import pytest
import uvicorn
from fastapi import FastAPI, Request, Response
from starlette.applications import Starlette

from akool_async import (
    AsyncClient,
    Client,
    Outcome,
    PlusSwap,
    PollConfig,
    SwapStatus,
    ValidationError,
    WebhookASGIApp,
    WebhookEvent,
    WebhookReceiver,
    WebhookVerifier,
)
from akool_async._crypto import encrypt, sign
from akool_async.testing import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    Emulator,
    EmulatorConfig,
    EmulatorThread,
)
from tests._support import FAST_RETRY, swap

pytestmark = pytest.mark.anyio

PATH = "/akool/webhook"

#: Polling so rare (60 s safety net) that only callbacks can finish a job within a test.
POLL = PollConfig(
    image_first=0.1, image_max=0.3, retry_delay=0.02, miss_limit=2, safety_net_interval=60.0
)


def fastapi_endpoint(webhooks: WebhookASGIApp) -> FastAPI:
    """A FastAPI app whose own POST route hands the request to ``endpoint()``."""
    app = FastAPI()

    @app.post(PATH, include_in_schema=False)
    async def akool_webhook(request: Request) -> Response:
        return await webhooks.endpoint(request)

    return app


#: The four ways to serve a receiver; each builds an ASGI app from ``receiver.asgi()``.
MOUNTS: dict[str, Callable[[WebhookASGIApp], Any]] = {
    "asgi": lambda webhooks: webhooks,
    "starlette": lambda webhooks: Starlette(routes=[webhooks.route(PATH)]),
    "fastapi-routes": lambda webhooks: FastAPI(routes=[webhooks.route()]),
    "fastapi-endpoint": fastapi_endpoint,
}


@contextlib.asynccontextmanager
async def uvicorn_serving(app: Any) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1 (free port) until exit; yield its base URL."""
    # Bound and listening before uvicorn starts: requests wait in the backlog, no polling.
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, http="h11", ws="none", lifespan="on", log_config=None, access_log=False
    )
    server = uvicorn.Server(config)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve, [sock])
            try:
                yield f"http://127.0.0.1:{port}"
            finally:
                server.should_exit = True
    finally:
        sock.close()  # uvicorn closes it on shutdown; this covers a failed startup


def verifier_for(emu: Emulator) -> WebhookVerifier:
    """The emulator's key pair, on the emulator's clock."""
    return WebhookVerifier(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, now=emu.clock.now)


class Recorder:
    """A listener that records events and fails the first ``failures`` calls."""

    def __init__(self, failures: int = 0) -> None:
        self.calls: list[WebhookEvent] = []
        self.failures = failures

    async def __call__(self, event: WebhookEvent) -> None:
        await anyio.lowlevel.checkpoint()
        self.calls.append(event)
        if self.failures:
            self.failures -= 1
            raise RuntimeError("listener failed")


@pytest.fixture
def akool_emulator_config() -> EmulatorConfig:
    """Jobs of 10-35 ms, a 50 ms first retry of a failed callback, plenty of credit."""
    return EmulatorConfig(
        latency_scale=0.01,
        queue_seconds=(0.0, 0.5),
        webhook_retry_delays=(0.05, 0.1, 0.2),
        credit=100_000,
    )


@pytest.fixture
def client_poll_config() -> PollConfig:
    """The client polls only as a 60 s safety net."""
    return POLL


@pytest.fixture(params=list(MOUNTS))
def mount(request: pytest.FixtureRequest) -> str:
    """How the receiver is served."""
    return str(request.param)


@pytest.fixture
def receiver(emu: Emulator) -> WebhookReceiver:
    """A receiver verifying with the emulator's key pair (not started: uvicorn serves it)."""
    return WebhookReceiver(verifier_for(emu))


@pytest.fixture
async def url(receiver: WebhookReceiver, mount: str) -> AsyncIterator[str]:
    """The receiver's webhook URL under uvicorn, mounted as ``mount`` says."""
    async with uvicorn_serving(MOUNTS[mount](receiver.asgi())) as base:
        yield base + PATH


def payload(job_id: str = "6593c94c0ef703e8c055e3c8", status: int = 3) -> dict[str, Any]:
    """A decrypted callback payload."""
    return {"_id": job_id, "status": status, "type": "faceswap", "url": "https://x/result.jpg"}


def signed_body(data: dict[str, Any], *, timestamp: int, nonce: str) -> dict[str, Any]:
    """A body as AKOOL (and the emulator) sends it: encrypted with the key pair, then signed."""
    plaintext = json.dumps(data, separators=(",", ":")).encode()
    data_encrypt = encrypt(plaintext, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)
    return {
        "signature": sign(DEFAULT_CLIENT_ID, timestamp, nonce, data_encrypt),
        "dataEncrypt": data_encrypt,
        "timestamp": timestamp,
        "nonce": nonce,
    }


async def post(
    http: aiohttp.ClientSession, url: str, body: dict[str, Any] | bytes, method: str = "POST"
) -> tuple[int, Any]:
    """Send ``body`` (a dict as JSON, bytes as they are); return (status, JSON answer)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    async with http.request(method, url, data=data, headers=headers) as response:
        return response.status, await response.json(content_type=None)


Row = tuple[int, str, SwapStatus | None, str | None]


def rows(outcomes: list[Outcome[PlusSwap]]) -> list[Row]:
    """(index, target, status, result url) of each outcome, by index."""
    return sorted(
        (
            o.index,
            o.request.target_url,
            o.result.status if o.result else None,
            o.result.url if o.result else None,
        )
        for o in outcomes
    )


def truth(emu: Emulator, n: int) -> list[Row]:
    """What each of ``swap(0..n-1)`` really became, according to the emulator."""
    jobs = {job.target_urls[0]: job for job in emu.jobs.values()}
    return [
        (i, swap(i).target_url, SwapStatus.SUCCESS, emu.result_url(jobs[swap(i).target_url]))
        for i in range(n)
    ]


async def test_callbacks_finish_a_swap_many_batch(
    client: AsyncClient, emu: Emulator, receiver: WebhookReceiver, url: str
) -> None:
    """A 60-job batch with webhooks on ends from signed, encrypted callbacks alone (no polls)."""
    n = 60
    detach = client.use_webhooks(receiver, url=url)
    async with client.swap_many((swap(i) for i in range(n)), concurrency=16) as batch:
        outcomes = [outcome async for outcome in batch]
    detach()
    attempts = await emu.wait_for_webhooks(n)

    assert rows(outcomes) == truth(emu, n)
    assert Counter((a.outcome, a.http_status) for a in attempts) == {("delivered", 200): n}
    hooks = [(job.webhook_url or "").partition("?akool_ref=") for job in emu.jobs.values()]
    assert {(base, sep) for base, sep, _ in hooks} == {(url, "?akool_ref=")}
    assert len({ref for _, _, ref in hooks}) == n  # one reference per submit
    assert emu.stats.requests["list_results"] == 0


async def test_the_webhook_reference_reaches_the_event(
    emu: Emulator, receiver: WebhookReceiver, url: str
) -> None:
    """The submit reference in the webhook URL's query is on the event, whatever the mounting."""
    recorder = Recorder()
    receiver.subscribe(recorder)
    first = await emu.send_webhook(f"{url}?tenant=7&akool_ref=4f2a9c", payload())
    plain = await emu.send_webhook(url, payload("6593c94c0ef703e8c055e3ca"))

    assert (first.http_status, plain.http_status) == (200, 200)
    assert [e.reference for e in recorder.calls] == ["4f2a9c", None]


async def test_answers_match_the_aiohttp_receiver(
    emu: Emulator, receiver: WebhookReceiver, url: str, mount: str, http: aiohttp.ClientSession
) -> None:
    """200 once handled, 200 without a call for a duplicate, 400, 413 and 405, as aiohttp does."""
    recorder = Recorder()
    receiver.subscribe(recorder)
    first = await emu.send_webhook(url, payload())
    duplicate = await emu.send_webhook(url, payload())
    bad = await post(http, url, {**first.body, "signature": "0" * 40})
    too_large = await post(http, url, b" " * (64 * 1024 + 1))
    get = await post(http, url, b"", method="GET")
    # FastAPI answers a method its own route does not declare before the receiver sees it.
    not_post = (
        (405, {"detail": "Method Not Allowed"})
        if mount == "fastapi-endpoint"
        else (
            405,
            {"error": "method not allowed"},
        )
    )

    assert (first.http_status, duplicate.http_status) == (200, 200)
    assert (bad, too_large, get) == (
        (400, {"error": "verification failed"}),
        (413, {"error": "body too large"}),
        not_post,
    )
    assert [(e.id, e.status) for e in recorder.calls] == [(payload()["_id"], SwapStatus.SUCCESS)]


async def test_tampered_bodies_get_400(
    emu: Emulator, receiver: WebhookReceiver, url: str, http: aiohttp.ClientSession
) -> None:
    """Every alteration of a genuine emulator body is refused with 400 and reaches nobody."""
    recorder = Recorder()
    receiver.subscribe(recorder)
    job_id = "6593c94c0ef703e8c055e3c9"
    genuine = signed_body(payload(job_id), timestamp=int(emu.clock.now() * 1000), nonce="4242")
    data = genuine["dataEncrypt"]
    flipped = data[:10] + ("A" if data[10] != "A" else "B") + data[11:]
    raw = json.dumps(genuine)
    tampered: list[dict[str, Any] | bytes] = [
        {**genuine, "dataEncrypt": flipped},  # ciphertext changed, old signature
        {**genuine, "nonce": "4243"},
        {**genuine, "timestamp": genuine["timestamp"] + 1},
        {key: value for key, value in genuine.items() if key != "signature"},
        # A second "nonce" that a lax JSON parser would let win: ambiguous JSON is refused.
        (raw[:-1] + ', "nonce": "1"}').encode(),
        raw.encode("utf-16"),
    ]
    answers = [await post(http, url, body) for body in tampered]
    real = await post(http, url, genuine)

    assert answers == [(400, {"error": "verification failed"})] * len(tampered)
    assert (real, [e.id for e in recorder.calls]) == ((200, {}), [job_id])


async def test_replayed_bodies_get_400_once_stale(mount: str, http: aiohttp.ClientSession) -> None:
    """A captured body replayed in the window is acknowledged only; past the window, 400."""
    async with Emulator(config=EmulatorConfig(clock="manual")) as emu:
        recorder = Recorder()
        receiver = WebhookReceiver(verifier_for(emu), on_event=recorder)
        async with uvicorn_serving(MOUNTS[mount](receiver.asgi())) as base:
            url = base + PATH
            delivered = await emu.send_webhook(url, payload("a" * 24))
            in_window = await post(http, url, dict(delivered.body))
            # Intercepted on its way and held back: never delivered, so never handled.
            held = signed_body(payload("b" * 24), timestamp=int(emu.clock.now() * 1000), nonce="7")
            await emu.advance(301)  # past the verifier's 300 s tolerance
            replays = [await post(http, url, body) for body in (dict(delivered.body), held)]

    assert (delivered.http_status, in_window) == (200, (200, {}))
    assert replays == [(400, {"error": "verification failed"})] * 2
    assert [e.id for e in recorder.calls] == ["a" * 24]


async def test_handler_exception_gives_500_and_the_retry_succeeds(
    client: AsyncClient, emu: Emulator, receiver: WebhookReceiver, url: str
) -> None:
    """A listener raising on each job's first callback gets 500; the emulator retries, 200."""
    n = 10
    failed_once: set[str] = set()

    def flaky(event: WebhookEvent) -> None:
        if event.id not in failed_once:
            failed_once.add(event.id)
            raise RuntimeError("the database is down")

    handled = Recorder()
    receiver.subscribe(flaky)
    receiver.subscribe(handled)
    client.use_webhooks(receiver, url=url)
    async with client.swap_many(swap(i) for i in range(n)) as batch:
        outcomes = [outcome async for outcome in batch]
    attempts = await emu.wait_for_webhooks(2 * n)

    assert rows(outcomes) == truth(emu, n)
    assert Counter((a.attempt, a.http_status) for a in attempts) == {(1, 500): n, (2, 200): n}
    # At-least-once: the other listeners saw both deliveries, the retry was not a duplicate.
    assert Counter(e.id for e in handled.calls) == dict.fromkeys(failed_once, 2)


@pytest.mark.parametrize("mount", ["asgi", "fastapi-endpoint"])
async def test_manual_clock_retry_after_500_is_handled_once(mount: str) -> None:
    """With a manual clock the first callback gets 500 and the retry a second later gets 200."""
    async with Emulator(config=EmulatorConfig(clock="manual")) as emu:
        recorder = Recorder(failures=1)
        receiver = WebhookReceiver(verifier_for(emu), on_event=recorder)
        async with uvicorn_serving(MOUNTS[mount](receiver.asgi())) as base:
            job = emu.submit(
                "faceswap_plus",
                {
                    "source_url": "https://example.com/face.jpg",
                    "target_url": "https://example.com/target.jpg",
                    "single_face_mode": True,
                    "webhookUrl": base + PATH,
                },
            )
            await emu.advance(3600)
            attempts = [(a.attempt, a.http_status) for a in emu.webhook_attempts]

    assert attempts == [(1, 500), (2, 200)]
    assert [(e.id, e.status) for e in recorder.calls] == [(job.id, SwapStatus.SUCCESS)] * 2


async def test_200_concurrent_duplicates_call_the_handler_once(
    emu: Emulator, receiver: WebhookReceiver, mount: str
) -> None:
    """200 deliveries of one event in flight at once: one handler call, 200 answers of 200."""
    n = 200
    arrived = 0
    all_in = anyio.Event()
    calls: list[WebhookEvent] = []
    served = MOUNTS[mount](receiver.asgi())

    async def counting(scope: Any, receive: Any, send: Any) -> None:
        # Counts the requests that reached the app; the handler holds them all in flight.
        nonlocal arrived
        if scope["type"] == "http":
            arrived += 1
            if arrived == n:
                all_in.set()
        await served(scope, receive, send)

    async def handler(event: WebhookEvent) -> None:
        calls.append(event)
        await all_in.wait()

    receiver.subscribe(handler)
    now = int(emu.clock.now() * 1000)
    # Half are byte-identical copies, half re-signed (fresh nonce), as AKOOL may redeliver.
    copy = signed_body(payload(), timestamp=now, nonce="1000")
    bodies = [copy] * (n // 2) + [
        signed_body(payload(), timestamp=now, nonce=str(2000 + i)) for i in range(n // 2)
    ]
    statuses: list[int] = []
    async with (
        uvicorn_serving(counting) as base,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http,
        anyio.create_task_group() as tg,
    ):

        async def deliver(body: dict[str, Any]) -> None:
            statuses.append((await post(http, base + PATH, body))[0])

        for body in bodies:
            tg.start_soon(deliver, body)

    assert (statuses, arrived) == ([200] * n, n)
    assert [(e.id, e.status) for e in calls] == [(payload()["_id"], SwapStatus.SUCCESS)]


@contextlib.contextmanager
def uvicorn_thread(app: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn on its own thread and event loop; yield its base URL."""
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, loop="asyncio", http="h11", ws="none", log_config=None, access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join()
        sock.close()


@pytest.mark.parametrize("mount", ["fastapi-endpoint"])
def test_blocking_client_finishes_jobs_from_a_uvicorn_thread(
    akool_emulator_thread: EmulatorThread, mount: str
) -> None:
    """The blocking Client's batch ends from callbacks served on uvicorn's own loop thread."""
    emu = akool_emulator_thread.emulator
    receiver = WebhookReceiver(verifier_for(emu))
    with (
        uvicorn_thread(MOUNTS[mount](receiver.asgi())) as base,
        Client(api_key=emu.api_key, base_url=emu.base_url, retry=FAST_RETRY) as client,
    ):
        client.poll_config = POLL
        detach = client.use_webhooks(receiver, url=base + PATH)
        n = 20
        with client.swap_many(swap(i) for i in range(n)) as batch:
            outcomes = list(batch)
        detach()

    assert rows(outcomes) == truth(emu, n)
    assert emu.stats.requests["list_results"] == 0


@pytest.mark.parametrize("mount", ["asgi", "fastapi-endpoint"])
async def test_one_receiver_behind_aiohttp_and_asgi_handles_an_event_once(
    emu: Emulator, receiver: WebhookReceiver, url: str
) -> None:
    """The same receiver served by aiohttp and uvicorn shares its listeners and duplicates."""
    recorder = Recorder()
    receiver.subscribe(recorder)
    async with receiver:
        over_aiohttp = await emu.send_webhook(receiver.url, payload())
    over_asgi = await emu.send_webhook(url, payload())

    assert (over_aiohttp.http_status, over_asgi.http_status, len(recorder.calls)) == (200, 200, 1)


@pytest.mark.parametrize("mount", ["asgi", "fastapi-endpoint"])
async def test_no_listener_gives_503(emu: Emulator, receiver: WebhookReceiver, url: str) -> None:
    """With nobody subscribed the callback is not acknowledged, so AKOOL keeps it."""
    attempt = await emu.send_webhook(url, payload())

    assert attempt.http_status == 503


@pytest.mark.parametrize("mount", ["asgi", "fastapi-endpoint"])
async def test_chunked_oversized_body_gets_413(
    receiver: WebhookReceiver, url: str, http: aiohttp.ClientSession
) -> None:
    """A chunked body (no Content-Length) is cut off at max_body_size while reading."""
    recorder = Recorder()
    receiver.subscribe(recorder)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b" " * 1024

    async with http.post(url, data=chunks()) as response:
        status = response.status

    assert (status, recorder.calls) == (413, [])


# -- the ASGI protocol, without a server ---------------------------------------------------


def asgi_app() -> tuple[WebhookASGIApp, Recorder]:
    """An app over a receiver with a recording listener."""
    verifier = WebhookVerifier(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)
    recorder = Recorder()
    return WebhookReceiver(verifier, on_event=recorder).asgi(), recorder


async def call(
    app: WebhookASGIApp, scope: dict[str, Any], messages: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Run ``app`` on ``scope``, feeding ``messages``; return what it sent."""
    inbox = iter(messages)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return next(inbox)

    async def send(message: Any) -> None:
        sent.append(dict(message))

    await app(scope, receive, send)
    return sent


def http_scope(**changes: Any) -> dict[str, Any]:
    """A POST scope as an ASGI server builds it."""
    scope: dict[str, Any] = {
        "type": "http",
        "method": "POST",
        "path": PATH,
        "headers": [],
        "client": None,
    }
    return scope | changes


async def test_asgi_lifespan_is_acknowledged() -> None:
    """Served on its own, startup and shutdown complete at once."""
    app, _ = asgi_app()
    sent = await call(
        app, {"type": "lifespan"}, [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    )

    assert sent == [{"type": "lifespan.startup.complete"}, {"type": "lifespan.shutdown.complete"}]


async def test_asgi_refuses_websockets_and_unknown_scopes() -> None:
    """A websocket is closed unaccepted; an unknown scope type is an error (ASGI spec)."""
    app, _ = asgi_app()
    sent = await call(app, {"type": "websocket"}, [{"type": "websocket.connect"}])
    with pytest.raises(ValidationError) as info:
        await call(app, {"type": "telepathy"}, [])

    assert sent == [{"type": "websocket.close", "code": 1003}]
    assert (info.value.field, str(info.value)) == (
        "scope",
        "scope: unsupported ASGI scope type 'telepathy'",
    )


async def test_asgi_disconnect_before_the_body_ends_answers_nothing() -> None:
    """A client gone mid-body gets no answer and reaches no listener."""
    app, recorder = asgi_app()
    messages = [{"type": "http.request", "body": b"{", "more_body": True}]
    sent = await call(app, http_scope(), [*messages, {"type": "http.disconnect"}])

    assert (sent, recorder.calls) == ([], [])


async def test_asgi_declared_length_over_the_limit_is_not_read() -> None:
    """A Content-Length past max_body_size is refused before any body message is read."""
    app, _ = asgi_app()
    scope = http_scope(headers=[(b"content-length", b"70000")])
    sent = await call(app, scope, [])

    assert [m.get("status") for m in sent] == [413, None]
    assert json.loads(sent[1]["body"]) == {"error": "body too large"}


async def test_asgi_bad_content_length_is_ignored_and_the_body_read() -> None:
    """An unparsable Content-Length falls back to counting the bytes read."""
    app, _ = asgi_app()
    scope = http_scope(headers=[(b"Content-Length", b"lots")])
    sent = await call(app, scope, [{"type": "http.request", "body": b"[]"}])

    assert (sent[0]["status"], dict(sent[0]["headers"])[b"content-type"]) == (
        400,
        b"application/json",
    )


async def test_asgi_405_names_the_allowed_method() -> None:
    """Anything but POST gets 405 with ``Allow: POST``."""
    app, _ = asgi_app()
    sent = await call(app, http_scope(method="GET"), [{"type": "http.request"}])

    assert (sent[0]["status"], dict(sent[0]["headers"])[b"allow"]) == (405, b"POST")


def test_asgi_app_is_the_receivers() -> None:
    """``asgi()`` wraps the very receiver (its repr redacts the secret)."""
    receiver = WebhookReceiver(WebhookVerifier(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET))
    app = receiver.asgi()

    assert (app.receiver, DEFAULT_CLIENT_SECRET in repr(app)) == (receiver, False)


async def test_endpoint_disconnect_before_the_body_ends_reaches_no_listener() -> None:
    """``endpoint()`` on a request whose client left mid-body calls nobody."""
    app, recorder = asgi_app()
    messages = iter([{"type": "http.request", "body": b"{", "more_body": True}])

    async def receive() -> dict[str, Any]:
        return next(messages, {"type": "http.disconnect"})

    response = await app.endpoint(Request(http_scope(), receive))

    assert (response.status_code, recorder.calls) == (400, [])


def test_core_imports_no_framework_and_serves_without_starlette() -> None:
    """Without Starlette the ASGI app still answers; only route() and endpoint() need it."""
    script = """
import asyncio, json, sys
sys.modules["starlette"] = None  # as if it were not installed
import akool_async
from akool_async.testing import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET

verifier = akool_async.WebhookVerifier(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)
app = akool_async.WebhookReceiver(verifier, on_event=print).asgi()
sent = []

async def receive():
    return {"type": "http.request", "body": b"{}"}

async def send(message):
    sent.append(message)

asyncio.run(app({"type": "http", "method": "POST", "headers": []}, receive, send))
try:
    app.route()
except ImportError as exc:
    hint = str(exc)
loaded = sorted(m for m in ("fastapi", "starlette", "uvicorn") if sys.modules.get(m))
print(json.dumps([sent[0]["status"], hint, loaded]))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [
        400,
        "route() needs Starlette: pip install '.[asgi]' in an akool-async checkout, or pip install "
        "starlette",
        [],
    ]
