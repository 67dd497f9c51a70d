"""What the job machinery needs of a client, as protocols: it never imports ``_client``.

``AsyncClient`` builds on the job service, the batch run and the result store (it imports
them), so they must not import it back, not even for a type. They take a ``ClientSeam``
instead: the few members of the client a batch calls (``AsyncClient`` satisfies it, which
mypy checks where a client is passed in).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    import aiohttp

    from akool_async._endpoints import Endpoint
    from akool_async._ratelimit import RateController
    from akool_async._retry import RetryPolicy
    from akool_async._stats import ClientStatistics
    from akool_async._storage import MediaResolver

__all__ = ["ClientSeam"]

T = TypeVar("T")


class _AuthSeam(Protocol):
    @property
    def api_key(self) -> str | None: ...


class _SharedSeam(Protocol):
    """The state a client shares with its ``with_options`` views."""

    @property
    def rate(self) -> RateController: ...
    @property
    def auth(self) -> _AuthSeam: ...


class ClientSeam(Protocol):
    """The members of ``AsyncClient`` that a batch, its parts and the result store use."""

    @property
    def base_url(self) -> str: ...
    @property
    def _shared(self) -> _SharedSeam: ...
    def statistics(self) -> ClientStatistics: ...
    def _session(self) -> aiohttp.ClientSession: ...
    def _media(self) -> MediaResolver: ...
    async def _call(
        self, endpoint: Endpoint[Any, T], request: Any, *, retry: RetryPolicy | None = None
    ) -> T: ...
