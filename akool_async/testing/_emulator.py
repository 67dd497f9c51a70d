"""``Emulator``: a local, stateful AKOOL server (async context manager) and its thread runner."""

from __future__ import annotations

import random
import threading
import types
import weakref
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractContextManager, ExitStack
from typing import Any, TypeVar, overload

import aiohttp
import attrs
from aiohttp import web
from anyio.from_thread import BlockingPortal, start_blocking_portal

from ._app import build_app
from ._clock import Clock, ManualClock, RealClock
from ._config import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, EmulatorConfig
from ._faults import FaultInjector, RateLimiter
from ._state import EmulatorStats, Job, JobStore, TokenStore
from ._validate import Rejected, validate_submit
from ._webhooks import WebhookAttempt, WebhookScheduler

__all__ = ["Emulator", "EmulatorThread"]

_T = TypeVar("_T")
_SUBMIT_ENDPOINTS = frozenset({"faceswap_plus", "faceswap_pro", "faceswap_image", "faceswap_video"})


class Emulator:
    """A faithful local AKOOL server on ``127.0.0.1`` (ephemeral port by default).

    Use it as ``async with Emulator(...) as emu:`` and point a client at ``emu.base_url``.

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
        self.api_key = client_secret if api_key is None else api_key
        self.client_id = client_id
        self.client_secret = client_secret
        self._initial = config or EmulatorConfig()
        self._config = self._initial
        self._port = port
        if clock is None:
            c = self._initial
            clock = (
                ManualClock(start=c.start_time)
                if c.clock == "manual"
                else RealClock(speed=c.clock_speed, start=c.start_time)
            )
        self.clock: Clock = clock
        self.stats = EmulatorStats()
        self._store = JobStore(self._config, clock, self.stats)
        self._tokens = TokenStore()
        self.faults = FaultInjector(self._config)
        self._limiter = RateLimiter()
        self._detect_rng = random.Random(f"detect-{self._config.seed}")
        self._md5_cache: dict[tuple[str, int], str] = {}
        self._webhooks = WebhookScheduler(
            clock=clock,
            config=lambda: self._config,
            jobs=self._store.live,
            result_url=self.result_url,
            faults=self.faults,
            stats=self.stats,
            client_id=client_id,
            client_secret=client_secret,
        )
        self._runner: web.AppRunner | None = None
        self._fetcher: aiohttp.ClientSession | None = None
        self.base_url = ""
        #: Called with every job a submit creates (the process's ``--submit-log`` uses it).
        self.submit_listeners: list[Callable[[Job], None]] = []

    def __repr__(self) -> str:
        return f"Emulator(base_url={self.base_url!r}, api_key='***', client_id={self.client_id!r})"

    # --- lifetime ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start serving; sets ``base_url``."""
        if self._runner is not None:
            raise RuntimeError("the emulator is already running")
        runner = web.AppRunner(build_app(self), access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", self._port).start()
            await self._webhooks.start(background=not isinstance(self.clock, ManualClock))
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"

    async def aclose(self) -> None:
        """Stop webhook deliveries and the server. Idempotent."""
        await self._webhooks.aclose()
        if self._fetcher is not None:
            fetcher, self._fetcher = self._fetcher, None
            await fetcher.close()
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
        return self._config

    def configure(self, **changes: Any) -> EmulatorConfig:
        """Change options at runtime (``attrs.evolve``); returns the new configuration.

        ``clock``, ``clock_speed``, ``start_time`` and ``seed`` are read at construction
        only. Rate-limit buckets refill on every call. ``reset()`` restores the configuration
        the emulator was built with.
        """
        self._config = attrs.evolve(self._config, **changes)
        self._store.config = self._config
        self.faults.config = self._config
        self._limiter.reset()
        return self._config

    def ban(self, banned: bool = True) -> None:
        """Make every authenticated request (and getToken) answer 1200, or lift the ban."""
        self.configure(banned=banned)

    def expire_tokens(self) -> None:
        """Invalidate every getToken token issued so far (they then get 1101)."""
        self._tokens.expire_all()

    def issue_token(self) -> str:
        """Mint a valid bearer token without calling getToken."""
        return self._tokens.issue(self.clock.now(), self._config.token_ttl)

    @property
    def credit(self) -> float:
        """The credit balance."""
        return self._store.credit

    def set_credit(self, credit: float) -> None:
        """Set the credit balance (submits cost credit; below the cost they get 1006)."""
        self._store.credit = float(credit)

    # --- jobs --------------------------------------------------------------------------------

    @property
    def jobs(self) -> Mapping[str, Job]:
        """Every job created (deleted ones too, with ``deleted_at`` set), by ``_id``. Read-only."""
        return types.MappingProxyType(self._store.jobs)

    def status(self, job_id: str) -> int:
        """The current ``faceswap_status`` of the job with this ``_id`` (KeyError if unknown)."""
        return self._store.jobs[job_id].status_at(self.clock.now())

    def result_url(self, job: Job) -> str:
        """The job's result URL (the one V3 returns at submit and listbyids reports)."""
        return f"{self.base_url}/results/{job.file_name}"

    def submit(self, endpoint: str, body: Any, *, _inputs_ok: bool = True) -> Job:
        """Create a job exactly as the HTTP submit would, without HTTP (e.g. to seed state).

        Args:
            endpoint: ``"faceswap_plus"``, ``"faceswap_pro"``, ``"faceswap_image"`` or
                ``"faceswap_video"``.
            body: The JSON body (validated like the server does).

        Raises:
            Rejected: 1003 (invalid), 1007 (more than 8 faces) or 1006 (credit too low).
        """
        if endpoint not in _SUBMIT_ENDPOINTS:
            raise ValueError(f"not a submit endpoint: {endpoint!r}")
        sub = validate_submit(endpoint, body, self._config)
        if self._store.credit < self._store.cost_of(sub.kind):
            raise Rejected(1006, "Quota not enough")
        job = self._store.create(
            endpoint=endpoint,
            kind=sub.kind,
            source_urls=sub.source_urls,
            target_urls=sub.target_urls,
            webhook_url=sub.webhook_url,
            request=body,
            inputs_ok=_inputs_ok,
        )
        self._webhooks.schedule_job(job)
        for listener in self.submit_listeners:
            listener(job)
        return job

    async def _fetch_inputs(self, endpoint: str, body: Any) -> bool:
        """GET every input URL of a submit (``fetch_inputs``): whether all answered 200."""
        try:
            sub = validate_submit(endpoint, body, self._config)
        except Rejected:
            return True  # the submit itself is refused; nothing to fetch
        if self._fetcher is None:
            self._fetcher = aiohttp.ClientSession()
        ok = True
        timeout = aiohttp.ClientTimeout(total=30.0)
        for url in dict.fromkeys((*sub.source_urls, *sub.target_urls)):
            status = 0
            try:
                async with self._fetcher.get(url, timeout=timeout) as response:
                    await response.read()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError, ValueError):
                status = 0
            self.stats.input_fetches[url, status] += 1
            ok = ok and status == 200
        return ok

    def force_status(self, job_id: str, status: int) -> None:
        """Pin a job's status from now on (1-4), whatever its plan; fires its webhook if due.

        Status 3 makes the result file available (and starts its TTL) now; 1 or 2 keeps the
        job unfinished forever, for timeout tests.
        """
        if status not in (1, 2, 3, 4):
            raise ValueError("status must be 1, 2, 3 or 4")
        job = self._store.jobs[job_id]
        job.forced_status, job.forced_at = status, self.clock.now()
        self._webhooks.schedule_forced(job, status)

    def fail_next_jobs(self, count: int = 1) -> None:
        """Make the next ``count`` jobs created end in status 4."""
        self._store.fail_next += count

    # --- time and webhooks -------------------------------------------------------------------

    async def advance(self, seconds: float = 0.0) -> None:
        """Move the clock forward and deliver, in time order, every webhook that falls due.

        Returns once each due delivery (and each retry falling inside the window) was
        attempted. ``await emu.advance()`` just flushes callbacks already due. With a manual
        clock this is the only way webhooks are sent.
        """
        if seconds < 0:
            raise ValueError("the clock cannot go backwards")
        scheduler = self._webhooks
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
        return self._webhooks.attempts

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
        return await self._webhooks.wait_for(count, timeout)

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
        return await self._webhooks.deliver(url, payload, timestamp=timestamp, nonce=nonce)

    async def drain_webhooks(self) -> None:
        """Wait until no background delivery is in flight."""
        await self._webhooks.drain()

    # --- reset -------------------------------------------------------------------------------

    def reset(self) -> None:
        """Back to a fresh state: jobs, counters, queued faults, pending webhooks and
        recorded attempts are cleared, the credit and the initial configuration restored,
        and every random source reseeded. Tokens and the clock are kept.
        """
        self._config = self._initial
        self._store.reset(self._config)
        self.faults.reset(self._config)
        self._limiter.reset()
        self._webhooks.reset()
        self._detect_rng = random.Random(f"detect-{self._config.seed}")
        self._md5_cache.clear()
        for counter in attrs.astuple(self.stats, recurse=False):
            counter.clear()


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
