"""``Client``: the blocking facade over ``AsyncClient``, through one portal thread per client.

Async is the implementation. A ``Client`` owns one event loop running in one daemon thread (its
*portal*) and, on that loop, one open ``AsyncClient``, created and entered there (so its aiohttp
session belongs to that loop). Every public member is derived from the async definitions, one
line each (the mirrors are in ``_mirrors``), and every call is one ``portal.call(...)`` (the
portal thread, with its fork, exit and interrupt handling, is in ``_portal``).

Lifetime. ``Client(...)`` starts its portal and opens the ``AsyncClient`` at once, so bad
arguments raise ``ValidationError`` from the constructor exactly as ``AsyncClient(...)`` does,
and the client is usable without ``with``; then ``close()`` is required. ``with Client(...) as
client:`` closes on exit. ``close()`` is idempotent; a call after it raises ``ClientStateError``.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from types import TracebackType
from typing import Any, ClassVar, Self, TypeVar, cast

from ._client import AsyncClient
from ._endpoints import BlockingBinder, BlockingMirror, Endpoint
from ._errors import ClientStateError, ValidationError
from ._mirrors import (
    AttributeMirror,
    BlockingBatch,
    BlockingIterator,
    IteratorMirror,
    SettableMirror,
    SyncMirror,
    ViewMirror,
    _takes_arguments_of,
)
from ._portal import _Core

# BlockingBatch, BlockingIterator and IteratorMirror (from ``_mirrors``) are re-exported: the
# package's ``__init__`` and the tests import them from here.
__all__ = [
    "BlockingBatch",
    "BlockingIterator",
    "Client",
    "IteratorMirror",
]

R = TypeVar("R")
BI = TypeVar("BI", bound="BlockingIterator[Any]")


class Client(BlockingBinder):
    """Blocking client of the AKOOL Face Swap API: ``AsyncClient``'s API without ``await``.

    Same arguments, methods, return values and exceptions as ``AsyncClient`` (``swap_many``
    returns a ``BlockingBatch``); each call runs on the client's own event loop thread (its
    portal). Use it as ``with Client(...) as client:``, or create it and ``close()`` it.

    ``session=`` is not supported (the client's loop is private, no caller-owned aiohttp
    session can live on it) and raises ``ValidationError``. Hooks (``on_event``, a batch's
    ``on_event`` and its input iterable) run on the portal thread: keep them quick, and do not
    call the client from them.
    """

    # ---- operations: one line each (a test checks the set against AsyncClient's) ------------

    faceswap_plus = AsyncClient.faceswap_plus
    faceswap_pro = AsyncClient.faceswap_pro
    faceswap_image = AsyncClient.faceswap_image
    faceswap_video = AsyncClient.faceswap_video
    detect_faces = AsyncClient.detect_faces
    detect_faces_legacy = AsyncClient.detect_faces_legacy
    analyze_frames = AsyncClient.analyze_frames
    get_results = BlockingMirror(AsyncClient.get_results)
    delete_results = BlockingMirror(AsyncClient.delete_results)
    get_credit = BlockingMirror(AsyncClient.get_credit)
    download = BlockingMirror(AsyncClient.download)
    wait = BlockingMirror(AsyncClient.wait)
    swap_many = IteratorMirror(AsyncClient.swap_many, BlockingBatch)
    notify_job = SyncMirror(AsyncClient.notify_job)
    attach_webhooks = SyncMirror(AsyncClient.attach_webhooks, callback=True)
    use_webhooks = SyncMirror(AsyncClient.use_webhooks, callback=True)
    statistics = SyncMirror(AsyncClient.statistics)
    poller_statistics = SyncMirror(AsyncClient.poller_statistics)
    with_options = ViewMirror(AsyncClient.with_options)

    # ---- configuration ---------------------------------------------------------------------

    base_url = AttributeMirror(AsyncClient.base_url)
    detector_base_url = AttributeMirror(AsyncClient.detector_base_url)
    retry = AttributeMirror(AsyncClient.retry)
    timeout = AttributeMirror(AsyncClient.timeout)
    limits = AttributeMirror(AsyncClient.limits)
    rate_limit = AttributeMirror(AsyncClient.rate_limit)
    max_ids_per_request = AttributeMirror(AsyncClient.max_ids_per_request)
    client_id = AttributeMirror(AsyncClient.client_id)
    client_secret = AttributeMirror(AsyncClient.client_secret)
    poll_config = SettableMirror(AsyncClient.poll_config)

    #: The async client a subclass wraps (one that adds members to ``AsyncClient``).
    _async_client_type: ClassVar[type[AsyncClient]] = AsyncClient

    _core: _Core
    _owner: bool
    _root: Client | None
    _steps: tuple[tuple[str, tuple[Any, ...], dict[str, Any]], ...]
    _cache: tuple[AsyncClient, AsyncClient] | None

    @_takes_arguments_of(AsyncClient.__init__)
    def __init__(self, **kwargs: Any) -> None:
        self._owner = False  # until construction succeeds: __del__ must not warn
        if kwargs.get("session") is not None:
            raise ValidationError(
                "a blocking Client runs its own event loop and cannot use a caller-owned "
                "aiohttp session (use AsyncClient for that)",
                field="session",
            )
        self._core = _Core(self._async_client_type, kwargs)
        self._root = None
        self._steps = ()
        self._cache = None
        self._owner = True

    # ---- where every member ends: one portal call ------------------------------------------

    def _call_blocking(self, endpoint: Endpoint[Any, R], request: Any) -> R:
        runtime = self._core.current()
        return cast("R", runtime.portal.call(self._async(runtime.client)._call, endpoint, request))

    def _run_blocking(self, name: str, /, *args: Any, **kwargs: Any) -> Any:
        runtime = self._core.current()
        return runtime.portal.call(getattr(self._async(runtime.client), name), *args, **kwargs)

    def _on_portal(self, func: Callable[..., Any]) -> Callable[..., Any]:
        return functools.partial(self._core.current().portal.call, func)

    def _iterate(self, blocking: type[BI], name: str, /, *args: Any, **kwargs: Any) -> BI:
        runtime = self._core.current()
        method = getattr(self._async(runtime.client), name)
        return blocking(runtime.portal, runtime.portal.call(method, *args, **kwargs))

    def _read(self, name: str) -> Any:
        return getattr(self._async(self._core.template), name)

    def _write(self, name: str, value: Any) -> None:
        runtime = self._core.current()
        runtime.portal.call(setattr, self._async(runtime.client), name, value)
        if self._root is None:
            self._core.settings[name] = value

    def _view(self, name: str, /, *args: Any, **kwargs: Any) -> Self:
        view = object.__new__(type(self))
        view._owner = False
        view._core = self._core
        view._root = self._root or self  # a view keeps its client alive
        view._steps = (*self._steps, (name, args, kwargs))
        view._cache = None
        view._async(self._core.template)  # bad options raise now
        return view

    def _async(self, root: AsyncClient) -> AsyncClient:
        """This client's ``AsyncClient`` over ``root``: ``root`` itself, or a view of it."""
        if not self._steps:
            return root
        cache = self._cache
        if cache is not None and cache[0] is root:
            return cache[1]
        client = root
        for name, args, kwargs in self._steps:
            client = getattr(client, name)(*args, **kwargs)
        self._cache = (root, client)
        return client

    # ---- lifecycle --------------------------------------------------------------------------

    @property
    def is_closed(self) -> bool:
        """True once ``close()`` ran."""
        return self._core.closed

    def close(self) -> None:
        """Close the client: its ``AsyncClient`` and session, then its portal thread.

        Idempotent. Calls still running in other threads raise ``ClientStateError`` (or what
        the closing session made them raise). A view's ``close()`` does nothing: close the
        client it came from.
        """
        if self._owner:
            self._core.close()

    def __enter__(self) -> Self:
        if not self._owner:
            raise ClientStateError(
                "a with_options() view shares its parent's portal: open the parent client"
            )
        if self._core.closed:
            raise ClientStateError("this Client was closed; create a new one")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self, _warn: Callable[..., None] = warnings.warn) -> None:
        core: _Core | None = getattr(self, "_core", None)
        if not getattr(self, "_owner", False) or core is None or core.closed:
            return
        runtime = core.live_runtime()
        if runtime is not None:  # else nothing was opened in this process
            _warn(
                f"unclosed {self!r}: use 'with Client(...) as client:' or call client.close()",
                ResourceWarning,
                source=self,
            )
        core.closed = True
        core.runtime = None
        if runtime is not None:
            runtime.close_soon()

    def __repr__(self) -> str:
        view = "" if self._owner else " view"
        state = "closed" if self._core.closed else "open"
        return f"<Client{view} {state} over {self._async(self._core.template)!r}>"
