"""Mirrors: how a blocking class derives its members from the async definitions.

Every public member of a blocking ``Client`` is derived from ``AsyncClient``'s, one line each, and
every call is one ``portal.call(...)`` (the portal is in ``_portal``):

* the ``Operation`` descriptors of ``AsyncClient`` are shared as they are: on a ``Client`` (a
  ``BlockingBinder``) they bind to ``BlockingOperation``s, which end in ``_call_blocking``;
* async methods are ``BlockingMirror(AsyncClient.wait)``, sync ones
  ``SyncMirror(AsyncClient.statistics)`` (run on the portal too: the counters live there),
  properties ``AttributeMirror(AsyncClient.retry)``, ``with_options`` is a ``ViewMirror`` (it
  returns a blocking view), and methods returning an async iterator are ``IteratorMirror``\\ s
  (they return a ``BlockingIterator``, e.g. ``swap_many`` a ``BlockingBatch``).

The blocking iterators live here too: a ``BlockingIterator`` steps an async iterator that lives
on the portal (entered, iterated and exited there by one task, its ``_Host``); ``BlockingBatch``
is the one over a ``Batch``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import inspect
import os
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import (
    Any,
    Concatenate,
    Generic,
    Never,
    ParamSpec,
    Protocol,
    Self,
    TypeVar,
    cast,
    overload,
)

from ._client import AsyncClient
from ._endpoints import BlockingBinder, Endpoint, method_signature, not_on_the_class
from ._errors import ClientStateError
from ._jobs._events import Outcome
from ._jobs._orchestrator import Batch
from ._models import SwapRequest
from ._portal import CANCEL_WAIT, _Flight, _Portal

__all__ = [
    "AttributeMirror",
    "BlockingBatch",
    "BlockingIterator",
    "IteratorMirror",
    "SettableMirror",
    "SyncMirror",
    "ViewMirror",
]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")
S = TypeVar("S")
BI = TypeVar("BI", bound="BlockingIterator[Any]")
C = TypeVar("C", bound="_Views")
Req = TypeVar("Req", bound=SwapRequest)


# --------------------------------------------------------------------------------------------
# Mirrors: how a blocking class derives its members from the async definitions


class _Proxy(Protocol):
    def _run_blocking(self, name: str, /, *args: Any, **kwargs: Any) -> Any: ...
    def _on_portal(self, func: Callable[..., Any]) -> Callable[..., Any]: ...


class _Attributes(Protocol):
    def _read(self, name: str) -> Any: ...
    def _write(self, name: str, value: Any) -> None: ...


# What a blocking client (``_sync.Client``) offers the mirrors: protocols, so that this module,
# which ``_sync`` builds on, never names it.
class _Views(Protocol):
    def _view(self, name: str, /, *args: Any, **kwargs: Any) -> Self: ...


class _Iterates(Protocol):
    def _iterate(self, blocking: type[BI], name: str, /, *args: Any, **kwargs: Any) -> BI: ...


def _bound_signature(method: Callable[..., Any]) -> inspect.Signature:
    """The signature of ``method`` without ``self``."""
    signature = inspect.signature(method)
    return signature.replace(parameters=tuple(signature.parameters.values())[1:])


class _Mirror:
    """Shared by the mirrors: the name check and the bound function's metadata.

    Read from the class, a mirror stands for the method: ``inspect.signature`` gives the
    signature with ``self`` and ``help()`` documents it as a method.
    """

    name: str
    bound_signature: inspect.Signature
    __signature__: inspect.Signature

    def _describe(self, method: Callable[..., Any], returns: str | None = None) -> None:
        self.name = self.__name__ = self.__qualname__ = method.__name__
        self.__module__ = "akool_async"
        self.__doc__ = method.__doc__
        signature = _bound_signature(method)
        self.bound_signature = (
            signature if returns is None else signature.replace(return_annotation=returns)
        )
        self.__signature__ = method_signature(self.bound_signature)

    def __set_name__(self, owner: type[Any], name: str) -> None:
        if name != self.name:
            raise TypeError(f"mirror of {self.name!r} bound under the name {name!r}")
        if "." not in vars(self).get("__qualname__", "."):  # the defining class only
            self.__qualname__ = f"{owner.__qualname__}.{name}"

    def __call__(self, *args: Any, **kwargs: Any) -> Never:
        not_on_the_class(self.name)

    def _bind(self, func: Callable[..., Any]) -> Callable[..., Any]:
        bound = functools.partial(func, self.name)
        bound.__doc__ = self.__doc__
        bound.__signature__ = self.bound_signature  # type: ignore[attr-defined]
        return bound


class SyncMirror(_Mirror, Generic[P, R]):
    """The blocking twin of a *sync* method of the async object, run on its portal.

    ``statistics = SyncMirror(AsyncClient.statistics)``: ``client.statistics()`` runs on the
    loop that updates the counters. With ``callback=True`` the method returns a function that
    belongs to the loop as well (``attach_webhooks`` returns ``detach``), which is then run on
    the portal when called.
    """

    def __init__(self, method: Callable[Concatenate[Any, P], R], *, callback: bool = False) -> None:
        self._describe(method)
        self._callback = callback

    @overload
    def __get__(self, obj: None, owner: type[Any] | None = None) -> Self: ...
    @overload
    def __get__(self, obj: _Proxy, owner: type[Any] | None = None) -> Callable[P, R]: ...
    def __get__(self, obj: _Proxy | None, owner: type[Any] | None = None) -> Any:
        if obj is None:
            return self
        if not self._callback:
            return self._bind(obj._run_blocking)

        def run(name: str, /, *args: Any, **kwargs: Any) -> Any:
            return obj._on_portal(obj._run_blocking(name, *args, **kwargs))

        return self._bind(run)


class AttributeMirror(_Mirror, Generic[R]):
    """A read-only property of the async client (configuration), read without the portal.

    ``retry = AttributeMirror(AsyncClient.retry)``.
    """

    def __init__(self, prop: Callable[[Any], R]) -> None:
        getter = prop.fget if isinstance(prop, property) else prop
        assert getter is not None
        self.name = getter.__name__
        self.__doc__ = getter.__doc__

    @overload
    def __get__(self, obj: None, owner: type[Any] | None = None) -> Self: ...
    @overload
    def __get__(self, obj: _Attributes, owner: type[Any] | None = None) -> R: ...
    def __get__(self, obj: _Attributes | None, owner: type[Any] | None = None) -> Any:
        if obj is None:
            return self
        return obj._read(self.name)

    def __set__(self, obj: _Attributes, value: Never) -> None:
        raise AttributeError(f"property {self.name!r} of a Client has no setter")


class SettableMirror(AttributeMirror[R]):
    """A read/write property of the async client; set on the portal (and kept, so that a
    client re-created after a fork gets it too).

    ``poll_config = SettableMirror(AsyncClient.poll_config)``.
    """

    def __set__(self, obj: _Attributes, value: R) -> None:
        obj._write(self.name, value)


class ViewMirror(_Mirror, Generic[P]):
    """A method of ``AsyncClient`` returning a view of it: gives the same view of a ``Client``.

    ``with_options = ViewMirror(AsyncClient.with_options)``: ``client.with_options(retry=...)``
    is a ``Client`` sharing the portal, whose async client is
    ``async_client.with_options(retry=...)``.
    """

    def __init__(self, method: Callable[Concatenate[Any, P], AsyncClient]) -> None:
        self._describe(method, returns="Client")

    @overload
    def __get__(self, obj: None, owner: type[Any] | None = None) -> Self: ...
    @overload
    def __get__(self, obj: C, owner: type[Any] | None = None) -> Callable[P, C]: ...
    def __get__(self, obj: _Views | None, owner: type[Any] | None = None) -> Any:
        if obj is None:
            return self
        return self._bind(obj._view)


class IteratorMirror(_Mirror, Generic[P, BI]):
    """A method of the async client returning an async iterator (maybe also an async context
    manager, as a ``Batch`` is): gives a method returning a ``BlockingIterator`` over it.

    ``swap_many = IteratorMirror(AsyncClient.swap_many, BlockingBatch)``; without the second
    argument the result is a plain ``BlockingIterator``.
    """

    @overload
    def __init__(
        self: IteratorMirror[P, BlockingIterator[T]],
        method: Callable[Concatenate[Any, P], AsyncIterator[T]],
    ) -> None: ...
    @overload
    def __init__(
        self: IteratorMirror[P, BlockingBatch[Req]],
        method: Callable[Concatenate[Any, P], Batch[Req]],
        blocking: type[BlockingBatch[Any]],
    ) -> None: ...
    @overload
    def __init__(
        self: IteratorMirror[P, BI],
        method: Callable[Concatenate[Any, P], Any],
        blocking: type[BI],
    ) -> None: ...
    def __init__(self, method: Callable[..., Any], blocking: type[Any] | None = None) -> None:
        self._blocking: type[BlockingIterator[Any]] = blocking or BlockingIterator
        self._describe(method, returns=self._blocking.__name__)

    @overload
    def __get__(self, obj: None, owner: type[Any] | None = None) -> Self: ...
    @overload
    def __get__(self, obj: _Iterates, owner: type[Any] | None = None) -> Callable[P, BI]: ...
    def __get__(self, obj: _Iterates | None, owner: type[Any] | None = None) -> Any:
        if obj is None:
            return self
        return self._bind(functools.partial(obj._iterate, self._blocking))


def _takes_arguments_of(
    source: Callable[Concatenate[Any, P], None],
) -> Callable[[Callable[Concatenate[S, ...], None]], Callable[Concatenate[S, P], None]]:
    """Give ``__init__(self, **kwargs)`` the signature of ``source`` (typed and inspected)."""

    def decorate(init: Callable[Concatenate[S, ...], None]) -> Callable[Concatenate[S, P], None]:
        init.__wrapped__ = source  # type: ignore[attr-defined]
        init.__doc__ = source.__doc__
        return init

    return decorate


# --------------------------------------------------------------------------------------------
# Blocking iteration over an async iterator that lives on the portal


class _Host:
    """The loop side of a ``BlockingIterator``: one task that runs ``async with target: async
    for item in target`` one item per request. It holds no reference to the blocking iterator,
    so that dropping the iterator (a ``break`` out of a bare ``for``) finalizes it at once.
    """

    def __init__(self, target: Any) -> None:
        self.target = target
        self.task: asyncio.Task[None] | None = None
        self.ended = False
        self._inbox: collections.deque[_Flight] = collections.deque()
        self._wakeup: asyncio.Event | None = None
        self._stoppers: list[_Flight] = []

    def start(self, opened: _Flight) -> None:
        if self.task is not None:
            opened.finish()  # another thread opened it first
            return
        self._wakeup = asyncio.Event()
        self.task = opened.task = asyncio.get_running_loop().create_task(self._run(opened))

    def request(self, flight: _Flight) -> None:
        if self.ended or self.task is None or self._wakeup is None:
            flight.finish(error=StopAsyncIteration())
            return
        flight.task = self.task
        self._inbox.append(flight)
        self._wakeup.set()

    def stop(self, flight: _Flight) -> None:
        if self.ended or self.task is None:
            flight.finish()
            return
        flight.task = self.task
        self._stoppers.append(flight)
        self.task.cancel()

    async def _next_request(self) -> _Flight:
        assert self._wakeup is not None
        while not self._inbox:
            self._wakeup.clear()
            await self._wakeup.wait()
        return self._inbox.popleft()

    async def _run(self, opened: _Flight) -> None:
        target = self.target
        managed = hasattr(type(target), "__aenter__")
        waiting: _Flight | None = opened
        outcome: BaseException = StopAsyncIteration()
        try:
            if managed:
                await target.__aenter__()
            try:
                iterator = target.__aiter__()
                opened.finish()
                waiting = None
                while True:
                    waiting = await self._next_request()
                    try:
                        item = await iterator.__anext__()
                    except StopAsyncIteration:
                        break
                    waiting.finish(item)
                    waiting = None
            except BaseException as exc:
                if managed:
                    suppressed = await target.__aexit__(type(exc), exc, exc.__traceback__)
                    if suppressed and not isinstance(exc, asyncio.CancelledError):
                        return
                elif (aclose := getattr(target, "aclose", None)) is not None:
                    await aclose()
                raise
            if managed:
                await target.__aexit__(None, None, None)
        except BaseException as exc:  # handed to the caller; the task itself ends quietly
            outcome = exc
        finally:
            self.ended = True
            if waiting is not None:
                waiting.finish(error=outcome)
            for flight in self._inbox:
                flight.finish(error=StopAsyncIteration())
            stopped = isinstance(outcome, asyncio.CancelledError | StopAsyncIteration)
            for flight in self._stoppers:
                flight.finish(error=None if stopped else outcome)
            self._inbox.clear()
            self._stoppers.clear()


class BlockingIterator(BlockingBinder, Generic[T]):
    """A blocking iterator (and context manager) over an async iterator on a client's portal.

    The async object (a ``Batch``, an async generator...) is entered (``__aenter__``, if it has
    one), iterated and exited by *one* task on the portal, as ``async with x: async for ...``
    would be; each ``next()`` is one step of that task, and items are handed over as they come.

    Leaving early (``break``, an exception, ``close()``, or the iterator being garbage
    collected) cancels that task, so the async object stops its work; ``close()``, ``with`` and
    the finalizer of a bare ``for`` loop's iterator return once it has. A ``KeyboardInterrupt``
    while waiting for an item cancels it the same way. Running to the end exits the async
    object normally.
    """

    def __init__(self, portal: _Portal, target: Any) -> None:
        self._portal = portal
        self._target = target
        self._host = _Host(target)
        self._opened = False
        self._closed = False  # no more items will be asked for

    # ---- members mirrored from the async object --------------------------------------------

    def _call_blocking(self, endpoint: Endpoint[Any, R], request: Any) -> R:
        raise TypeError(f"a {type(self).__name__} has no endpoints")

    def _run_blocking(self, name: str, /, *args: Any, **kwargs: Any) -> Any:
        self._check_process()
        return self._portal.call(getattr(self._target, name), *args, **kwargs)

    def _on_portal(self, func: Callable[..., Any]) -> Callable[..., Any]:
        return functools.partial(self._portal.call, func)

    # ---- the blocking protocols ------------------------------------------------------------

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> T:
        self._check_process()
        if self._closed:
            raise StopIteration
        self._open()
        flight = _Flight()
        self._portal.post(flight, self._host.request, flight)
        try:
            return cast("T", self._portal.wait(flight))
        except StopAsyncIteration:
            self._closed = True
            raise StopIteration from None
        except BaseException:
            # The async iteration raised (and exited the async object with the exception), or
            # the caller was interrupted (the host was cancelled): either way it is over.
            self._closed = True
            raise

    def __enter__(self) -> Self:
        self._check_process()
        self._open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop early: cancel the async iteration and wait until it has unwound. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if not self._opened:
            return  # never started: nothing runs
        self._check_process()
        flight = _Flight()
        try:
            self._portal.post(flight, self._host.stop, flight)
        except ClientStateError:
            return  # the client closed: its loop cancelled everything
        self._portal.wait(flight)

    def __del__(self) -> None:
        # Reached after a bare ``for`` loop that broke out: stop the work now, like close().
        if getattr(self, "_closed", True) or not self._opened:
            return
        self._closed = True
        if self._portal.pid != os.getpid():
            return
        flight = _Flight()
        try:
            self._portal.post(flight, self._host.stop, flight)
        except ClientStateError:  # a closed client, or collected on the portal thread itself
            with contextlib.suppress(RuntimeError):
                self._portal.loop.call_soon_threadsafe(self._host.stop, flight)
            return
        with contextlib.suppress(BaseException):  # never raise out of a finalizer
            flight.lock.acquire(timeout=CANCEL_WAIT)

    def _check_process(self) -> None:
        if self._portal.pid != os.getpid():
            raise ClientStateError("this iterator belongs to the parent process")

    def _open(self) -> None:
        if not self._opened:
            flight = _Flight()
            self._portal.post(flight, self._host.start, flight)
            self._opened = True
            try:
                self._portal.wait(flight)
            except BaseException:
                self._closed = True  # entering failed (or was interrupted): nothing to iterate
                raise


class BlockingBatch(BlockingIterator[Outcome[Req]]):
    """What ``Client.swap_many`` returns: a ``Batch`` consumed from blocking code.

    Iterate it (ideally inside ``with``) for one ``Outcome`` per request, in completion order,
    as they come. Leaving the loop early stops the batch (see ``BlockingIterator``). The input
    and ``on_event`` are consumed and called on the client's portal thread: they must not block
    for long, and must not call the client.
    """

    statistics = SyncMirror(Batch.statistics)
