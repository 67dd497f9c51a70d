"""``ServerState``: everything the emulated server's handlers read and change, in one object.

The ``Emulator`` owns one and hands it to the app (``build_app(state)``): the handlers see
this state, never the ``Emulator``, and the ``Emulator``'s methods are thin calls into it.
Rules: the state reads no private attribute of another class, and it imports neither the
app nor the ``Emulator`` (both import it), so there is no cycle between the three.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import aiohttp
import attrs

from ._clock import Clock
from ._config import EmulatorConfig
from ._faults import FaultInjector, RateLimiter
from ._state import EmulatorStats, Job, JobStore, TokenStore
from ._validate import Rejected, validate_submit
from ._webhooks import WebhookScheduler

__all__ = ["SUBMIT_ENDPOINTS", "ServerState"]

#: The endpoint names that create a job.
SUBMIT_ENDPOINTS = frozenset({"faceswap_plus", "faceswap_pro", "faceswap_image", "faceswap_video"})


@attrs.define(kw_only=True, eq=False)
class ServerState:
    """One emulated account and server: credentials, configuration, clock, jobs, tokens,
    faults, rate buckets, counters and webhook callbacks.

    Only the credentials, the configuration and the clock are given; every other part is
    built from them and lives as long as the state (``reset`` clears the parts in place, so
    references to them, such as ``Emulator.stats``, stay valid).

    Attributes:
        api_key: The accepted ``x-api-key`` (and bearer, with ``accept_api_key_as_bearer``).
        client_id: The getToken ``clientId``; also the webhook cipher's IV source.
        client_secret: The getToken ``clientSecret``; the webhook AES key.
        config: The current configuration (change it with ``reconfigure``).
        clock: The emulator clock.
        base_url: ``http://127.0.0.1:PORT`` once the server listens, ``""`` before.
        submit_listeners: Called with every job a submit creates.
        stats: The introspection counters.
        store: The jobs and the credit balance.
        tokens: The getToken tokens issued.
        faults: The fault injector.
        limiter: The rate-limit (1005) token buckets.
        webhooks: The webhook scheduler and its record of attempts.
        detect_rng: The legacy detector's random source.
        md5_cache: ETags of generated result videos, by ``(_id, video size)``.
    """

    api_key: str
    client_id: str
    client_secret: str
    config: EmulatorConfig
    clock: Clock
    base_url: str = ""
    submit_listeners: list[Callable[[Job], None]] = attrs.field(factory=list)
    stats: EmulatorStats = attrs.field(init=False, factory=EmulatorStats)
    store: JobStore = attrs.field(init=False)
    tokens: TokenStore = attrs.field(init=False, factory=TokenStore)
    faults: FaultInjector = attrs.field(init=False)
    limiter: RateLimiter = attrs.field(init=False, factory=RateLimiter)
    webhooks: WebhookScheduler = attrs.field(init=False)
    detect_rng: random.Random = attrs.field(init=False)
    md5_cache: dict[tuple[str, int], str] = attrs.field(init=False, factory=dict)
    _fetcher: aiohttp.ClientSession | None = attrs.field(init=False, default=None)

    def __attrs_post_init__(self) -> None:
        self.store = JobStore(self.config, self.clock, self.stats)
        self.faults = FaultInjector(self.config)
        self.detect_rng = _detect_rng(self.config)
        self.webhooks = WebhookScheduler(
            clock=self.clock,
            config=lambda: self.config,
            jobs=self.store.live,
            result_url=self.result_url,
            faults=self.faults,
            stats=self.stats,
            client_id=self.client_id,
            client_secret=self.client_secret,
        )

    # --- lifetime ----------------------------------------------------------------------------

    async def start(self, *, background: bool) -> None:
        """Start the webhook scheduler (``background``: it delivers due callbacks itself)."""
        await self.webhooks.start(background=background)

    async def aclose(self) -> None:
        """Stop webhook deliveries and close the input fetcher's session. Idempotent."""
        await self.webhooks.aclose()
        if self._fetcher is not None:
            fetcher, self._fetcher = self._fetcher, None
            await fetcher.close()

    # --- configuration -----------------------------------------------------------------------

    def reconfigure(self, config: EmulatorConfig) -> None:
        """Make ``config`` current everywhere; every rate-limit bucket refills."""
        self.config = config
        self.store.config = config
        self.faults.config = config
        self.limiter.reset()

    def reset(self, config: EmulatorConfig) -> None:
        """Back to a fresh state under ``config``: jobs, counters, queued faults, pending
        webhooks and recorded attempts cleared, the credit restored, random sources reseeded.
        Tokens and the clock are kept.
        """
        self.config = config
        self.store.reset(config)
        self.faults.reset(config)
        self.limiter.reset()
        self.webhooks.reset()  # reseeds from self.config, so after the assignment above
        self.detect_rng = _detect_rng(config)
        self.md5_cache.clear()
        for counter in attrs.astuple(self.stats, recurse=False):
            counter.clear()

    # --- account -----------------------------------------------------------------------------

    def issue_token(self) -> str:
        """Mint a valid bearer token (what getToken answers)."""
        return self.tokens.issue(self.clock.now(), self.config.token_ttl)

    def result_url(self, job: Job) -> str:
        """The job's result URL (the one V3 returns at submit and listbyids reports)."""
        return f"{self.base_url}/results/{job.file_name}"

    def submit(self, endpoint: str, body: Any, *, inputs_ok: bool = True) -> Job:
        """Validate, charge and create a job, schedule its webhooks and tell the listeners.

        Args:
            endpoint: One of ``SUBMIT_ENDPOINTS``.
            body: The JSON body (validated like the server does).
            inputs_ok: False when an input could not be fetched: the job then fails.

        Raises:
            Rejected: 1003 (invalid), 1007 (more than 8 faces) or 1006 (credit too low).
        """
        if endpoint not in SUBMIT_ENDPOINTS:
            raise ValueError(f"not a submit endpoint: {endpoint!r}")
        sub = validate_submit(endpoint, body, self.config)
        if self.store.credit < self.store.cost_of(sub.kind):
            raise Rejected(1006, "Quota not enough")
        job = self.store.create(
            endpoint=endpoint,
            kind=sub.kind,
            source_urls=sub.source_urls,
            target_urls=sub.target_urls,
            webhook_url=sub.webhook_url,
            request=body,
            inputs_ok=inputs_ok,
        )
        self.webhooks.schedule_job(job)
        for listener in self.submit_listeners:
            listener(job)
        return job

    async def fetch_inputs(self, endpoint: str, body: Any) -> bool:
        """GET every input URL of a submit (``fetch_inputs``): whether all answered 200."""
        try:
            sub = validate_submit(endpoint, body, self.config)
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


def _detect_rng(config: EmulatorConfig) -> random.Random:
    return random.Random(f"detect-{config.seed}")
