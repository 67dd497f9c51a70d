"""Webhook callbacks: scheduled on the emulator clock, signed and encrypted as in section 5.

When a job is submitted with a ``webhookUrl``, one delivery is scheduled per configured
status at the time the job reaches it. Non-200 answers and connection errors are retried
after ``webhook_retry_delays``. With a real clock a background task delivers them when due;
with a manual clock they are delivered (and awaited) inside ``await emu.advance(...)``.
Every attempt, including lost ones, is recorded as a ``WebhookAttempt``.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import json
import logging
import random
from collections.abc import Callable, Mapping
from typing import Any, Literal

import aiohttp
import attrs

from akool_async import _crypto

from ._clock import Clock
from ._config import EmulatorConfig
from ._faults import FaultInjector
from ._state import EmulatorStats, Job

__all__ = ["WebhookAttempt", "WebhookScheduler"]

_log = logging.getLogger("akool_async.testing")


@attrs.frozen(kw_only=True)
class WebhookAttempt:
    """One webhook delivery attempt.

    Attributes:
        job_id: The job's ``_id``.
        url: The ``webhookUrl``.
        status: The job status the callback reports.
        attempt: 1 for the first try, 2 for the first retry...
        at: Emulator time of the attempt.
        outcome: ``"delivered"`` (HTTP 200), ``"rejected"`` (other status), ``"error"``
            (connection error or timeout) or ``"lost"`` (a ``lost`` fault: nothing was sent).
        http_status: The receiver's HTTP status, if it answered.
        error: The exception text for ``"error"``.
        duplicate: True for the extra copy sent by a ``duplicate`` fault.
        body: The JSON body POSTed: ``signature``, ``dataEncrypt``, ``timestamp``, ``nonce``.
        payload: The decrypted payload: ``_id``, ``status``, ``type``, ``url``.
    """

    job_id: str
    url: str
    status: int
    attempt: int
    at: float
    outcome: Literal["delivered", "rejected", "error", "lost"]
    http_status: int | None
    error: str | None
    duplicate: bool
    body: Mapping[str, Any]
    payload: Mapping[str, Any]


@attrs.frozen
class _Event:
    job_id: str
    status: int
    attempt: int = 1
    faults_applied: bool = False


class WebhookScheduler:
    """Owns the pending callbacks, the delivery tasks and the record of attempts."""

    def __init__(
        self,
        *,
        clock: Clock,
        config: Callable[[], EmulatorConfig],
        jobs: Callable[[str], Job | None],
        result_url: Callable[[Job], str],
        faults: FaultInjector,
        stats: EmulatorStats,
        client_id: str,
        client_secret: str,
    ) -> None:
        self._clock = clock
        self._config = config
        self._jobs = jobs
        self._result_url = result_url
        self._faults = faults
        self._stats = stats
        self._client_id = client_id
        self._client_secret = client_secret
        self._heap: list[tuple[float, int, _Event]] = []
        self._seq = itertools.count()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._changed = asyncio.Condition()
        self._session: aiohttp.ClientSession | None = None
        self.attempts: list[WebhookAttempt] = []
        self.reset()

    def reset(self) -> None:
        """Forget pending callbacks and recorded attempts; reseed the nonces."""
        self._heap.clear()
        self.attempts.clear()
        self._rng = random.Random(f"webhooks-{self._config().seed}")
        for task in self._tasks:
            task.cancel()

    async def start(self, *, background: bool) -> None:
        """Open the HTTP session; with ``background``, deliver due callbacks on our own."""
        self._session = aiohttp.ClientSession()
        if background:
            self._loop_task = asyncio.create_task(self._run())

    async def aclose(self) -> None:
        """Stop every delivery task and close the session."""
        tasks = [*self._tasks, *([self._loop_task] if self._loop_task else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._loop_task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- scheduling --------------------------------------------------------------------------

    def _push(self, due: float, event: _Event) -> None:
        heapq.heappush(self._heap, (due, next(self._seq), event))
        self._wake.set()

    def schedule_job(self, job: Job) -> None:
        """Schedule the callbacks of a new job (one per configured status it will reach)."""
        if job.webhook_url is None:
            return
        statuses = self._config().webhook_statuses
        final = 3 if job.succeeds else 4
        for status, due in ((1, job.created_at), (2, job.start_at), (final, job.finish_at)):
            if status in statuses:
                self._push(due, _Event(job.id, status))

    def schedule_forced(self, job: Job, status: int) -> None:
        """Schedule the callback for a status set by ``force_status``."""
        if job.webhook_url is not None and status in self._config().webhook_statuses:
            self._push(self._clock.now(), _Event(job.id, status))

    def next_due(self) -> float | None:
        """Emulator time of the earliest pending callback."""
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float) -> tuple[float, _Event] | None:
        """Remove and return the earliest callback due at ``now``, if any."""
        if self._heap and self._heap[0][0] <= now:
            due, _, event = heapq.heappop(self._heap)
            return due, event
        return None

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            due = self.next_due()
            wait = None if due is None else self._clock.seconds_until(due)
            if wait is None or wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)
                continue
            popped = self.pop_due(self._clock.now())
            if popped is not None:
                task = asyncio.create_task(self._fire_logged(*popped))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _fire_logged(self, due: float, event: _Event) -> None:
        try:
            await self.fire(due, event)
        except Exception:  # a bug must not kill the scheduler silently
            _log.exception("webhook delivery for %s failed", event.job_id)

    async def drain(self) -> None:
        """Wait until no delivery task is running."""
        # Finished tasks leave the set from a done-callback that runs on a later loop turn;
        # gathering only finished tasks would not yield on 3.12+, so skip them.
        while pending := [task for task in self._tasks if not task.done()]:
            await asyncio.gather(*pending, return_exceptions=True)

    async def wait_for(self, count: int, timeout: float) -> list[WebhookAttempt]:  # noqa: ASYNC109
        """Wait until at least ``count`` attempts are recorded; return them all."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: len(self.attempts) >= count)
        return list(self.attempts)

    # --- delivery ----------------------------------------------------------------------------

    async def fire(self, due: float, event: _Event) -> None:
        """Run one due callback: checks, faults, the POST(s) and any retry."""
        job = self._jobs(event.job_id)
        if job is None or job.webhook_url is None:
            return
        config = self._config()
        duplicate = False
        if event.attempt == 1 and not event.faults_applied:
            if job.status_at(due) != event.status or event.status in job.notified:
                return  # superseded by force_status, or already sent
            job.notified.add(event.status)
            fault = self._faults.pick("webhook")
            if fault is not None:
                self._stats.faults[("webhook", fault.kind)] += 1
                if fault.kind == "lost":
                    await self._record(
                        job.webhook_url,
                        self._payload(job, event.status),
                        {},
                        attempt=1,
                        outcome="lost",
                        http_status=None,
                        error=None,
                        duplicate=False,
                    )
                    return
                if fault.kind == "late":
                    late = config.webhook_late_seconds if fault.delay is None else fault.delay
                    self._push(due + late, attrs.evolve(event, faults_applied=True))
                    return
                duplicate = fault.kind == "duplicate"
        payload = self._payload(job, event.status)
        first = await self.deliver(job.webhook_url, payload, attempt=event.attempt)
        if duplicate:
            await self.deliver(job.webhook_url, payload, attempt=event.attempt, duplicate=True)
        delays = config.webhook_retry_delays
        if first.outcome != "delivered" and event.attempt <= len(delays):
            retry = attrs.evolve(event, attempt=event.attempt + 1, faults_applied=True)
            self._push(self._clock.now() + delays[event.attempt - 1], retry)

    def _payload(self, job: Job, status: int) -> dict[str, Any]:
        config = self._config()
        payload: dict[str, Any] = {
            "_id": job.id,
            "status": status,
            "type": config.webhook_type,
            "url": self._result_url(job) if status == 3 else "",
        }
        if config.webhook_include_job_id:
            payload["job_id"] = job.job_id
        return payload

    async def deliver(
        self,
        url: str,
        payload: Mapping[str, Any],
        *,
        attempt: int = 1,
        duplicate: bool = False,
        timestamp: int | None = None,
        nonce: int | str | None = None,
    ) -> WebhookAttempt:
        """Sign, encrypt and POST ``payload`` to ``url`` once; record and return the attempt.

        ``timestamp`` (ms) and ``nonce`` default to the emulator clock and a seeded 4-digit
        number (a string unless ``webhook_nonce_as_number``).
        """
        config = self._config()
        plaintext = json.dumps(payload, separators=(",", ":")).encode()
        try:
            data_encrypt = _crypto.encrypt(plaintext, self._client_id, self._client_secret)
        except ImportError as exc:  # the optional 'cryptography' package is missing
            return await self._record(
                url,
                payload,
                {},
                attempt=attempt,
                outcome="error",
                http_status=None,
                error=str(exc),
                duplicate=duplicate,
            )
        if timestamp is None:
            timestamp = int(self._clock.now() * 1000)
        if nonce is None:
            value = self._rng.randrange(1000, 10_000)
            nonce = value if config.webhook_nonce_as_number else str(value)
        body = {
            "signature": _crypto.sign(self._client_id, timestamp, nonce, data_encrypt),
            "dataEncrypt": data_encrypt,
            "timestamp": timestamp,
            "nonce": nonce,
        }
        http_status: int | None = None
        error: str | None = None
        try:
            if self._session is None:
                raise RuntimeError("the emulator is not running")
            timeout = aiohttp.ClientTimeout(total=config.webhook_timeout)
            async with self._session.post(url, json=body, timeout=timeout) as resp:
                http_status = resp.status
                await resp.read()
        except (aiohttp.ClientError, TimeoutError, RuntimeError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        outcome: Literal["delivered", "rejected", "error"] = (
            "error" if http_status is None else "delivered" if http_status == 200 else "rejected"
        )
        return await self._record(
            url,
            payload,
            body,
            attempt=attempt,
            outcome=outcome,
            http_status=http_status,
            error=error,
            duplicate=duplicate,
        )

    async def _record(
        self,
        url: str,
        payload: Mapping[str, Any],
        body: Mapping[str, Any],
        *,
        attempt: int,
        outcome: Literal["delivered", "rejected", "error", "lost"],
        http_status: int | None,
        error: str | None,
        duplicate: bool,
    ) -> WebhookAttempt:
        record = WebhookAttempt(
            job_id=str(payload.get("_id", "")),
            url=url,
            status=int(payload.get("status", 0)),
            attempt=attempt,
            at=self._clock.now(),
            outcome=outcome,
            http_status=http_status,
            error=error,
            duplicate=duplicate,
            body=body,
            payload=payload,
        )
        async with self._changed:
            self.attempts.append(record)
            self._changed.notify_all()
        return record
