"""Client-wide request pacing: ``RateLimit`` (the setting) and ``RateController`` (the machine).

One ``RateController`` per client (shared by its ``with_options`` views, every ``swap_many``
batch, ``wait`` and the poller) decides when each HTTP attempt may be sent. It is a token
bucket in GCRA form (a "theoretical arrival time" that every send pushes ``1 / rate``
further), so requests leave one at a time at the paced rate: a burst of waiters never leaves
at once, and a reopening after a pause is paced too.

Discovering the account's rate (``RateLimit(rate=None)``, the default):

* **Probing.** A fresh client starts at 20 requests/s and adds 50 requests/s per accepted
  answer (exponential in time: doubling about every 14 ms while answers come back), until
  the rate passes 10,000/s, where pacing stops. Pacing is what keeps the first throttle
  cheap: a request sent after the server's bucket ran dry is refused, and with pacing only
  ``rate x round-trip`` of them are in flight when the first refusal comes back, instead of
  every worker at once.
* **Multiplicative decrease, once per throttle episode.** A 1005 / HTTP 429 answer to a
  request *sent after the last decrease* starts an episode: the rate falls to 0.7 x the
  smaller of the rate in force and the rate the server accepted over the last second
  (botocore's adaptive mode uses the same factor). Refusals of requests sent before that
  decrease were admitted at the old rate and say nothing about the new one: they are
  counted, never decreased for again, so 64 refusals of one burst are one episode. So are
  refusals of requests sent within 1.5 round trips after the decrease: the requests still
  in flight at the old rate land meanwhile and take the tokens the server's bucket refills.
* **CUBIC growth back** (RFC 8312, as botocore's adaptive retry mode): ``rate(t) = W + C (t -
  K)^3`` with ``W`` the rate before the decrease and ``K`` the time to climb back to it:
  quickly back to about ``W``, a plateau there, then probing beyond it. Unlike TCP's CUBIC
  the scale is relative to ``W`` and smaller beyond ``W`` than below it (``0.1 W`` and
  ``0.002 W``, ``K = 1.44 s``): an account's limit is mostly fixed, so probing it often only
  collects refusals (measured against the emulator's limiter at 5, 20 and 100 requests/s;
  botocore's absolute ``C = 0.4`` probed a 5/s limit every 3.5 s). Against a token-bucket
  server the time spent below its rate is banked in its bucket and used in the probe above
  it, so the average stays close to the server's rate. The rate never exceeds twice what
  was actually sent over the last second (no credit for idle time) nor a known
  ``RateLimit.rate``.
* **Undoing a decrease that did not help.** Below the rate it refused us at, a token-bucket
  server refills and refuses nothing: refusals of a small share of the answers while the rate
  climbs back are something else (a server refusing at random), so the decrease is undone
  instead of repeated, which would spiral the rate down under random 1005s. The share counts
  only answers to requests sent at the new rate. Undoing the first decrease never returns to
  probing (its rate was never accepted, and a token-bucket server refuses its burst at once):
  it goes to a plateau at the rate accepted since the start, and probes on from there.
* **Measuring only when rate-bound.** The server's rate is measured from what it accepted
  only when the client was rate-bound (a quarter of its requests waited for their turn);
  a client sending less than its rate measures its own demand, so its decrease starts from
  its rate instead. Otherwise random refusals of a half-idle client lowered the estimate to
  its demand each time, and the rate spiralled to a fraction of a request per second.
* **Retry-After** closes both lanes until then (plus a little jitter); they reopen paced.

A known limit (``RateLimit(rate=R)``) starts at ``R`` with no probing, so a client that keeps
to its account's limit sees no 1005 at all; with ``adaptive`` (the default) a 1005 still
backs off below ``R`` (another program shares the account) and grows back to it.

Lanes. listbyids calls (the poller's) take their turn in a lane of their own, paced at
``poll_share`` of the rate, so that detection never queues behind thousands of submits; each
poll also uses up one turn of the main lane, so the total stays within the rate and polls
can never take more than their share from submits waiting for a turn (when none is waiting,
a poll may take the main lane's turn instead).
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Final, Literal

import anyio
import attrs

from ._errors import ValidationError
from ._validators import integer_at_least, positive_or_none

__all__ = ["RateController", "RateLimit", "RateLimitStatistics"]

#: Probing: the first rate, the gain per accepted answer, and where pacing stops.
_PROBE_START: Final = 20.0
_PROBE_GAIN: Final = 50.0
_UNPACED: Final = 10_000.0
#: The multiplicative decrease (CUBIC's beta, as in botocore's adaptive mode).
_BETA: Final = 0.7
#: CUBIC's scale, relative to the rate before the decrease: ``0.1 W`` to climb back (``K``
#: is then 1.44 s at any rate), ``0.002 W`` to probe beyond it (so a stable limit costs a
#: refusal every 5-8 s: at 5 requests/s, a refusal in 25-40 requests).
_CLIMB: Final = 0.1
_PROBE: Final = 0.002
#: A rate measured between two throttles is held just below (see ``refused``).
_MARGIN: Final = 0.97
#: Refusals during the climb back below this share of the answers undo the decrease.
_NOISE_SHARE: Final = 0.25
#: Refusals of requests sent within this many round trips after a decrease belong to it.
_SETTLE: Final = 1.5
#: The share of a cycle's requests that waited for their turn for the client to count as
#: rate-bound (its accepted answers then measure the server's rate, not its own demand).
_BOUND_SHARE: Final = 0.25
#: The lowest rate a decrease goes to, in requests per second.
_MIN_RATE: Final = 0.2
#: Seconds over which the accepted and sent rates are measured.
_WINDOW: Final = 1.0
#: A reopening (after Retry-After or a decrease) is delayed by up to this share more, at
#: random, so that clients sharing an account do not reopen in step.
_JITTER: Final = 0.1


_rate = positive_or_none("requests per second")
_burst = integer_at_least(1)


def _share(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 0.5:
        raise ValidationError(f"must be in (0, 0.5], got {value!r}", field=attribute.name)


@attrs.frozen(kw_only=True)
class RateLimit:
    """How fast the client may send requests (all endpoints together), httpx-config style.

    ``AsyncClient(rate_limit=5)`` is ``AsyncClient(rate_limit=RateLimit(rate=5))``.

    Args:
        rate: The account's limit in requests per second, if known: the client paces itself
            to it from the first request, so it never provokes a 1005. None (the default):
            discover it from the server's 1005 / HTTP 429 answers (see ``README``).
        burst: Requests that may leave at once after an idle spell (at a known ``rate``).
        adaptive: With a known ``rate``: still back off on a 1005 (someone else uses the
            account) and grow back to ``rate``. False: keep to ``rate`` whatever happens
            (a 1005 is then only retried).
        poll_share: The share of the rate kept for status polls (listbyids), so that
            detecting finished jobs never waits behind submits and polls never take more.
    """

    rate: float | None = attrs.field(default=None, validator=_rate)
    burst: int = attrs.field(default=1, validator=_burst)
    adaptive: bool = True
    poll_share: float = attrs.field(default=0.05, validator=_share)


@attrs.frozen(kw_only=True)
class RateLimitStatistics:
    """A snapshot of the client's rate controller (``ClientStatistics.rate_limit``).

    Attributes:
        rate: The rate requests are paced at now, in requests per second (the current
            estimate of the account's limit); None while not pacing (no limit seen yet).
        limit: The configured ``RateLimit.rate``, if any.
        phase: ``"probing"`` (no throttle seen yet), ``"limited"`` (a known rate, or one
            learnt from throttles) or ``"unpaced"`` (probing found no limit so far).
        measured: Requests the server accepted over the last second.
        throttle_episodes: Rate decreases: one per throttle episode, however many requests
            that episode refused.
        refused: 1005 / HTTP 429 answers in total.
        waiting: Requests waiting for their turn now (``> 0``: the client is rate-bound).
        waits: Requests that had to wait for their turn.
        wait_seconds: Seconds requests spent waiting for their turn, in total.
    """

    rate: float | None
    limit: float | None
    phase: Literal["probing", "limited", "unpaced"]
    measured: float
    throttle_episodes: int
    refused: int
    waiting: int
    waits: int
    wait_seconds: float

    @property
    def rate_bound(self) -> bool:
        """Whether requests are waiting for their turn right now."""
        return self.waiting > 0


class RateController:
    """The client-wide pacer (see the module docstring). Not thread-safe: one event loop.

    ``sent_at = await acquire(poll=...)`` waits for a turn and returns when the request may
    be sent; report the answer with ``accepted(sent_at)`` or ``refused(sent_at, ...)``.
    """

    def __init__(
        self,
        limit: RateLimit | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        seed: int | None = None,
    ) -> None:
        self.limit = limit if limit is not None else RateLimit()
        self._clock = clock
        self._rng = random.Random(seed)
        known = self.limit.rate
        self._ceiling = math.inf if known is None else float(known)
        self._probing = known is None
        self._rate = _PROBE_START if known is None else float(known)
        self._burst = 1 if known is None else self.limit.burst
        # CUBIC state, set by the first decrease.
        self._epoch: float | None = None
        self._w_max = 0.0
        self._k = 0.0
        self._climb = self._probe = 0.0
        self._decreased_at = -math.inf
        self._settled_at = -math.inf
        self._cycle_accepted = 0
        self._cycle_refused = 0
        self._cycle_sent = 0  # requests sent since the last decrease
        self._cycle_waits = 0  # of which had to wait for their turn
        self._fresh_accepted = 0  # accepted answers to requests sent at the new rate
        self._undo: tuple[Any, ...] | None = None
        self.undone = 0
        # GCRA theoretical arrival times of the main and the poll lane.
        self._tat = -math.inf
        self._poll_tat = -math.inf
        self._main_lock = asyncio.Lock()
        self._poll_lock = asyncio.Lock()
        self._sent: deque[float] = deque()
        self._first_sent = -math.inf  # unknown: rates are then per _WINDOW
        self._accepted: deque[float] = deque()
        self.episodes = 0
        self.refusals = 0
        self.waiting = 0
        self._main_waiting = 0
        self._poll_wake: asyncio.Event | None = None
        self.waits = 0
        self.wait_seconds = 0.0
        #: Called when a refusal of ours begins a throttle episode (a shared journal
        #: publishes it to the other workers of the batch).
        self.episode_listeners: list[Callable[[], None]] = []
        #: Episodes that other clients on the account reported (``throttled_elsewhere``).
        self.shared_episodes = 0

    # -- the rate ---------------------------------------------------------------------------

    def rate(self, now: float | None = None) -> float:
        """The rate in force at ``now`` (requests per second; ``inf``: not pacing)."""
        if self._epoch is None:
            return self._rate
        now = self._clock() if now is None else now
        t = now - self._epoch
        x = t - self._k
        grown = self._w_max + (self._climb if x < 0 else self._probe) * x**3
        cap = min(self._ceiling, max(self._w_max, 2.0 * self._measure(self._sent, now)))
        return max(_MIN_RATE, min(grown, cap))

    def _accepted_rate(self, now: float) -> float:
        """Answers accepted per second over the last second, or since the first send."""
        count = self._measure(self._accepted, now) * _WINDOW
        return count / max(min(_WINDOW, now - self._first_sent), 0.01)

    @staticmethod
    def _measure(times: deque[float], now: float) -> float:
        horizon = now - _WINDOW
        while times and times[0] < horizon:
            times.popleft()
        return len(times) / _WINDOW

    # -- taking turns -----------------------------------------------------------------------

    async def acquire(self, *, poll: bool = False) -> float:
        """Wait for this request's turn; return the send time to report the answer with."""
        now = self._clock()
        if self._epoch is None and self._rate == math.inf and not self._main_lock.locked():
            self._sent.append(now)
            return now
        lock = self._poll_lock if poll else self._main_lock
        started = now
        self.waiting += 1
        self._main_waiting += not poll
        # (a poll's wait is cut short when the last main-lane waiter leaves: see ``_turn``)
        try:
            async with lock:
                while True:
                    now = self._clock()
                    at = self._turn(now, poll)
                    if at <= now:
                        break
                    if poll:  # woken early when the main lane falls idle (see _turn)
                        self._poll_wake = wake = asyncio.Event()
                        with anyio.move_on_after(at - now):
                            await wake.wait()
                        self._poll_wake = None
                    else:
                        await anyio.sleep(at - now)
        finally:
            self.waiting -= 1
            if not poll:
                self._main_waiting -= 1
                if not self._main_waiting and self._poll_wake is not None:
                    self._poll_wake.set()
        if now - started > 0.0005:
            self.waits += 1
            self.wait_seconds += now - started
            self._cycle_waits += 1
        self._take(now, poll)
        return now

    def _turn(self, now: float, poll: bool) -> float:
        """When the head of the lane may go (GCRA: the arrival time minus the burst)."""
        rate = self.rate(now)
        if rate == math.inf:
            return now
        main = self._tat - (self._burst - 1) / rate
        if poll:
            # Its own lane; or the main lane's next turn when no other request wants it.
            return self._poll_tat if self._main_waiting else min(self._poll_tat, main)
        return main

    def _take(self, now: float, poll: bool) -> None:
        if self._first_sent == -math.inf:
            self._first_sent = now
        self._sent.append(now)
        self._cycle_sent += 1
        rate = self.rate(now)
        if rate == math.inf:
            return
        step = 1.0 / rate  # exact: a jittered short step could pass a strict server's limit
        self._tat = max(self._tat, now) + step
        if poll:
            self._poll_tat = max(self._poll_tat, now) + step / self.limit.poll_share

    # -- answers ----------------------------------------------------------------------------

    def accepted(self, sent_at: float) -> None:
        """The server acted on (or at least did not refuse) a request sent at ``sent_at``."""
        self._accepted.append(self._clock())
        self._cycle_accepted += 1
        self._fresh_accepted += sent_at >= self._settled_at
        if self._probing and self._epoch is None:
            self._rate += _PROBE_GAIN
            if self._rate >= _UNPACED:
                self._rate = math.inf

    def refused(self, sent_at: float, *, retry_after: float | None = None) -> bool:
        """A 1005 / HTTP 429 for a request sent at ``sent_at``; True if it began an episode."""
        self.refusals += 1
        now = self._clock()
        if retry_after is not None and retry_after > 0:
            reopen = now + retry_after * self._rng.uniform(1.0, 1.0 + _JITTER)
            self._tat = max(self._tat, reopen)
            self._poll_tat = max(self._poll_tat, reopen)
        adaptive = self.limit.adaptive or self.limit.rate is None
        if sent_at < self._settled_at or not adaptive:
            return False  # admitted at the old rate, or racing its last requests: same episode
        if self._spurious(now):
            return False
        self._undo = (
            self._epoch, self._w_max, self._k, self._climb, self._probe, self._probing,
            self._rate, self._burst,
        )  # fmt: skip
        self._cycle_refused = self._fresh_accepted = 0
        self.episodes += 1
        rate = self.rate(now)
        cycle = now - self._decreased_at
        # Rate-bound: a good share of the requests since the last decrease waited for their
        # turn. Otherwise the client sent what it had, below its rate, and what was accepted
        # measures its own demand, not the server's rate: lowering the estimate to it would
        # spiral the rate down under random refusals (and recover only at the probing pace).
        bound = self._cycle_waits >= _BOUND_SHARE * self._cycle_sent
        if self._epoch is not None and not bound:
            w_max = rate
        elif self._epoch is not None and cycle >= _WINDOW:
            # Between two throttles the server's bucket went from empty to empty: what it
            # accepted meanwhile is its rate (less any refill it could not hold), measured
            # exactly; just below it, the bucket banks a little for the next probe.
            w_max = min(rate, _MARGIN * self._cycle_accepted / cycle)
        else:
            accepted = self._measure(self._accepted, now)
            w_max = rate if len(self._accepted) < 2 else min(rate, accepted)
        w_max = max(w_max, _MIN_RATE)
        self._cycle_accepted = self._cycle_sent = self._cycle_waits = 0
        self._probing = False
        self._w_max = w_max
        self._climb = _CLIMB * w_max
        self._probe = _PROBE * w_max
        self._k = ((1.0 - _BETA) / _CLIMB) ** (1.0 / 3.0)
        self._epoch = now
        self._decreased_at = now
        # Requests sent before the decrease still land at the server for one round trip
        # after it and take the tokens its bucket refills meanwhile, so a request sent in
        # that round trip may be refused although the new rate is right: same episode.
        self._settled_at = now + min(_SETTLE * max(0.0, now - sent_at), _WINDOW)
        self._burst = 1
        # The server's bucket is empty: the next request waits one interval at the new rate.
        new_rate = self.rate(now)
        pause = self._rng.uniform(1.0, 1.0 + _JITTER) / new_rate
        self._tat = max(self._tat, now + pause)
        self._poll_tat = max(self._poll_tat, now + pause)
        for listener in self.episode_listeners:
            listener()
        return True

    def throttled_elsewhere(self) -> bool:
        """Another client on the account began a throttle episode: decrease as for ours.

        The rate limit is the account's, so one client's throttle is everybody's; each one
        backs off from its own rate, and the clients' rates together settle under the limit.
        Not counted as a refusal, and not reported to ``episode_listeners``.

        Returns:
            True if it began an episode here (False within one that already began).
        """
        listeners, self.episode_listeners = self.episode_listeners, []
        refusals = self.refusals
        try:
            began = self.refused(self._clock())
        finally:
            self.episode_listeners = listeners
            self.refusals = refusals
        self.shared_episodes += began
        return began

    def _spurious(self, now: float) -> bool:
        """Whether a refusal shows the last decrease was not about the rate: undo it then.

        A token-bucket server that refused us at rate ``W`` refills while we climb back from
        ``0.7 W``, so it refuses nothing until we are back near ``W``. Refusals during that
        climb, of a small share of the answers, are something else (a server refusing at
        random, as the chaos suite's injected 1005s do): decreasing again for each of them
        would spiral the rate down, so the last decrease is undone instead. A large share
        (we are still far above the server's rate) is a new episode. The share counts only
        requests sent at the new rate (answers to older ones say nothing about it), and
        undoing the first decrease while probing goes back to the rate the server was seen
        to accept then, never to probing (whose rate was never accepted).
        """
        if self._undo is None or self._epoch is None or now - self._epoch >= self._k:
            return False
        self._cycle_refused += 1
        answers = self._fresh_accepted + self._cycle_refused
        if self._cycle_refused / answers >= _NOISE_SHARE:
            return False
        (
            self._epoch, self._w_max, self._k, self._climb, self._probe, self._probing,
            self._rate, self._burst,
        ) = self._undo  # fmt: skip
        if self._probing:
            # Not back to probing, whose rate was never accepted (a token-bucket server
            # refuses its burst at once): to a plateau at the rate accepted since the start,
            # probing beyond it from there.
            w_max = max(_PROBE_START, self._accepted_rate(now))
            self._probing = False
            self._w_max, self._climb, self._probe = w_max, _CLIMB * w_max, _PROBE * w_max
            self._k = ((1.0 - _BETA) / _CLIMB) ** (1.0 / 3.0)
            self._epoch = now - self._k
        self._undo = None
        self.undone += 1
        return True

    # -- statistics -------------------------------------------------------------------------

    def statistics(self) -> RateLimitStatistics:
        """A snapshot (see ``RateLimitStatistics``)."""
        now = self._clock()
        rate = self.rate(now)
        phase: Literal["probing", "limited", "unpaced"]
        if rate == math.inf:
            phase = "unpaced"
        elif self._probing:
            phase = "probing"
        else:
            phase = "limited"
        return RateLimitStatistics(
            rate=None if rate == math.inf else rate,
            limit=self.limit.rate,
            phase=phase,
            measured=self._measure(self._accepted, now),
            throttle_episodes=self.episodes,
            refused=self.refusals,
            waiting=self.waiting,
            waits=self.waits,
            wait_seconds=self.wait_seconds,
        )
