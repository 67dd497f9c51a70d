"""``Emulator``: a local, stateful AKOOL server (async context manager) and its thread runner."""

from __future__ import annotations

import threading
import types
import weakref
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractContextManager, ExitStack
from typing import Any, TypeVar, overload

import attrs
from aiohttp import web
from anyio.from_thread import BlockingPortal, start_blocking_portal

from ._app import build_app
from ._clock import Clock, ManualClock, RealClock
from ._config import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, EmulatorConfig
from ._server_state import ServerState
from ._state import Job
from ._webhooks import WebhookAttempt

__all__ = ["Emulator", "EmulatorThread"]

_T = TypeVar("_T")


class Emulator:
    """A faithful local AKOOL server on ``127.0.0.1`` (ephemeral port by default).

    Use it as ``async with Emulator(...) as emu:`` and point a client at ``emu.base_url``.
    The server's state is one ``ServerState`` the emulator owns and serves; ``stats``,
    ``faults``, ``clock`` and ``submit_listeners`` are that state's own objects.

    Args:
        api_key: The accepted ``x-api-key``; defaults to ``client_secret`` (the docs say the
            API key is the client secret).
        client_id: The getToken ``clientId``; also the webhook cipher's IV source.
        client_secret: The getToken ``clientSecret``; the webhook AES key (16, 24 or 32 bytes).
        config: Behaviour; ``EmulatorConfig()`` by default.
        port: TCP port; 0 picks a free one.
        clock: A clock to use instead of the one ``config.clock`` describes.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        config: EmulatorConfig | None = None,
        port: int = 0,
        clock: Clock | None = None,
    ) -> None:
        if len(client_secret.encode("utf-8")) not in (16, 24, 32):
            raise ValueError("client_secret must be 16, 24 or 32 bytes (it is the AES key)")
        if not client_id:
            raise ValueError("client_id must not be empty")
        self._initial = config or EmulatorConfig()
        if clock is None:
            c = self._initial
            clock = (
                ManualClock(start=c.start_time)
                if c.clock == "manual"
                else RealClock(speed=c.clock_speed, start=c.start_time)
            )
        self._state = state = ServerState(
            api_key=client_secret if api_key is None else api_key,
            client_id=client_id,
            client_secret=client_secret,
            config=self._initial,
            clock=clock,
        )
        self.api_key = state.api_key
        self.client_id = client_id
        self.client_secret = client_secret
        self.clock: Clock = clock
        self.stats = state.stats
        self.faults = state.faults
        self._port = port
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        #: Called with every job a submit creates (the process's ``--submit-log`` uses it).
        self.submit_listeners: list[Callable[[Job], None]] = state.submit_listeners

    def __repr__(self) -> str:
        return f"Emulator(base_url={self.base_url!r}, api_key='***', client_id={self.client_id!r})"

    # --- lifetime ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start serving; sets ``base_url``."""
        if self._runner is not None:
            raise RuntimeError("the emulator is already running")
        runner = web.AppRunner(build_app(self._state), access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", self._port).start()
            await self._state.start(background=not isinstance(self.clock, ManualClock))
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.base_url = self._state.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"

    async def aclose(self) -> None:
        """Stop webhook deliveries and the server. Idempotent."""
        await self._state.aclose()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # --- configuration -----------------------------------------------------------------------

    @property
    def config(self) -> EmulatorConfig:
        """The current configuration (frozen; change it with ``configure``)."""
        return self._state.config

    def configure(self, **changes: Any) -> EmulatorConfig:
        """Change options at runtime (``attrs.evolve``); returns the new configuration.

        ``clock``, ``clock_speed``, ``start_time`` and ``seed`` are read at construction
        only. Rate-limit buckets refill on every call. ``reset()`` restores the configuration
        the emulator was built with.
        """
        self._state.reconfigure(attrs.evolve(self._state.config, **changes))
        return self._state.config

    def ban(self, banned: bool = True) -> None:
        """Make every authenticated request (and getToken) answer 1200, or lift the ban."""
        self.configure(banned=banned)

    def expire_tokens(self) -> None:
        """Invalidate every getToken token issued so far (they then get 1101)."""
        self._state.tokens.expire_all()

    def issue_token(self) -> str:
        """Mint a valid bearer token without calling getToken."""
        return self._state.issue_token()

    @property
    def credit(self) -> float:
        """The credit balance."""
        return self._state.store.credit

    def set_credit(self, credit: float) -> None:
        """Set the credit balance (submits cost credit; below the cost they get 1006)."""
        self._state.store.credit = float(credit)

    # --- jobs --------------------------------------------------------------------------------

    @property
    def jobs(self) -> Mapping[str, Job]:
        """Every job created (deleted ones too, with ``deleted_at`` set), by ``_id``. Read-only."""
        return types.MappingProxyType(self._state.store.jobs)

    def status(self, job_id: str) -> int:
        """The current ``faceswap_status`` of the job with this ``_id`` (KeyError if unknown)."""
        return self._state.store.jobs[job_id].status_at(self.clock.now())

    def result_url(self, job: Job) -> str:
        """The job's result URL (the one V3 returns at submit and listbyids reports)."""
        return self._state.result_url(job)

    def submit(self, endpoint: str, body: Any, *, _inputs_ok: bool = True) -> Job:
        """Create a job exactly as the HTTP submit would, without HTTP (e.g. to seed state).

        Args:
            endpoint: ``"faceswap_plus"``, ``"faceswap_pro"``, ``"faceswap_image"`` or
                ``"faceswap_video"``.
            body: The JSON body (validated like the server does).

        Raises:
            Rejected: 1003 (invalid), 1007 (more than 8 faces) or 1006 (credit too low).
        """
        return self._state.submit(endpoint, body, inputs_ok=_inputs_ok)

    def force_status(self, job_id: str, status: int) -> None:
        """Pin a job's status from now on (1-4), whatever its plan; fires its webhook if due.

        Status 3 makes the result file available (and starts its TTL) now; 1 or 2 keeps the
        job unfinished forever, for timeout tests.
        """
        if status not in (1, 2, 3, 4):
            raise ValueError("status must be 1, 2, 3 or 4")
        job = self._state.store.jobs[job_id]
        job.forced_status, job.forced_at = status, self.clock.now()
        self._state.webhooks.schedule_forced(job, status)

    def fail_next_jobs(self, count: int = 1) -> None:
        """Make the next ``count`` jobs created end in status 4."""
        self._state.store.fail_next += count

    # --- time and webhooks -------------------------------------------------------------------

    async def advance(self, seconds: float = 0.0) -> None:
        """Move the clock forward and deliver, in time order, every webhook that falls due.

        Returns once each due delivery (and each retry falling inside the window) was
        attempted. ``await emu.advance()`` just flushes callbacks already due. With a manual
        clock this is the only way webhooks are sent.
        """
        if seconds < 0:
            raise ValueError("the clock cannot go backwards")
        scheduler = self._state.webhooks
        if isinstance(self.clock, ManualClock):
            target = self.clock.now() + seconds
            while (due := scheduler.next_due()) is not None and due <= target:
                self.clock.set(due)
                popped = scheduler.pop_due(due)
                if popped is not None:
                    await scheduler.fire(*popped)
            self.clock.set(target)
        else:
            self.clock.advance(seconds)
            while (popped := scheduler.pop_due(self.clock.now())) is not None:
                await scheduler.fire(*popped)

    @property
    def webhook_attempts(self) -> list[WebhookAttempt]:
        """Every webhook delivery attempt so far, in order (a live list)."""
        return self._state.webhooks.attempts

    async def wait_for_webhooks(
        self,
        count: int,
        *,
        timeout: float = 10.0,  # noqa: ASYNC109 - a built-in deadline is friendlier in tests
    ) -> list[WebhookAttempt]:
        """Wait (real clock) until ``count`` attempts are recorded; return all attempts.

        Raises:
            TimeoutError: fewer than ``count`` after ``timeout`` real seconds.
        """
        return await self._state.webhooks.wait_for(count, timeout)

    async def send_webhook(
        self,
        url: str,
        payload: Mapping[str, Any],
        *,
        timestamp: int | None = None,
        nonce: int | str | None = None,
    ) -> WebhookAttempt:
        """POST one callback with an arbitrary decrypted ``payload``, signed and encrypted
        with this emulator's credentials (contract section 5), e.g. to test a receiver
        against the 5.6 vector. No retry; the attempt is recorded and returned.
        """
        return await self._state.webhooks.deliver(url, payload, timestamp=timestamp, nonce=nonce)

    async def drain_webhooks(self) -> None:
        """Wait until no background delivery is in flight."""
        await self._state.webhooks.drain()

    # --- reset -------------------------------------------------------------------------------

    def reset(self) -> None:
        """Back to a fresh state: jobs, counters, queued faults, pending webhooks and
        recorded attempts are cleared, the credit and the initial configuration restored,
        and every random source reseeded. Tokens and the clock are kept.
        """
        self._state.reset(self._initial)


_register_thread_exit: Callable[..., None] | None = getattr(threading, "_register_atexit", None)


def _stop_if_alive(ref: weakref.ref[EmulatorThread]) -> None:
    runner = ref()
    if runner is not None:
        runner.stop()


class EmulatorThread:
    """An ``Emulator`` running on its own event loop in a background thread, for sync code.

    ``with EmulatorThread(config=...) as runner:`` then use ``runner.base_url``, read
    ``runner.emulator`` for introspection, and change it through ``runner.call(...)`` (which
    runs a function or coroutine function on the emulator's loop and returns its result).

    Args:
        **kwargs: Passed to ``Emulator``.
    """

    def __init__(self, **kwargs: Any) -> None:
        self._kwargs = kwargs
        self._stack: ExitStack | None = None
        self._portal: BlockingPortal | None = None
        self._emulator: Emulator | None = None

    def __enter__(self) -> EmulatorThread:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start the thread, its loop and the emulator."""
        if self._stack is not None:
            raise RuntimeError("already started")
        stack = ExitStack()
        try:
            portal = stack.enter_context(start_blocking_portal("asyncio"))
            emulator = portal.call(lambda: Emulator(**self._kwargs))
            cm: AbstractContextManager[Emulator] = portal.wrap_async_context_manager(emulator)
            stack.enter_context(cm)
        except BaseException:
            stack.close()
            raise
        self._stack, self._portal, self._emulator = stack, portal, emulator
        # The portal thread is not a daemon: a runner nobody stopped would make interpreter
        # exit wait for it forever. threading's exit hooks run before non-daemon threads are
        # joined (plain atexit runs after), so stop forgotten runners there.
        if _register_thread_exit is not None:
            _register_thread_exit(_stop_if_alive, weakref.ref(self))

    def stop(self) -> None:
        """Stop the emulator and the thread. Idempotent."""
        stack, self._stack = self._stack, None
        self._portal = self._emulator = None
        if stack is not None:
            stack.close()

    @property
    def emulator(self) -> Emulator:
        """The running emulator (read attributes freely; mutate through ``call``)."""
        if self._emulator is None:
            raise RuntimeError("the emulator thread is not running")
        return self._emulator

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return self.emulator.base_url

    @overload
    def call(self, func: Callable[..., Awaitable[_T]], *args: Any) -> _T: ...
    @overload
    def call(self, func: Callable[..., _T], *args: Any) -> _T: ...
    def call(self, func: Callable[..., Any], *args: Any) -> Any:
        """Run ``func(*args)`` (sync or async) on the emulator's loop and return its result."""
        if self._portal is None:
            raise RuntimeError("the emulator thread is not running")
        return self._portal.call(func, *args)

    def advance(self, seconds: float = 0.0) -> None:
        """``emulator.advance(seconds)`` from the calling thread."""
        self.call(self.emulator.advance, seconds)
