"""A hostile AKOOL host: no secret and no paid request ever leaves for another host, or prints.

Two local aiohttp origins on 127.0.0.1: ``api`` (the AKOOL host the client is configured
with, which misbehaves on purpose) and ``other`` (the host it points elsewhere, which answers
everything as AKOOL would, so that a followed redirect would silently "work"). Modes of
``api``:

* ``redirect``: every endpoint (getToken included, with ``token_refused``) answers 301, 302,
  303, 307 or 308 to ``other``, with the credentials it got echoed into the Location;
* ``loop``: every endpoint redirects to itself;
* ``echo``: every endpoint fails and echoes the API key, the bearer token and the request body
  (the client secret, for getToken) into its message, body or HTML page;
* ``hostile_id``: submits and listbyids answer a path-traversal ``_id``;
* ``working``: a well-behaved host whose result URLs redirect to ``other`` (a CDN).

Every request either origin gets is recorded. The sweeps collect DEBUG logs of every logger,
the str, repr, args, attributes and traceback of every exception, batch events and outcomes,
journal rows, report lines and the CLI's stdout and stderr (``--json``, ``-vv``), and check
that none holds the API key, the client secret or a token handed out.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sqlite3
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
import anyio
import anyio.from_thread
import attrs
import pytest
from aiohttp import web

from akool_async import (
    AkoolError,
    AmbiguousSubmitError,
    AsyncClient,
    BatchEvent,
    DownloadError,
    FaceImage,
    ParameterError,
    PlusSwap,
    RetryPolicy,
    SwapResult,
    SwapStatus,
    TransportError,
)
from akool_async._endpoints import (
    DELETE_RESULTS,
    DETECT_FACES,
    FACESWAP_IMAGE,
    FACESWAP_PLUS,
    FACESWAP_PRO,
    FACESWAP_VIDEO,
    GET_CREDIT,
    GET_TOKEN,
    LEGACY_DETECT,
    LIST_RESULTS,
)
from akool_async._jobs._download import save_result
from akool_async._wire import BODY_LIMIT
from akool_async.cli import _context as _cli_context
from akool_async.cli import main
from tests._support import FAST_POLL
from tests.test_secrets import describe
from tests.test_secrets import swept as sweep

pytestmark = pytest.mark.anyio

API_KEY = "HOSTILEapiKEY0123456789abcdefXYZ"
CLIENT_ID = "hostile-client-id-000000"
CLIENT_SECRET = "HOSTILEclientSECRET0123456789abc"
JOB_ID = "6593c94c0ef703e8c055e3c8"
EVIL_ID = "../../.akool-journal"
URL = "https://example.com/face.jpg"
FACE = [FaceImage(path=URL, opts="1,2:3,4:5,6:7,8")]
PAYLOAD = b"\x89PNG result bytes" * 64
FAST = RetryPolicy(max_attempts=3, initial_delay=0.001, max_delay=0.002, jitter=False)
STATUSES = (301, 302, 303, 307, 308)
#: ``token_refused``: client credentials, and the getToken endpoint misbehaves too.
AUTHS = ("api_key", "token", "token_refused")

Call = Callable[[AsyncClient], Awaitable[Any]]
READS: dict[str, Call] = {
    "quota": lambda c: c.get_credit(),
    "list_results": lambda c: c.get_results([JOB_ID]),
    "delete_results": lambda c: c.delete_results([JOB_ID]),
    "detect_faces": lambda c: c.detect_faces(url=URL),
    "detect_faces_legacy": lambda c: c.detect_faces_legacy(image_url=URL),
}
CREATES: dict[str, Call] = {
    "faceswap_plus": lambda c: c.faceswap_plus(source_url=URL, target_url=URL),
    "faceswap_pro": lambda c: c.faceswap_pro(source=FACE, target=FACE),
    "faceswap_image": lambda c: c.faceswap_image(source=FACE, target=FACE, modify_image=URL),
    "faceswap_video": lambda c: c.faceswap_video(
        source=FACE, target=FACE, modify_video="https://example.com/v.mp4"
    ),
}
CREATE_PATHS = {e.path for e in (FACESWAP_PLUS, FACESWAP_PRO, FACESWAP_IMAGE, FACESWAP_VIDEO)}


@attrs.frozen
class Seen:
    """One request an origin received."""

    origin: str
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def text(self) -> str:
        """Everything the request carried, as one text."""
        return f"{self.path} {self.headers} {self.body.decode('utf-8', 'replace')}"


class Hostile:
    """The two origins; ``mode``, ``status`` and ``token_refused`` set how ``api`` behaves."""

    def __init__(self) -> None:
        self.mode = "redirect"
        self.status = 302
        self.token_refused = False
        self.seen: list[Seen] = []
        self.tokens: list[str] = []
        self.api_url = self.other_url = ""
        self._runners: list[web.AppRunner] = []

    def requests(self, origin: str) -> list[Seen]:
        """What ``origin`` received, in order."""
        return [seen for seen in self.seen if seen.origin == origin]

    def secrets(self) -> set[str]:
        """The key, the client secret and every token handed out so far."""
        return {API_KEY, CLIENT_SECRET, *self.tokens}

    async def start(self) -> None:
        self.api_url = await self._serve(self._api)
        self.other_url = await self._serve(self._other)

    async def stop(self) -> None:
        for runner in self._runners:
            await runner.cleanup()

    async def _serve(self, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runners.append(runner)
        host, port = runner.addresses[0][:2]
        return f"http://{host}:{port}"

    async def _record(self, origin: str, request: web.Request) -> bytes:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.seen.append(Seen(origin, request.method, request.path_qs, headers, body))
        return body

    # -- the hostile API host --------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.StreamResponse:
        body = await self._record("api", request)
        path = request.path
        if path.startswith("/cdn/"):
            return self._cdn(path)
        if path == GET_TOKEN.path and not self.token_refused:
            return self._token()
        if self.mode == "redirect":
            echo = quote(_echo(request, body), safe="")
            sep = "&" if "?" in request.path_qs else "?"
            location = f"{self.other_url}{request.path_qs}{sep}leak={echo}"
            return web.Response(status=self.status, headers={"Location": location}, text=echo)
        if self.mode == "loop":
            return web.Response(status=self.status, headers={"Location": request.path_qs})
        if self.mode == "echo":
            return _echo_answer(request, body)
        if self.mode == "hostile_id":
            if path in CREATE_PATHS:
                return _ok({"_id": EVIL_ID, "job_id": "20240102082900592-5653"})
            if path == LIST_RESULTS.path:
                item = {"_id": EVIL_ID, "faceswap_status": 3, "url": f"{self.api_url}/cdn/x.png"}
                return _ok({"result": [item]})
        return self._working(path)

    def _token(self) -> web.Response:
        token = f"eyHOSTILE.token-{len(self.tokens):04d}.{'s' * 40}"
        self.tokens.append(token)
        return web.json_response({"code": 1000, "msg": "OK", "token": token})

    def _working(self, path: str) -> web.Response:
        if path in CREATE_PATHS:
            return _ok({"_id": JOB_ID, "job_id": "20240102082900592-5653"})
        if path == LIST_RESULTS.path:
            item = {"_id": JOB_ID, "faceswap_status": 3, "url": f"{self.api_url}/cdn/result.png"}
            return _ok({"result": [item]})
        return _ok({"credit": 100.0})

    def _cdn(self, path: str) -> web.Response:
        target = {
            "/cdn/result.png": f"{self.other_url}/file.png",
            "/cdn/ftp.png": "ftp://127.0.0.1/file.png",
            "/cdn/loop.png": "/cdn/loop.png",
        }.get(path, f"{self.other_url}/file.png")
        return web.Response(status=302, headers={"Location": target})

    # -- the other origin: AKOOL-like answers to anything ----------------------------------

    async def _other(self, request: web.Request) -> web.StreamResponse:
        await self._record("other", request)
        if request.path == "/file.png":
            return web.Response(body=PAYLOAD, content_type="image/png")
        if request.path == GET_TOKEN.path:
            return web.json_response({"code": 1000, "token": "other-origin-token-0000000"})
        return self._working(request.path)


def _ok(data: dict[str, Any]) -> web.Response:
    return web.json_response({"code": 1000, "msg": "OK", "data": data})


def _echo(request: web.Request, body: bytes) -> str:
    """What a careless or hostile server repeats back: the credentials it received."""
    key = request.headers.get("x-api-key")
    auth = request.headers.get("Authorization")
    return f"x-api-key={key} authorization={auth} body={body.decode('utf-8', 'replace')}"


def _echo_answer(request: web.Request, body: bytes) -> web.Response:
    """A failure of each kind the client decodes, each carrying the echo."""
    echo = _echo(request, body)
    path = request.path
    if path == GET_CREDIT.path:
        # An HTML page whose 2 KiB cap cuts through the secret: only its first part is kept.
        secret = request.headers.get("x-api-key") or request.headers.get("Authorization", "")
        page = "<pre>" + "p" * (BODY_LIMIT - 5 - 16) + secret + "</pre>" + echo
        return web.Response(status=500, text=page, content_type="text/html")
    if path == LIST_RESULTS.path:
        return web.json_response({"code": 1101, "msg": f"token expired: {echo}"})
    if path == DELETE_RESULTS.path:
        return web.json_response({"code": 1003, "msg": echo, "data": {"echo": [echo]}}, status=400)
    if path == DETECT_FACES.path:
        return web.json_response({"error_code": 1, "error_msg": echo})
    if path == LEGACY_DETECT.path:
        return web.json_response({"msg": echo}, status=502)
    if path == GET_TOKEN.path:
        return web.json_response({"code": 1102, "msg": f"bad credentials: {echo}"})
    return web.Response(text=f"not json: {echo}", content_type="text/plain")  # a create


@pytest.fixture
def hostile() -> Iterator[Hostile]:
    """Both origins, on their own event loop in a thread (the CLI runs its own loop)."""
    server = Hostile()
    with anyio.from_thread.start_blocking_portal() as portal:
        portal.call(server.start)
        try:
            yield server
        finally:
            portal.call(server.stop)


def client_for(server: Hostile, auth: str, **options: Any) -> AsyncClient:
    """A client of the hostile host with the API key, or with client credentials."""
    server.token_refused = auth == "token_refused"
    if auth == "api_key":
        return AsyncClient(api_key=API_KEY, base_url=server.api_url, retry=FAST, **options)
    return AsyncClient(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        base_url=server.api_url,
        retry=FAST,
        **options,
    )


def files_under(root: Path) -> list[str]:
    """The files under ``root`` (SQLite's -wal and -shm aside), relative, sorted."""
    paths = (path for path in root.rglob("*") if path.is_file())
    names = (str(path.relative_to(root)) for path in paths)
    return sorted(name for name in names if not name.endswith(("-wal", "-shm")))


def host(url: str) -> str:
    """``host:port`` of a URL."""
    return urlsplit(url).netloc


# --------------------------------------------------------------------------------------------
# Redirects


@pytest.mark.parametrize("auth", AUTHS)
@pytest.mark.parametrize("status", STATUSES)
async def test_no_endpoint_follows_a_redirect(hostile: Hostile, status: int, auth: str) -> None:
    """A cross-origin 3xx on any endpoint (getToken too) is refused; ``other`` gets nothing."""
    hostile.mode, hostile.status = "redirect", status
    other = host(hostile.other_url)
    outcomes = {}
    async with client_for(hostile, auth) as client:
        for name, call in {**READS, **CREATES}.items():
            with pytest.raises(TransportError) as info:
                await call(client)
            outcomes[name] = (type(info.value).__name__, info.value.status, other in str(info))
    sent = sum(seen.path in CREATE_PATHS for seen in hostile.requests("api"))
    created = "TransportError" if auth == "token_refused" else "AmbiguousSubmitError"
    expected = dict.fromkeys(READS, ("TransportError", status, True)) | dict.fromkeys(
        CREATES, (created, status, True)
    )
    assert (outcomes, sent, hostile.requests("other")) == (
        expected,
        0 if auth == "token_refused" else len(CREATES),
        [],
    )


async def test_a_redirect_is_named_and_a_create_is_not_retried(hostile: Hostile) -> None:
    """The error names the status and target host; a read is retried, a create sent once."""
    hostile.mode, hostile.status = "redirect", 307
    async with client_for(hostile, "api_key") as client:
        with pytest.raises(TransportError) as read:
            await client.get_credit()
        with pytest.raises(AmbiguousSubmitError) as create:
            await client.faceswap_plus(source_url=URL, target_url=URL)
    paths = [seen.path for seen in hostile.requests("api")]
    other = host(hostile.other_url)
    assert (str(read.value), paths, create.value.status) == (
        f"quota: HTTP 307 redirect to {other} refused (API calls never follow redirects)",
        [GET_CREDIT.path] * FAST.max_attempts + [FACESWAP_PLUS.path],
        307,
    )


@pytest.mark.parametrize("auth", AUTHS)
async def test_a_redirect_loop_is_one_answer_per_attempt(hostile: Hostile, auth: str) -> None:
    """A redirect to itself is not followed: one request per attempt, a create sent at most once."""
    hostile.mode = "loop"
    async with client_for(hostile, auth) as client:
        with pytest.raises(TransportError) as read:
            await client.get_credit()
        with pytest.raises(TransportError) as create:
            await client.faceswap_plus(source_url=URL, target_url=URL)
    paths = [seen.path for seen in hostile.requests("api") if seen.path != GET_TOKEN.path]
    if auth == "token_refused":
        expected_paths, created = [], TransportError
    else:
        expected_paths = [GET_CREDIT.path] * FAST.max_attempts + [FACESWAP_PLUS.path]
        created = AmbiguousSubmitError
    assert (
        paths,
        type(create.value),
        host(hostile.api_url) in str(read.value),
        hostile.requests("other"),
    ) == (expected_paths, created, True, [])


# --------------------------------------------------------------------------------------------
# Downloads


@pytest.mark.parametrize("auth", ["api_key", "token"])
async def test_downloads_follow_a_cdn_redirect_without_credentials(
    hostile: Hostile, auth: str, tmp_path: Path
) -> None:
    """A result behind a cross-origin redirect downloads; neither host sees a credential."""
    hostile.mode = "working"
    out = tmp_path / "out"
    client = client_for(hostile, auth)
    client.poll_config = FAST_POLL
    swap = PlusSwap(source_url=URL, target_url=URL)
    async with (
        client,
        client.swap_many([swap], journal=out / "journal.sqlite", download_dir=out) as batch,
    ):
        [outcome] = [outcome async for outcome in batch]
    downloads = [seen for seen in hostile.seen if seen.path in ("/cdn/result.png", "/file.png")]
    leaked = [
        seen.path
        for seen in downloads
        if {"x-api-key", "authorization"} & set(seen.headers)
        or any(secret in seen.text() for secret in hostile.secrets())
    ]
    assert (
        outcome.error,
        outcome.path.read_bytes() if outcome.path else None,
        [(seen.origin, seen.path) for seen in downloads],
        leaked,
        len(hostile.requests("other")),
    ) == (None, PAYLOAD, [("api", "/cdn/result.png"), ("other", "/file.png")], [], 1)


async def test_downloads_go_only_to_http_urls(hostile: Hostile, tmp_path: Path) -> None:
    """A non-http(s) result URL, a redirect to one, or a redirect loop is a DownloadError."""
    urls = {
        "file": "file:///etc/passwd",
        "ftp": f"{hostile.api_url}/cdn/ftp.png",
        "loop": f"{hostile.api_url}/cdn/loop.png",
    }
    reasons = {}
    async with client_for(hostile, "api_key") as client:
        for name, url in urls.items():
            result = SwapResult(id=JOB_ID, status=SwapStatus.SUCCESS, url=url)
            with pytest.raises(DownloadError) as info:
                await save_result(client._session(), result, tmp_path, retry=FAST)
            reasons[name] = info.value.reason
    assert (reasons, files_under(tmp_path), hostile.requests("other")) == (
        {
            "file": "not http(s)",
            "ftp": "redirected to a non-http(s) or invalid URL",
            "loop": "too many redirects",
        },
        [],
        [],
    )


# --------------------------------------------------------------------------------------------
# Hostile ids


async def test_a_path_traversal_id_never_names_a_file(hostile: Hostile, tmp_path: Path) -> None:
    """A ``_id`` like ``../../.akool-journal`` is a typed error; nothing is written outside."""
    hostile.mode = "hostile_id"
    out = tmp_path / "out"
    journal = out / ".akool-journal.sqlite"
    swap = PlusSwap(source_url=URL, target_url=URL)
    client = client_for(hostile, "api_key")
    client.poll_config = FAST_POLL
    async with client:
        with pytest.raises(AmbiguousSubmitError) as submitted:
            await client.faceswap_plus(swap)
        with pytest.raises(TransportError) as listed:
            await client.get_results([JOB_ID])
        async with client.swap_many([swap], journal=journal, download_dir=out) as batch:
            [outcome] = [outcome async for outcome in batch]
        evil = SwapResult(id=EVIL_ID, status=SwapStatus.SUCCESS, url=f"{hostile.api_url}/x.png")
        with pytest.raises(DownloadError) as saved:
            await save_result(client._session(), evil, out, retry=FAST)
    files = files_under(tmp_path)
    with contextlib.closing(sqlite3.connect(journal)) as db:
        integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
    why = "'_id' '../../.akool-journal' is not 24 hex digits"
    assert (
        why in str(submitted.value),
        why in str(listed.value),
        type(outcome.error),
        saved.value.reason,
        files,
        integrity,
    ) == (True, True, AmbiguousSubmitError, "invalid _id", ["out/.akool-journal.sqlite"], "ok")


# --------------------------------------------------------------------------------------------
# Secrets sweeps


@pytest.fixture
def swept(hostile: Hostile) -> Iterator[list[str]]:
    """Texts to check: DEBUG records of every logger, plus what the test adds; none may leak."""
    with sweep(hostile.secrets) as texts:
        yield texts


def journal_rows(path: Path) -> list[str]:
    """Every row of every table of a journal, as text."""
    if not path.exists():
        return []
    with contextlib.closing(sqlite3.connect(path)) as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return [repr(row) for table in tables for row in db.execute(f"SELECT * FROM {table}")]


async def collect_failures(texts: list[str], client: AsyncClient, out: Path) -> int:
    """Run every endpoint and a batch against the hostile host; collect what they show.

    Returns:
        How many of the endpoint calls failed.
    """
    failed = 0
    for call in {**READS, **CREATES}.values():
        try:
            await call(client)
        except AkoolError as exc:
            failed += 1
            texts.extend(describe(exc))

    def on_event(event: BatchEvent) -> None:
        texts.append(repr(event))

    journal = out / "journal.sqlite"
    try:
        swaps = [PlusSwap(source_url=URL, target_url=f"{URL}?{i}") for i in range(3)]
        async with client.swap_many(
            swaps, journal=journal, download_dir=out, on_event=on_event, job_timeout=2
        ) as batch:
            texts.extend([repr(outcome) async for outcome in batch])
            texts.append(repr(batch.statistics()))
    except AkoolError as exc:
        texts.extend(describe(exc))
    texts.extend(journal_rows(journal))
    texts.append(repr(client.statistics()))
    return failed


@pytest.mark.parametrize("mode", ["redirect", "loop", "echo", "hostile_id"])
@pytest.mark.parametrize("auth", AUTHS)
async def test_failure_paths_leak_no_secret(
    hostile: Hostile, swept: list[str], mode: str, auth: str, tmp_path: Path
) -> None:
    """Logs, errors, events, outcomes and journal rows of every failure path hold no secret."""
    hostile.mode = mode
    events: list[str] = []
    client = client_for(
        hostile, auth, on_event=lambda name, **data: events.append(f"{name} {data!r}")
    )
    client.poll_config = FAST_POLL
    async with client:
        failed = await collect_failures(swept, client, tmp_path / "out")
    swept.extend(events)
    got_credentials = [
        seen.path
        for seen in hostile.requests("api")
        if any(secret in seen.text() for secret in hostile.secrets())
    ]
    assert (len(got_credentials) > 0, failed > 0) == (True, True)  # leaks were possible


@pytest.mark.parametrize("mode", ["redirect", "loop", "echo", "hostile_id"])
@pytest.mark.parametrize("auth", AUTHS)
def test_cli_failure_paths_leak_no_secret(
    hostile: Hostile,
    swept: list[str],
    mode: str,
    auth: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The CLI's stdout and stderr (--json, -vv), report and journal hold no secret."""
    hostile.mode, hostile.token_refused = mode, auth == "token_refused"
    monkeypatch.setattr(_cli_context, "AsyncClient", functools.partial(AsyncClient, retry=FAST))
    for name in ("AKOOL_API_KEY", "AKOOL_CLIENT_ID", "AKOOL_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AKOOL_BASE_URL", hostile.api_url)
    if auth == "api_key":
        monkeypatch.setenv("AKOOL_API_KEY", API_KEY)
    else:
        monkeypatch.setenv("AKOOL_CLIENT_ID", CLIENT_ID)
        monkeypatch.setenv("AKOOL_CLIENT_SECRET", CLIENT_SECRET)
    manifest = tmp_path / "swaps.jsonl"
    lines = [{"kind": "plus", "source_url": URL, "target_url": f"{URL}?{i}"} for i in range(2)]
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    out = tmp_path / "out"
    runs = [
        ["-vv", "--json", "credit"],
        ["-vv", "credit"],
        ["-vv", "--json", "status", JOB_ID],
        ["-vv", "status", JOB_ID],
        ["-vv", "--json", "swap", "plus", "--source-url", URL, "--target-url", URL],
        ["-vv", "--json", "batch", str(manifest), "--out", str(out), "--job-timeout", "2"],
        ["-vv", "batch", str(manifest), "--out", str(out), "--job-timeout", "2"],
    ]
    codes = []
    for argv in runs:
        codes.append(main(argv))
        captured = capsys.readouterr()
        swept.extend([captured.out, captured.err])
    report = out / "report.jsonl"
    swept.append(report.read_text() if report.exists() else "")
    swept.extend(journal_rows(out / ".akool-journal.sqlite"))
    # That host answers quota well, once it has handed out a token.
    credit = [0, 0] if mode == "hostile_id" and auth != "token_refused" else [1, 1]
    assert (codes, len(hostile.requests("api")) > 0) == (credit + [1] * (len(runs) - 2), True)


async def test_a_caller_session_that_raises_for_status_still_gets_api_errors(
    hostile: Hostile,
) -> None:
    """``raise_for_status=True`` on a caller-owned session changes nothing: a 400 is an APIError."""
    hostile.mode = "echo"
    async with (
        aiohttp.ClientSession(raise_for_status=True) as session,
        AsyncClient(api_key=API_KEY, base_url=hostile.api_url, retry=FAST, session=session) as c,
    ):
        with pytest.raises(ParameterError) as info:
            await c.delete_results([JOB_ID])
    assert (info.value.code, info.value.status, API_KEY in str(info.value)) == (1003, 400, False)
