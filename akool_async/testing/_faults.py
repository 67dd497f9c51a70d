"""Fault injection (random rates and a deterministic queue) and the 1005 rate limiter.

HTTP fault kinds, per endpoint name or ``"*"``:

- ``http_500`` / ``http_502`` / ``http_503``: that status with an HTML body; not processed.
- ``http_429``: HTTP 429 with an HTML body and ``Retry-After: 1``; not processed.
- ``rate_limited``: the business error 1005 (HTTP per ``error_status``); not processed.
- ``drop_before``: the TCP connection is closed before the request is processed.
- ``drop_after``: the request is processed (a submit creates and charges its job), then the
  connection is closed without a response: the ambiguous submit. On a video result file,
  the connection is cut after half of the body was sent.
- ``slow``: the response is delayed by ``delay`` (default ``slow_seconds``) real seconds.
- ``malformed_json``: processed, then answered HTTP 200 with a truncated JSON body.

Webhook fault kinds (endpoint ``"webhook"``): ``duplicate`` (delivered twice), ``late``
(delayed by ``delay`` or ``webhook_late_seconds``), ``lost`` (never sent).
"""

from __future__ import annotations

import math
import random
from collections import deque

import attrs

from ._config import ENDPOINTS, FAULT_KINDS, WEBHOOK_FAULT_KINDS, EmulatorConfig

__all__ = ["Fault", "FaultInjector", "RateLimiter"]


@attrs.frozen
class Fault:
    """One fault to apply: its kind and, for ``slow``/``late``, a delay in seconds."""

    kind: str
    delay: float | None = None


class FaultInjector:
    """Decides which fault, if any, hits each request: forced queue first, then random rates."""

    def __init__(self, config: EmulatorConfig) -> None:
        self._queues: dict[str, deque[Fault]] = {}
        self.reset(config)

    def reset(self, config: EmulatorConfig) -> None:
        """Drop queued faults and reseed the random source."""
        self.config = config
        self._queues.clear()
        self._rng = random.Random(f"faults-{config.seed}")

    def inject(
        self, endpoint: str, kind: str, *, times: int = 1, delay: float | None = None
    ) -> None:
        """Force the next ``times`` requests to ``endpoint`` (or ``"*"``: any) to fault.

        Args:
            endpoint: An endpoint name from ``ENDPOINTS``, ``"*"``, or ``"webhook"``.
            kind: A fault kind (see the module docstring).
            times: How many consecutive requests (deliveries for webhooks) it hits.
            delay: Seconds for ``slow`` (real) or ``late`` (emulator clock).
        """
        known = WEBHOOK_FAULT_KINDS if endpoint == "webhook" else FAULT_KINDS
        if endpoint not in ENDPOINTS | {"*", "webhook"}:
            raise ValueError(f"unknown endpoint {endpoint!r}")
        if kind not in known:
            raise ValueError(f"unknown fault kind {kind!r} for {endpoint!r}")
        if times < 1:
            raise ValueError("times must be at least 1")
        self._queues.setdefault(endpoint, deque()).extend([Fault(kind, delay)] * times)

    def pending(self, endpoint: str | None = None) -> int:
        """How many forced faults are still queued (for one endpoint, or all)."""
        if endpoint is not None:
            return len(self._queues.get(endpoint, ()))
        return sum(len(q) for q in self._queues.values())

    def clear(self) -> None:
        """Drop every queued fault (random rates stay configured)."""
        self._queues.clear()

    def pick(self, endpoint: str) -> Fault | None:
        """The fault for this request to ``endpoint``, consuming a queued one if any."""
        keys = [endpoint] if endpoint == "webhook" else [endpoint, "*"]
        for key in keys:
            queue = self._queues.get(key)
            if queue:
                return queue.popleft()
        rates: dict[str, float] = {}
        for key in reversed(keys):  # the endpoint's own rates override "*"
            rates.update(self.config.fault_rates.get(key, {}))
        if not rates:
            return None
        roll = self._rng.random()
        total = 0.0
        for kind in sorted(rates):
            total += rates[kind]
            if roll < total:
                return Fault(kind)
        return None


class RateLimiter:
    """Token buckets on the emulator clock: a global one and one per endpoint."""

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}

    def reset(self) -> None:
        """Refill every bucket (after a configuration change)."""
        self._buckets.clear()

    def allow(self, endpoint: str, now: float, config: EmulatorConfig) -> bool:
        """Whether a request may pass; consumes a token from each applicable bucket."""
        return self.check(endpoint, now, config) == 0.0

    def check(self, endpoint: str, now: float, config: EmulatorConfig) -> float:
        """0.0 if a request may pass (a token is taken from each applicable bucket), else
        the seconds until the emptiest bucket it needs has a token again (nothing is taken).
        """
        limits: list[tuple[str, float, float | None]] = []
        if config.rate_limit is not None:
            limits.append(("*", config.rate_limit, config.rate_burst))
        if endpoint in config.endpoint_rate_limits:
            burst = config.endpoint_rate_bursts.get(endpoint, config.rate_burst)
            limits.append((endpoint, config.endpoint_rate_limits[endpoint], burst))
        levels = []
        wait = 0.0
        for key, rate, size in limits:
            burst = float(size or max(1, math.ceil(rate)))
            tokens, last = self._buckets.get(key, (burst, now))
            tokens = min(burst, tokens + max(0.0, now - last) * rate)
            if tokens < 1:
                self._buckets[key] = (tokens, now)
                wait = max(wait, (1 - tokens) / rate)
            levels.append((key, tokens))
        if wait > 0:
            return wait
        for key, tokens in levels:
            self._buckets[key] = (tokens - 1, now)
        return 0.0
