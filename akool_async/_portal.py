"""The portal behind a blocking ``Client``: an event loop in a daemon thread, and calls into it.

A ``Client`` owns one ``_Core`` (shared with its ``with_options`` views), which owns this
process's ``_Runtime``: one ``_Portal`` (an asyncio loop run by ``anyio.run`` in a daemon thread)
and, on that loop, one open ``AsyncClient``, created and entered there (so its aiohttp session
belongs to that loop). Each call crosses into the loop as one ``_Flight``.

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
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import Any, Final

import anyio

from ._client import AsyncClient
from ._errors import ClientStateError
from ._speedups import loop_factory

__all__ = ["CANCEL_WAIT", "CLOSE_WAIT"]

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
            # uvloop when the speedups extra is installed: this loop is the SDK's own.
            factory = loop_factory()
            options = {} if factory is None else {"loop_factory": factory}
            anyio.run(serve, backend="asyncio", backend_options=options)
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
