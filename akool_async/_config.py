"""Configuration objects for ``AsyncClient``: ``Timeout`` and ``Limits`` (httpx style).

Both are frozen, keyword-only attrs classes: build variants with ``attrs.evolve``. They carry
no aiohttp types; the transport (``_transport.py``) translates them into
``aiohttp.ClientTimeout`` and ``aiohttp.TCPConnector`` arguments.
"""

from __future__ import annotations

import attrs

from ._validators import integer_at_least, positive_or_none

__all__ = ["Limits", "Timeout"]


_positive_or_none = positive_or_none("seconds")


@attrs.frozen(kw_only=True)
class Timeout:
    """Time limits for one HTTP request (one attempt; retries get fresh limits).

    Args:
        connect: Seconds to establish a connection (socket connect). A connect that times
            out provably never sent the request, so even a job-creating call is retried.
        read: Seconds to wait for each chunk of the response once the request was sent.
        total: Seconds for the whole attempt, connection pool wait included. None: no limit.
    """

    connect: float | None = attrs.field(default=10.0, validator=_positive_or_none)
    read: float | None = attrs.field(default=60.0, validator=_positive_or_none)
    total: float | None = attrs.field(default=120.0, validator=_positive_or_none)


@attrs.frozen(kw_only=True)
class Limits:
    """Connection pool limits of the client's own aiohttp session.

    Ignored when the caller passes its own ``session=`` (the caller's connector rules).

    Args:
        max_connections: Open connections in total; 0 means unlimited.
        max_connections_per_host: Open connections per host; 0 means unlimited.
        keepalive_timeout: Seconds an idle connection is kept for reuse.
    """

    max_connections: int = attrs.field(default=100, validator=integer_at_least(0))
    max_connections_per_host: int = attrs.field(default=0, validator=integer_at_least(0))
    keepalive_timeout: float | None = attrs.field(default=15.0, validator=_positive_or_none)
