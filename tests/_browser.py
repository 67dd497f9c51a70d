"""Headless Chromium driven through the DevTools protocol, over aiohttp's websocket client.

``Chromium.find()`` locates Debian's ``chromium`` (or ``$CHROMIUM``); ``async with
Chromium(binary, tmp) as browser`` starts it on 127.0.0.1 with an OS-chosen DevTools port
(read from ``DevToolsActivePort`` in its user-data dir) and stops it on exit. ``browser.page()``
opens a tab that records console errors, uncaught exceptions and every network request.
Used by ``tests/test_report.py`` and ``benchmarks/bench_report.py``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import anyio

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--mute-audio",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)


class BrowserError(Exception):
    """Chromium did not start, or a DevTools command failed."""


class Page:
    """One tab, attached with a flat session; records what the page did."""

    def __init__(self, browser: Chromium, session: str, target: str) -> None:
        self.browser = browser
        self.session = session
        self.target = target
        self.console_errors: list[str] = []
        self.requests: list[str] = []
        self.failed: list[str] = []
        self.loaded = asyncio.Event()

    def on_event(self, method: str, params: dict[str, Any]) -> None:
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            args = params.get("args", [])
            self.console_errors.append(" ".join(str(a.get("value", a)) for a in args))
        elif method == "Runtime.exceptionThrown":
            self.console_errors.append(json.dumps(params.get("exceptionDetails", {}))[:500])
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            self.console_errors.append(f"{entry.get('source')}: {entry.get('text')}")
        elif method == "Network.requestWillBeSent":
            self.requests.append(params["request"]["url"])
        elif method == "Network.loadingFailed":
            self.failed.append(params.get("errorText", "?"))
        elif method == "Page.loadEventFired":
            self.loaded.set()

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        return await self.browser.send(method, session=self.session, **params)

    async def navigate(self, url: str) -> None:
        """Go to ``url`` and wait for its load event."""
        self.loaded.clear()
        await self.send("Page.navigate", url=url)
        await asyncio.wait_for(self.loaded.wait(), 60)

    async def evaluate(self, expression: str) -> Any:
        """The value of a JS expression (a promise is awaited)."""
        answer = await self.send(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in answer:
            raise BrowserError(f"{expression!r} threw: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    async def wait_for(self, expression: str, timeout_ms: int = 30_000) -> Any:
        """Wait (in the page, frame by frame) until ``expression`` is truthy; its value."""
        return await self.evaluate(
            "new Promise((ok, no) => { const t0 = performance.now(); const f = () => {"
            f" const v = ({expression}); if (v) ok(v);"
            f" else if (performance.now() - t0 > {timeout_ms}) no(new Error('timeout'));"
            " else requestAnimationFrame(f); }; f(); })"
        )

    async def key(self, key: str, code: str | None = None, key_code: int = 0) -> None:
        """Press and release one key."""
        for kind in ("keyDown", "keyUp"):
            await self.send(
                "Input.dispatchKeyEvent",
                type=kind,
                key=key,
                code=code or key,
                windowsVirtualKeyCode=key_code,
            )

    async def screenshot(self, path: Path) -> Path:
        """A PNG of the viewport."""
        answer = await self.send("Page.captureScreenshot", format="png")
        data = base64.b64decode(answer["data"])
        await anyio.Path(path.parent).mkdir(parents=True, exist_ok=True)
        await anyio.Path(path).write_bytes(data)
        return path


class Chromium:
    """A headless Chromium process and its DevTools browser connection."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.profile = workdir / "chromium-profile"
        self.process: asyncio.subprocess.Process | None = None
        self.http: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.ids = itertools.count(1)
        self.waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.pages: dict[str, Page] = {}
        self.reader: asyncio.Task[None] | None = None

    @staticmethod
    def find() -> str | None:
        """The Chromium binary: ``$CHROMIUM``, else ``chromium`` / ``chromium-browser``."""
        env = os.environ.get("CHROMIUM")
        if env:
            return env
        return shutil.which("chromium") or shutil.which("chromium-browser")

    async def __aenter__(self) -> Chromium:
        self.profile.mkdir(parents=True, exist_ok=True)
        (self.profile / "DevToolsActivePort").unlink(missing_ok=True)  # a stale one misleads
        self.process = await asyncio.create_subprocess_exec(
            self.binary,
            *FLAGS,
            f"--user-data-dir={self.profile}",
            "about:blank",
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            port, path = await self._devtools_port()
            self.http = aiohttp.ClientSession()
            self.ws = await self.http.ws_connect(
                f"ws://127.0.0.1:{port}{path}", max_msg_size=0, autoping=True
            )
            self.reader = asyncio.ensure_future(self._read())
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def _devtools_port(self) -> tuple[int, str]:
        """Chromium writes its port once listening; there is no event to await, so poll."""
        marker = self.profile / "DevToolsActivePort"
        assert self.process is not None
        for _ in range(600):
            if self.process.returncode is not None:
                raise BrowserError(f"chromium exited with {self.process.returncode}")
            with contextlib.suppress(OSError, ValueError):
                lines = marker.read_text().split()
                if len(lines) >= 2:
                    return int(lines[0]), lines[1]
            await asyncio.sleep(0.05)
        raise BrowserError("chromium did not open its DevTools port within 30 s")

    async def __aexit__(self, *exc: object) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.send("Browser.close"), 5)
            await self.ws.close()
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.reader
        if self.http is not None:
            await self.http.close()
        if self.process is not None:
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()

    async def _read(self) -> None:
        assert self.ws is not None
        async for message in self.ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(message.data)
            if "id" in data:
                future = self.waiting.pop(data["id"], None)
                if future is not None and not future.done():
                    future.set_result(data)
            elif "sessionId" in data and data["sessionId"] in self.pages:
                self.pages[data["sessionId"]].on_event(data["method"], data.get("params", {}))
        for future in self.waiting.values():
            if not future.done():
                future.set_exception(BrowserError("the DevTools connection closed"))

    async def send(self, method: str, *, session: str | None = None, **params: Any) -> Any:
        """One DevTools command; its ``result``."""
        assert self.ws is not None
        ident = next(self.ids)
        message: dict[str, Any] = {"id": ident, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiting[ident] = future
        await self.ws.send_str(json.dumps(message))
        answer = await asyncio.wait_for(future, 120)
        if "error" in answer:
            raise BrowserError(f"{method}: {answer['error']}")
        return answer.get("result", {})

    @contextlib.asynccontextmanager
    async def page(self, width: int = 1280, height: int = 800) -> AsyncIterator[Page]:
        """A new tab of ``width`` x ``height`` CSS pixels, recording its console and network."""
        target = (await self.send("Target.createTarget", url="about:blank"))["targetId"]
        session = (await self.send("Target.attachToTarget", targetId=target, flatten=True))[
            "sessionId"
        ]
        page = self.pages[session] = Page(self, session, target)
        try:
            for domain in ("Page", "Runtime", "Log", "Network"):
                await page.send(f"{domain}.enable")
            await page.send(
                "Emulation.setDeviceMetricsOverride",
                width=width,
                height=height,
                deviceScaleFactor=1,
                mobile=False,
            )
            yield page
        finally:
            with contextlib.suppress(BrowserError):
                await self.send("Target.closeTarget", targetId=target)
            self.pages.pop(session, None)
