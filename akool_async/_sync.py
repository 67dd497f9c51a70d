"""``Client``: the blocking facade over ``AsyncClient``, through one portal thread per client.

Async is the implementation. A ``Client`` owns one event loop running in one daemon thread (its
*portal*) and, on that loop, one open ``AsyncClient``, created and entered there (so its aiohttp
session belongs to that loop). Every public member is derived from the async definitions, one
line each, and every call is one ``portal.call(...)``:

* the ``Operation`` descriptors of ``AsyncClient`` are shared as they are: on a ``Client`` (a
  ``BlockingBinder``) they bind to ``BlockingOperation``s, which end in ``_call_blocking``;
* async methods are ``BlockingMirror(AsyncClient.wait)``, sync ones
  ``SyncMirror(AsyncClient.statistics)`` (run on the portal too: the counters live there),
  properties ``AttributeMirror(AsyncClient.retry)``, ``with_options`` is a ``ViewMirror`` (it
  returns a blocking view), and methods returning an async iterator are ``IteratorMirror``\\ s
  (they return a ``BlockingIterator``, e.g. ``swap_many`` a ``BlockingBatch``).

Lifetime. ``Client(...)`` starts its portal and opens the ``AsyncClient`` at once, so bad
arguments raise ``ValidationError`` from the constructor exactly as ``AsyncClient(...)`` does,
and the client is usable without ``with``; then ``close()`` is required. ``with Client(...) as
client:`` closes on exit. ``close()`` is idempotent; a call after it raises ``ClientStateError``.

The portal is what anyio's ``start_blocking_portal`` does (``anyio.run`` on asyncio in a daemon
thread), with two differences that matter here:

* one thread hop each way per call. anyio's ``portal.call`` waits for its task to be spawned,
  then for its result: ~70-110 us for a call doing nothing, on a 2-vCPU VM. Here the caller
  posts the call with ``loop.call_soon_threadsafe`` and sleeps on a lock that the call's task
  releases: ~20-25 us (``benchmarks/bench_sync.py``). On 3.12+ that task starts eagerly;
* no shutdown step ever blocks from a finalizer: a forgotten client's ``__del__`` only posts
  its close to the loop, and the daemon thread never holds up interpreter exit. An ``atexit``
  hook closes the clients still open at exit properly (with a ``ResourceWarning``).

Threads, loops, forks, interrupts:

* many threads may share one client: posting is thread-safe, opening and closing are locked;
* calling from inside a running event loop works (a notebook cell, an async framework calling
  legacy code): the call runs on the portal's loop, not the caller's, and just blocks the caller;
* after ``os.fork()`` the child re-creates its portal and ``AsyncClient`` on first use. The
  parent's are left untouched and deliberately never finalized in the child: closing their
  sockets there would unregister them from the epoll instance that parent and child share, and a
  TLS shutdown would write into the parent's connections;
* if the waiting thread is interrupted (``KeyboardInterrupt`` from Ctrl-C, or any exception a
  signal handler raises), the operation is cancelled on the portal and the interrupt propagates
  once the operation has unwound (after at most ``CANCEL_WAIT`` seconds). The client stays open
  and usable.
"""

from __future__ import annotations

import _thread
import asyncio
import atexit
import collections
import contextlib
import contextvars
import functools
import inspect
import itertools
import logging
import os
import sys
import threading
import warnings
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Future
from types import TracebackType
from typing import (
    Any,
    ClassVar,
    Concatenate,
    Final,
    Generic,
    Never,
    ParamSpec,
    Protocol,
    Self,
    TypeVar,
    cast,
    overload,
)

import anyio

from ._client import AsyncClient
from ._endpoints import BlockingBinder, BlockingMirror, Endpoint
from ._errors import ClientStateError, ValidationError
from ._events import Outcome, SwapRequest
from ._orchestrator import Batch

__all__ = [
    "CANCEL_WAIT",
    "CLOSE_WAIT",
    "AttributeMirror",
    "BlockingBatch",
    "BlockingIterator",
    "Client",
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
C = TypeVar("C", bound="Client")
Req = TypeVar("Req", bound=SwapRequest)

#: Seconds an interrupted call waits for its cancelled operation to unwind on the portal.
CANCEL_WAIT: Final = 5.0
#: Seconds ``close()`` (and the exit hook) waits for the client to close and its thread to end.
CLOSE_WAIT: Final = 10.0

_logger = logging.getLogger("akool_async")
_thread_numbers = itertools.count(1)


# --------------------------------------------------------------------------------------------
# The portal: an asyncio loop in a daemon thread, and the one-hop call into it


class _Flight:
    """One call crossing into the portal; the caller sleeps on ``lock`` until it is finished."""

    __slots__ = ("done", "error", "lock", "posted", "task", "value")

    def __init__(self) -> None:
        self.lock = _thread.allocate_lock()
        self.lock.acquire()
        self.done = False
        self.value: Any = None
        self.error: BaseException | None = None
        self.task: asyncio.Task[Any] | None = None  # what cancelling the call cancels
        self.posted: set[_Flight] | None = None

    def finish(self, value: Any = None, error: BaseException | None = None) -> None:
        """Hand the outcome to the waiting caller (the first time; later calls are ignored)."""
        if self.done:
            return
        if self.posted is not None:
            self.posted.discard(self)
        self.value, self.error, self.done = value, error, True
        self.lock.release()


class _Portal:
    """An asyncio event loop run by ``anyio.run`` in a daemon thread, and calls into it."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.stopping = False
        self._posted: set[_Flight] = set()
        ready: Future[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = Future()
        self.thread = threading.Thread(
            target=self._main,
            args=(ready,),
            name=f"akool-async-portal-{next(_thread_numbers)}",
            daemon=True,
        )
        self.thread.start()
        self.loop, self._stop = ready.result()
        self.ident = self.thread.ident

    def _main(self, ready: Future[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]]) -> None:
        async def serve() -> None:
            loop = asyncio.get_running_loop()
            stop: asyncio.Future[None] = loop.create_future()
            ready.set_result((loop, stop))
            await stop

        try:
            anyio.run(serve, backend="asyncio")
        except BaseException as exc:  # this thread has nobody to raise to
            if not ready.done():
                ready.set_exception(exc)
            else:
                _logger.exception("the blocking client's event loop failed")
        finally:
            # Calls posted while the loop was closing never ran: release their callers.
            self.stopping = True
            for flight in list(self._posted):
                flight.finish(error=ClientStateError("the client was closed during the call"))

    # ---- the caller's side (any thread but the loop's) --------------------------------------

    def call(self, func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Run ``func(*args, **kwargs)`` on the loop (awaiting what it returns, if awaitable)."""
        flight = _Flight()
        self.post(flight, self._start, flight, func, args, kwargs)
        return self.wait(flight)

    def post(self, flight: _Flight, callback: Callable[..., None], /, *args: Any) -> None:
        """Run ``callback(*args)`` on the loop soon; ``flight`` is released if it never runs.

        Raises:
            ClientStateError: the loop is closing, or this is the loop's own thread.
        """
        if self.stopping:
            raise ClientStateError("this Client is closed; create a new one")
        if threading.get_ident() == self.ident:
            raise ClientStateError(
                "a blocking Client cannot be called from its own event loop thread "
                "(from an on_event hook, for instance): it would wait for itself"
            )
        flight.posted = self._posted
        self._posted.add(flight)
        try:
            # A fresh context: the caller's context variables (sniffio's, an outer loop's)
            # must not leak into the portal's tasks.
            self.loop.call_soon_threadsafe(callback, *args, context=contextvars.Context())
        except RuntimeError:  # the loop is closed
            self._posted.discard(flight)
            raise ClientStateError("this Client is closed; create a new one") from None

    def wait(self, flight: _Flight, timeout: float | None = None) -> Any:
        """Sleep until ``flight`` is finished; return its value or raise its error.

        Raises:
            TimeoutError: ``timeout`` seconds passed first (the operation is cancelled).
            ClientStateError: the client closed while the operation ran.
        """
        try:
            if not flight.lock.acquire(timeout=-1 if timeout is None else timeout):
                raise TimeoutError(f"no answer from the client's event loop within {timeout} s")
        except BaseException:
            # Interrupted (KeyboardInterrupt from a signal handler...) or timed out: cancel the
            # operation on the loop, let it unwind, then let the exception propagate.
            if not flight.done:
                self.cancel(flight, wait=CANCEL_WAIT)
            raise
        error = flight.error
        if error is None:
            return flight.value
        try:
            if isinstance(error, asyncio.CancelledError) and self.stopping:
                raise ClientStateError("the client was closed during the call") from None
            raise error
        finally:
            del error, flight

    def cancel(self, flight: _Flight, *, wait: float) -> None:
        """Cancel ``flight``'s task and wait up to ``wait`` seconds for it to unwind."""
        with contextlib.suppress(RuntimeError):  # the loop is closed: nothing runs any more
            self.loop.call_soon_threadsafe(self._cancel, flight, context=contextvars.Context())
            if wait > 0 and threading.get_ident() != self.ident:
                flight.lock.acquire(timeout=wait)

    def stop_soon(self) -> None:
        """Ask the loop to end (cancelling what still runs there); never blocks. Any thread."""
        self.stopping = True
        with contextlib.suppress(RuntimeError):  # the loop is closed already
            self.loop.call_soon_threadsafe(self._set_stop)

    def stop(self, timeout: float) -> None:
        """End the loop and wait up to ``timeout`` seconds for its thread."""
        self.stop_soon()
        if threading.get_ident() != self.ident:
            self.thread.join(timeout)

    # ---- on the loop ------------------------------------------------------------------------

    def _start(
        self, flight: _Flight, func: Callable[..., Any], args: tuple[Any, ...], kwargs: Any
    ) -> None:
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:
            flight.finish(error=exc)
            return
        if not inspect.isawaitable(result):
            flight.finish(result)
        elif sys.version_info >= (3, 12):
            # Run the first step now instead of one loop iteration later (~20 us per call).
            flight.task = asyncio.Task(
                self._drive(flight, result), loop=self.loop, eager_start=True
            )
        else:
            flight.task = self.loop.create_task(self._drive(flight, result))

    @staticmethod
    async def _drive(flight: _Flight, awaitable: Awaitable[Any]) -> None:
        try:
            value = await awaitable
        except BaseException as exc:  # forwarded to the caller, whatever it is
            flight.finish(error=exc)
        else:
            flight.finish(value)

    @staticmethod
    def _cancel(flight: _Flight) -> None:
        if flight.task is not None:
            flight.task.cancel()

    def _set_stop(self) -> None:
        if not self._stop.done():
            self._stop.set_result(None)


# --------------------------------------------------------------------------------------------
# One process's portal plus the AsyncClient living on it


class _Runtime:
    """A portal and the open ``AsyncClient`` created on its loop (one per client and process).

    One host task enters the client and, when asked, closes it (``async with client: ...``):
    the client's task group (shared poller, batches) must be left by the task that entered it.
    When the host ends it stops the portal, so the loop lives exactly as long as the client.
    """

    def __init__(
        self, factory: type[AsyncClient], kwargs: dict[str, Any], settings: dict[str, Any]
    ) -> None:
        self.portal = portal = _Portal()
        self.pid = portal.pid
        self._closers: list[_Flight] = []
        self._close_requested: asyncio.Event | None = None
        try:
            self.client: AsyncClient = portal.call(functools.partial(factory, **kwargs))
            for name, value in settings.items():
                portal.call(setattr, self.client, name, value)
            opened = _Flight()
            portal.post(opened, self._open, opened)
            portal.wait(opened)
        except BaseException:
            portal.stop(CLOSE_WAIT)
            raise

    def close(self) -> None:
        """Close the ``AsyncClient`` on the loop, then end the loop and join its thread."""
        flight = _Flight()
        try:
            self.portal.post(flight, self._request_close, flight)
        except ClientStateError:
            return  # the loop is gone already
        try:
            self.portal.wait(flight, CLOSE_WAIT)
        finally:
            self.portal.stop(CLOSE_WAIT)

    def close_soon(self) -> None:
        """Close the ``AsyncClient`` and end the loop without waiting (from any thread)."""
        with contextlib.suppress(RuntimeError):  # the loop is closed already
            self.portal.loop.call_soon_threadsafe(
                self._request_close, None, context=contextvars.Context()
            )

    # ---- on the loop ------------------------------------------------------------------------

    def _open(self, opened: _Flight) -> None:
        self._close_requested = asyncio.Event()
        opened.task = asyncio.get_running_loop().create_task(self._host(opened))

    def _request_close(self, flight: _Flight | None) -> None:
        if flight is not None:
            self._closers.append(flight)
        if self._close_requested is not None:
            self._close_requested.set()

    async def _host(self, opened: _Flight) -> None:
        client = self.client
        error: BaseException | None = None
        try:
            try:
                await client.__aenter__()
            except BaseException as exc:
                opened.finish(error=exc)
                await client.aclose()  # whatever the half-open client holds
                return
            opened.finish()
            assert self._close_requested is not None
            try:
                await self._close_requested.wait()
            finally:
                await client.aclose()
        except BaseException as exc:  # handed to whoever asked for the close
            error = exc
        finally:
            for flight in self._closers:
                flight.finish(error=error)
            self.portal.stop_soon()


#: Every ``_Core`` alive, for the fork and exit hooks.
_LIVE: Final[weakref.WeakSet[_Core]] = weakref.WeakSet()
#: Runtimes a forked child inherited: kept forever and never finalized (see the module doc).
_ABANDONED: Final[list[_Runtime]] = []


def _abandon(runtime: _Runtime) -> None:
    """Keep a runtime inherited from the parent process alive for good, and never touch it."""
    _ABANDONED.append(runtime)
    if len(_ABANDONED) == 1:
        try:
            import ctypes  # only ever needed in a forked child

            # One reference nobody owns: the list outlives even the interpreter's final
            # clean-up, which would otherwise close the parent's sockets from the child.
            ctypes.pythonapi.Py_IncRef(ctypes.py_object(_ABANDONED))
        except (ImportError, AttributeError):  # not CPython: the list is the best we can do
            pass


class _Core:
    """What a client and its ``with_options`` views share: arguments, lock and runtime."""

    def __init__(self, factory: type[AsyncClient], kwargs: dict[str, Any]) -> None:
        self.factory = factory
        self.kwargs = kwargs
        #: Attributes set through the client (``poll_config``): replayed on a re-created client.
        self.settings: dict[str, Any] = {}
        self.lock = threading.Lock()
        self.closed = False
        self.runtime: _Runtime | None = _Runtime(factory, kwargs, self.settings)
        #: The newest ``AsyncClient``, read for configuration without the portal.
        self.template: AsyncClient = self.runtime.client
        _LIVE.add(self)

    def current(self) -> _Runtime:
        """This process's runtime (re-created on first use after a fork); raises once closed."""
        runtime = self.runtime
        if runtime is not None and runtime.pid == os.getpid():
            return runtime
        with self.lock:
            if self.closed:
                raise ClientStateError("this Client is closed; create a new one")
            runtime = self.runtime
            if runtime is None or runtime.pid != os.getpid():
                if runtime is not None:  # forked without the at-fork hook
                    self.runtime = None
                    _abandon(runtime)
                runtime = _Runtime(self.factory, self.kwargs, self.settings)
                self.runtime, self.template = runtime, runtime.client
            return runtime

    def live_runtime(self) -> _Runtime | None:
        """The runtime if this process opened it and it is not closed, else None."""
        runtime = self.runtime
        return runtime if runtime is not None and runtime.pid == os.getpid() else None

    def close(self) -> None:
        """Close this process's runtime, if any (a parent's is left alone). Idempotent."""
        with self.lock:
            self.closed = True
            runtime, self.runtime = self.runtime, None
        if runtime is not None and runtime.pid == os.getpid():
            runtime.close()

    def forget_after_fork(self) -> None:
        """In a forked child: drop the parent's runtime (kept, untouched) and its lock."""
        self.lock = threading.Lock()
        runtime, self.runtime = self.runtime, None
        if runtime is not None:
            _abandon(runtime)


def _after_fork_in_child() -> None:
    for core in list(_LIVE):
        core.forget_after_fork()


def _close_at_exit() -> None:
    """Close the clients still open (their threads are daemons: exit never waits for them)."""
    forgotten = [core for core in list(_LIVE) if not core.closed and core.live_runtime()]
    for core in forgotten:
        try:
            core.close()
        except Exception:
            _logger.debug("closing a forgotten Client at exit failed", exc_info=True)
    if forgotten:  # warned after closing: an error filter must not leave a client open
        warnings.warn(
            f"{len(forgotten)} akool_async Client(s) never closed; closed at exit",
            ResourceWarning,
            stacklevel=1,
        )


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_close_at_exit)


# --------------------------------------------------------------------------------------------
# Mirrors: how a blocking class derives its members from the async definitions


class _Proxy(Protocol):
    def _run_blocking(self, name: str, /, *args: Any, **kwargs: Any) -> Any: ...
    def _on_portal(self, func: Callable[..., Any]) -> Callable[..., Any]: ...


class _Attributes(Protocol):
    def _read(self, name: str) -> Any: ...
    def _write(self, name: str, value: Any) -> None: ...


def _bound_signature(method: Callable[..., Any]) -> inspect.Signature:
    """The signature of ``method`` without ``self``."""
    signature = inspect.signature(method)
    return signature.replace(parameters=tuple(signature.parameters.values())[1:])


class _Mirror:
    """Shared by the mirrors: the name check and the bound function's metadata."""

    name: str
    __signature__: inspect.Signature

    def _describe(self, method: Callable[..., Any], returns: str | None = None) -> None:
        self.name = method.__name__
        self.__doc__ = method.__doc__
        signature = _bound_signature(method)
        self.__signature__ = (
            signature if returns is None else signature.replace(return_annotation=returns)
        )

    def __set_name__(self, owner: type[Any], name: str) -> None:
        if name != self.name:
            raise TypeError(f"mirror of {self.name!r} bound under the name {name!r}")

    def _bind(self, func: Callable[..., Any]) -> Callable[..., Any]:
        bound = functools.partial(func, self.name)
        bound.__doc__ = self.__doc__
        bound.__signature__ = self.__signature__  # type: ignore[attr-defined]
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
    def __get__(self, obj: Client | None, owner: type[Any] | None = None) -> Any:
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
    def __get__(self, obj: Client, owner: type[Any] | None = None) -> Callable[P, BI]: ...
    def __get__(self, obj: Client | None, owner: type[Any] | None = None) -> Any:
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


# --------------------------------------------------------------------------------------------
# The client


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
    get_results = BlockingMirror(AsyncClient.get_results)
    delete_results = BlockingMirror(AsyncClient.delete_results)
    get_credit = BlockingMirror(AsyncClient.get_credit)
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
