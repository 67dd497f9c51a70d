"""``RetryPolicy``: how often and how long to retry, and ``retrying``, the one loop that runs it.

The policy only says *how* to wait. *Whether* a failure may be retried at all is decided by
the caller: the call pipeline (``_requester``) from the endpoint's retry-safety
(``Endpoint.creates_job``) and how far the failed request provably got (a job-creating POST
is retried only when the server never saw it or refused it without acting), a download from
what went wrong, a batch's submitter from the 1005 the client gave up on.

``retrying(policy, attempt)`` is the executor all three use (``backoff`` underneath, decorated
once per policy): attempts up to ``max_attempts``, waits from ``wait_gen`` (full jitter, a
server's ``retry_after`` honoured, ``paced`` failures at once), and no attempt after
``max_elapsed`` seconds from the first.
"""

from __future__ import annotations

import contextvars
import functools
import random
from collections.abc import Awaitable, Callable, Generator, Mapping
from typing import Any, TypeVar

import attrs
import backoff

from ._validators import finite_number_at_least, number_at_least, or_none

__all__ = ["RetryPolicy", "Retryable", "retrying"]

T = TypeVar("T")


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


class Retryable(Exception):
    """A failed attempt that ``retrying`` may retry (when ``retryable``).

    ``retry_after``: seconds the server asked to wait (a floor on the wait); ``paced``: retry
    without a backoff wait (the client's rate controller paces it); ``attempt``: the number
    of the attempt that raised it, set by ``retrying``.
    """

    retryable: bool = True
    retry_after: float | None = None
    paced: bool = False
    attempt: int = 1


#: ``on_retry(attempt, delay, failure)``: before the wait that follows a failed attempt.
OnRetry = Callable[[int, float, Any], Awaitable[None] | None]

#: Seconds already spent before ``retrying`` took over (its ``max_time`` is the rest).
_spent: contextvars.ContextVar[float] = contextvars.ContextVar("akool_retry_spent", default=0.0)


async def retrying(
    policy: RetryPolicy,
    attempt: Callable[[int], Awaitable[T]],
    *,
    first: Retryable | None = None,
    spent: float = 0.0,
    on_retry: OnRetry | None = None,
) -> T:
    """Run ``attempt(1)``, ``attempt(2)``... under ``policy`` until one returns.

    An attempt that raises a ``Retryable`` with ``retryable`` set is retried after the
    policy's wait (anything else propagates at once); the last failure propagates when the
    attempts or ``max_elapsed`` run out. ``first``: the first attempt already ran and failed
    so (a fast path outside this machinery), ``spent`` seconds ago: retries start at 2.
    """
    token = _spent.set(spent)
    try:
        result: T = await _runner(policy)(attempt, [0], first, on_retry)
    finally:
        _spent.reset(token)
    return result


async def _next_attempt(
    attempt: Callable[[int], Awaitable[T]],
    tries: list[int],
    first: Retryable | None,
    on_retry: OnRetry | None,
) -> T:
    tries[0] += 1
    number = tries[0]
    if first is not None and number == 1:
        raise first  # backoff starts from it: whether and how long to wait
    try:
        return await attempt(number)
    except Retryable as failure:
        failure.attempt = number
        raise


def _give_up(exc: Exception) -> bool:
    return not (isinstance(exc, Retryable) and exc.retryable)


async def _announce(details: Mapping[str, Any]) -> None:
    on_retry: OnRetry | None = details["args"][3]
    if on_retry is not None:
        announced = on_retry(details["tries"], details["wait"], details["exception"])
        if announced is not None:
            await announced


@functools.lru_cache(maxsize=64)
def _runner(policy: RetryPolicy) -> Callable[..., Awaitable[Any]]:
    """``_next_attempt`` under ``policy``'s backoff, decorated once per policy.

    ``backoff`` keeps each call's state (tries, start time) in the call itself, so one
    decorated function serves every call; decorating per call cost ~100 us of CPU.
    """
    max_elapsed = policy.max_elapsed
    runner: Callable[..., Awaitable[Any]] = backoff.on_exception(
        policy.wait_gen,
        Retryable,
        max_tries=policy.max_attempts,
        max_time=None if max_elapsed is None else (lambda: max_elapsed - _spent.get()),
        jitter=None,
        giveup=_give_up,
        on_backoff=_announce,
        logger=None,
    )(_next_attempt)
    return runner
