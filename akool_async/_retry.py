"""``RetryPolicy``: how often and how long to retry a request, run by ``backoff``.

The policy only says *how* to wait. *Whether* a failure may be retried at all is decided by
the client from the endpoint's retry-safety (``Endpoint.creates_job``) and how far the failed
request provably got (``_client.py``): a job-creating POST is retried only when the server
never saw it or refused it without acting.
"""

from __future__ import annotations

import random
from collections.abc import Generator
from typing import Any

import attrs

from ._validators import finite_number_at_least, number_at_least, or_none

__all__ = ["RetryPolicy"]


_non_negative = finite_number_at_least(0)
_at_least_one = number_at_least(1)
_elapsed = or_none(_non_negative)


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """Exponential backoff with full jitter; frozen, so build variants with ``attrs.evolve``.

    The wait before retry ``n`` (0-based) is ``min(max_delay, initial_delay * multiplier**n)``,
    drawn uniformly from ``[0, that]`` when ``jitter`` is on ("full jitter"), and never less
    than a ``retry_after`` the server asked for.

    Args:
        max_attempts: Attempts in total, the first included (1 disables retries).
        initial_delay: Seconds of the first backoff step.
        max_delay: Cap of a single backoff step, in seconds.
        multiplier: Growth factor between steps.
        jitter: Draw each wait uniformly from ``[0, step]`` (full jitter) instead of ``step``.
        max_elapsed: Give up once this many seconds have passed since the first attempt
            (None: only ``max_attempts`` limits).
    """

    max_attempts: int = attrs.field(default=4, validator=_at_least_one)
    initial_delay: float = attrs.field(default=0.5, validator=_non_negative)
    max_delay: float = attrs.field(default=30.0, validator=_non_negative)
    multiplier: float = attrs.field(default=2.0, validator=_at_least_one)
    jitter: bool = True
    max_elapsed: float | None = attrs.field(default=120.0, validator=_elapsed)

    @classmethod
    def none(cls) -> RetryPolicy:
        """A policy that never retries (one attempt)."""
        return cls(max_attempts=1)

    def step(self, retry_number: int) -> float:
        """The un-jittered backoff step before retry ``retry_number`` (0-based), capped."""
        try:
            raw = self.initial_delay * self.multiplier**retry_number
        except OverflowError:
            return self.max_delay
        return min(self.max_delay, raw)

    def delay(self, retry_number: int, *, retry_after: float | None = None) -> float:
        """The wait before retry ``retry_number``: jittered step, at least ``retry_after``."""
        step = self.step(retry_number)
        wait = random.uniform(0.0, step) if self.jitter else step  # not for crypto
        if retry_after is not None and retry_after > wait:
            wait = retry_after
        return wait

    def wait_gen(self) -> Generator[float, Any, None]:
        """A ``backoff`` wait generator; ``backoff`` sends it each failure it retries.

        A failure with a ``retry_after`` attribute (seconds) is honoured; one with a true
        ``paced`` attribute is retried at once (the client's rate controller paces it).
        """
        failure = yield 0.0  # backoff primes the generator with send(None)
        retry_number = 0
        while True:
            if getattr(failure, "paced", False):
                failure = yield 0.0
                continue
            retry_after = getattr(failure, "retry_after", None)
            failure = yield self.delay(retry_number, retry_after=retry_after)
            retry_number += 1
