"""The emulator's account state: jobs (status derived lazily from the clock), credit, tokens.

A job's whole life is decided when it is submitted: queue time, processing time, processing
slot (a heap of slot-free times when ``concurrency`` is set) and outcome. Its status at any
moment is then a comparison with the clock, which keeps 100,000 jobs cheap.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import hmac
import json
import random
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any, Literal

import attrs

from ._clock import Clock
from ._config import EmulatorConfig
from ._faces import face_count

__all__ = ["EmulatorStats", "Job", "JobStore", "TokenStore", "iso_ms"]

#: The emulated account (values from the docs' examples).
USER_ID = "64d985c5571729d3e2999477"
UID = 378337


def iso_ms(when: float) -> str:
    """ISO-8601 UTC with milliseconds and ``Z``: ``2024-06-27T08:27:48.006Z``."""
    ms = round(when * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


@attrs.define(kw_only=True, eq=False)
class Job:
    """One face-swap job as the emulator sees it (read-only for tests).

    Attributes:
        id: The ``_id`` (24-hex ObjectId; its first 8 hex digits are ``created_at``).
        job_id: ``YYYYMMDDhhmmssSSS-NNNN``.
        endpoint: ``"faceswap_plus"``, ``"faceswap_pro"``, ``"faceswap_image"`` (V3) or
            ``"faceswap_video"`` (V3).
        kind: ``"image"`` or ``"video"``.
        created_at / start_at / finish_at: Emulator times of submit, status 2 and status 3/4.
        succeeds: Outcome planned at submit (status 3 if True, else 4).
        source_urls / target_urls: Source face URLs and target media URLs of the request.
        webhook_url: The ``webhookUrl`` sent, or None.
        file_name: Result file name under ``/results/``.
        cost: Credits charged at submit.
        request: The JSON body as received.
        forced_status / forced_at: Set by ``emu.force_status``.
        deleted_at: Set by delbyids.
    """

    id: str
    job_id: str
    endpoint: str
    kind: Literal["image", "video"]
    created_at: float
    start_at: float
    finish_at: float
    succeeds: bool
    source_urls: tuple[str, ...]
    target_urls: tuple[str, ...]
    webhook_url: str | None
    file_name: str
    cost: float
    request: Mapping[str, Any]
    forced_status: int | None = None
    forced_at: float | None = None
    deleted_at: float | None = None
    notified: set[int] = attrs.field(factory=set, repr=False)

    def status_at(self, now: float) -> int:
        """The job's ``faceswap_status`` at emulator time ``now``."""
        if self.forced_status is not None:
            return self.forced_status
        if now < self.start_at:
            return 1
        if now < self.finish_at:
            return 2
        return 3 if self.succeeds else 4

    def succeeded_at(self, now: float) -> float | None:
        """When the job reached status 3, if it has by ``now``."""
        if self.forced_status is not None:
            return self.forced_at if self.forced_status == 3 else None
        return self.finish_at if self.succeeds and now >= self.finish_at else None

    def updated_at(self, now: float) -> float | None:
        """Time of the last status change at ``now`` (None while still queued)."""
        if self.forced_at is not None:
            return self.forced_at
        if now >= self.finish_at:
            return self.finish_at
        return self.start_at if now >= self.start_at else None


@attrs.define
class EmulatorStats:
    """Counters for introspection; every one is a ``collections.Counter``.

    Attributes:
        requests: Requests per endpoint name (``"unknown"`` for unrouted paths).
        responses: ``(endpoint, http_status)`` of every response sent (not dropped ones).
        codes: ``(endpoint, code)``: business ``code`` or detector ``error_code`` answered.
        faults: ``(endpoint, kind)`` of every fault injected (webhook faults under ``"webhook"``).
        jobs_by_endpoint: Jobs created per submit endpoint.
        jobs_by_source: Jobs created per source face URL (each distinct URL once per job).
        jobs_by_target: Jobs created per target media URL.
        input_fetches: ``(url, http_status or 0)`` of every input GET made with
            ``fetch_inputs`` (0: unreachable).
    """

    requests: Counter[str] = attrs.field(factory=Counter)
    responses: Counter[tuple[str, int]] = attrs.field(factory=Counter)
    codes: Counter[tuple[str, int]] = attrs.field(factory=Counter)
    faults: Counter[tuple[str, str]] = attrs.field(factory=Counter)
    jobs_by_endpoint: Counter[str] = attrs.field(factory=Counter)
    jobs_by_source: Counter[str] = attrs.field(factory=Counter)
    jobs_by_target: Counter[str] = attrs.field(factory=Counter)
    input_fetches: Counter[tuple[str, int]] = attrs.field(factory=Counter)

    @property
    def faults_by_kind(self) -> Counter[str]:
        """Faults injected per kind, all endpoints together."""
        out: Counter[str] = Counter()
        for (_, kind), n in self.faults.items():
            out[kind] += n
        return out


class JobStore:
    """Creates jobs and plans their lives; owns the credit balance."""

    def __init__(self, config: EmulatorConfig, clock: Clock, stats: EmulatorStats) -> None:
        self._clock = clock
        self._stats = stats
        self.jobs: dict[str, Job] = {}
        self.reset(config)

    def reset(self, config: EmulatorConfig) -> None:
        """Forget every job, restore the credit and reseed."""
        self.config = config
        self.jobs.clear()
        self.credit = float(config.credit)
        self.fail_next = 0
        self._rng = random.Random(f"jobs-{config.seed}")
        self._slots: list[float] = []
        self._machine = self._rng.randbytes(5).hex()
        self._counter = self._rng.randrange(1 << 24)

    def cost_of(self, kind: str) -> float:
        """Credits charged for a job of ``kind``."""
        c = self.config
        return float(c.credit_cost_video if kind == "video" else c.credit_cost_image)

    def _new_ids(self, now: float) -> tuple[str, str]:
        self._counter = (self._counter + 1) & 0xFFFFFF
        object_id = f"{int(now) & 0xFFFFFFFF:08x}{self._machine}{self._counter:06x}"
        ms = round(now * 1000)
        stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(ms // 1000))
        return object_id, f"{stamp}{ms % 1000:03d}-{self._rng.randrange(10_000):04d}"

    def _plan(self, now: float, kind: str) -> tuple[float, float]:
        c = self.config
        queued = self._rng.uniform(*c.queue_seconds) * c.latency_scale
        span = c.video_seconds if kind == "video" else c.image_seconds
        work = self._rng.uniform(*span) * c.latency_scale
        ready = now + queued
        if c.concurrency is None:
            return ready, ready + work
        while len(self._slots) > c.concurrency:  # concurrency was lowered at runtime
            heapq.heappop(self._slots)
        start = ready
        if len(self._slots) == c.concurrency:
            start = max(ready, heapq.heappop(self._slots))
        heapq.heappush(self._slots, start + work)
        return start, start + work

    def create(
        self,
        *,
        endpoint: str,
        kind: Literal["image", "video"],
        source_urls: tuple[str, ...],
        target_urls: tuple[str, ...],
        webhook_url: str | None,
        request: Mapping[str, Any],
        inputs_ok: bool = True,
    ) -> Job:
        """Charge the credit and create a job (the caller has checked the balance).

        ``inputs_ok=False``: an input could not be fetched, so the job fails.
        """
        now = self._clock.now()
        object_id, job_id = self._new_ids(now)
        start, finish = self._plan(now, kind)
        roll = self._rng.random()
        marker = self.config.fail_marker
        fails = (
            not inputs_ok
            or self.fail_next > 0
            or (marker is not None and any(marker in url for url in target_urls))
            or any(face_count(url) == 0 for url in target_urls)
            or roll < self.config.failure_rate
        )
        if self.fail_next > 0:
            self.fail_next -= 1
        cost = self.cost_of(kind)
        self.credit -= cost
        ext = "mp4" if kind == "video" else "png"
        job = Job(
            id=object_id,
            job_id=job_id,
            endpoint=endpoint,
            kind=kind,
            created_at=now,
            start_at=start,
            finish_at=finish,
            succeeds=not fails,
            source_urls=source_urls,
            target_urls=target_urls,
            webhook_url=webhook_url,
            file_name=f"final_{job_id}_{object_id}.{ext}",
            cost=cost,
            request=request,
        )
        self.jobs[object_id] = job
        self._stats.jobs_by_endpoint[endpoint] += 1
        for url in dict.fromkeys(source_urls):
            self._stats.jobs_by_source[url] += 1
        for url in dict.fromkeys(target_urls):
            self._stats.jobs_by_target[url] += 1
        return job

    def live(self, object_id: str) -> Job | None:
        """The job with this ``_id`` unless unknown or deleted."""
        job = self.jobs.get(object_id)
        return None if job is None or job.deleted_at is not None else job

    def shuffle(self, items: list[Any]) -> None:
        """Shuffle listbyids results with the seeded RNG."""
        self._rng.shuffle(items)

    def item(self, job: Job, base_url: str) -> dict[str, Any]:
        """The listbyids ``result`` item for ``job`` now, in the configured shape."""
        now = self._clock.now()
        status = job.status_at(now)
        c = self.config
        url = f"{base_url}/results/{job.file_name}"
        if status != 3 and c.url_before_success == "empty":
            url = ""
        video = job.kind == "video"
        duration = c.video_duration if video else 0
        item: dict[str, Any] = {
            "_id": job.id,
            "createdAt": iso_ms(job.created_at),
            "deduction_duration": duration,
            "faceswap_status": status,
            "image": 0 if video else 1,
            "job_id": job.job_id,
            "uid": UID,
            "url": url,
            "video_duration": duration,
        }
        if c.item_shape == "documented":
            updated = job.updated_at(now)
            item |= {
                "faceswap_type": 1,
                "faceswap_quality": 2,
                "deduction_status": 1,
                "update_time": 0 if updated is None else int(updated * 1000),
                "userId": USER_ID,
            }
        return item


class TokenStore:
    """getToken tokens: HS256 JWT-looking strings with an expiry on the emulator clock."""

    def __init__(self) -> None:
        self._secret = random.Random("tokens").randbytes(32)
        self._expiry: dict[str, float] = {}
        self._serial = 0

    def issue(self, now: float, ttl: float) -> str:
        """Mint a token valid until ``now + ttl``."""
        self._serial += 1
        payload = {
            "id": USER_ID,
            "type": "user",
            "from": "tob",
            "uid": UID,
            "code": str(self._serial),
            "iat": int(now),
            "exp": int(now + ttl),
        }
        head = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")))
        body = _b64url(json.dumps(payload, separators=(",", ":")))
        mac = hmac.new(self._secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
        token = f"{head}.{body}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
        self._expiry[token] = now + ttl
        return token

    def valid(self, token: str, now: float) -> bool:
        """Whether ``token`` was issued here, is unexpired and was not revoked."""
        expiry = self._expiry.get(token)
        return expiry is not None and now < expiry

    def expire_all(self) -> None:
        """Invalidate every token issued so far."""
        self._expiry.clear()


def _b64url(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()
