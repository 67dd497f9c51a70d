"""A client's counters: ``ClientStatistics`` (the public snapshot) and ``_Stats`` (the live ones).

A module of its own, below the client, so that the job machinery can name the snapshot's type
without importing the client (see ``_seams``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

import attrs

from ._ratelimit import RateController, RateLimitStatistics

__all__ = ["ClientStatistics", "_Stats"]


@attrs.frozen(kw_only=True)
class ClientStatistics:
    """A snapshot of a client's counters (shared by its ``with_options`` views).

    Attributes:
        requests: HTTP attempts sent, per endpoint name (``"faceswap_plus"``, ``"list_results"``,
            ``"quota"``, ``"get_token"``...).
        retries: Retries scheduled, per endpoint name.
        throttled: 1005 / HTTP 429 answers received.
        throttle_waits: Attempts that had to wait for their turn at the rate controller.
        throttle_wait_seconds: Total seconds attempts spent waiting for their turn.
        token_fetches: getToken calls that produced a token.
        token_refreshes: Requests replayed after a 1101 with a fresh token.
        ambiguous_submits: ``AmbiguousSubmitError`` raised.
        rate_limit: The rate controller: the current rate estimate, throttle episodes...
    """

    requests: Mapping[str, int]
    retries: Mapping[str, int]
    throttled: int
    throttle_waits: int
    throttle_wait_seconds: float
    token_fetches: int
    token_refreshes: int
    ambiguous_submits: int
    rate_limit: RateLimitStatistics


@attrs.define
class _Stats:
    requests: Counter[str] = attrs.field(factory=Counter)
    retries: Counter[str] = attrs.field(factory=Counter)
    throttled: int = 0
    token_fetches: int = 0
    token_refreshes: int = 0
    ambiguous_submits: int = 0

    def snapshot(self, rate: RateController) -> ClientStatistics:
        limit = rate.statistics()
        return ClientStatistics(
            requests=dict(self.requests),
            retries=dict(self.retries),
            throttled=self.throttled,
            throttle_waits=limit.waits,
            throttle_wait_seconds=limit.wait_seconds,
            token_fetches=self.token_fetches,
            token_refreshes=self.token_refreshes,
            ambiguous_submits=self.ambiguous_submits,
            rate_limit=limit,
        )
