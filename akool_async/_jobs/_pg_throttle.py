"""Throttle sharing: one worker's throttle episode is every worker's of the batch.

The account's rate limit is one limit. When a 1005/429 begins a throttle episode in a worker's
rate controller (``_ratelimit.py``), ``ThrottleShare`` publishes it (``NOTIFY
akool_journal_throttle``, counted on the batch row), and every other worker's share hands it
to its own controller as an episode of its own (``RateController.throttled_elsewhere``): each
backs off multiplicatively from its own rate and climbs back, so the workers' rates together
settle under the limit (AIMD's fairness), instead of each worker discovering the limit alone.
"""

from __future__ import annotations

import contextlib
import logging
import math
from typing import TYPE_CHECKING, Any, Final

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from akool_async._errors import JournalError

from ._pg_db import NOW, PgDatabase, driver

if TYPE_CHECKING:
    import asyncpg

__all__ = ["ThrottleShare"]

log = logging.getLogger("akool_async")

_CHANNEL: Final = "akool_journal_throttle"


class ThrottleShare:
    """Publishes this worker's throttle episodes and takes the other workers' to its gate.

    The rate controller's episode listener runs synchronously, so an episode goes into a
    stream and a publisher task sends it; the others' arrive on a connection of its own that
    LISTENs on the channel.
    """

    def __init__(self, db: PgDatabase) -> None:
        self._db = db
        self._gate: Any = None
        self._out: MemoryObjectSendStream[float] | None = None
        self._in: MemoryObjectReceiveStream[float] | None = None
        self._listener: asyncpg.Connection | None = None
        self.published = 0
        self.received = 0

    # -- the gate (the client's RateController) ---------------------------------------------

    def attach(self, rate: Any) -> None:
        """Share ``rate``'s episodes, and give it the other workers'."""
        self._gate = rate
        rate.episode_listeners.append(self._on_local_throttle)

    def detach(self) -> None:
        rate, self._gate = self._gate, None
        if rate is not None:
            with contextlib.suppress(ValueError):
                rate.episode_listeners.remove(self._on_local_throttle)

    def _on_local_throttle(self) -> None:
        if self._out is not None:
            with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
                self._out.send_nowait(self._gate.rate() if self._gate else 0.0)

    # -- lifetime ---------------------------------------------------------------------------

    async def start(self, tg: TaskGroup) -> None:
        """Start publishing (a task in ``tg``) and listening.

        Raises:
            JournalError: the database refused the listening connection.
        """
        send, receive = anyio.create_memory_object_stream[float](math.inf)
        self._out, self._in = send, receive
        tg.start_soon(self._publisher, receive)
        await self._listen()

    def stop_publishing(self) -> None:
        """Take no more episodes (the journal is closing): the publisher ends."""
        if self._out is not None:
            self._out.close()

    def discard(self) -> None:
        """Drop what was not published (after the publisher's task is over)."""
        if self._in is not None:
            self._in.close()

    async def stop_listening(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close()

    # -- the channel ------------------------------------------------------------------------

    async def _publisher(self, receive: MemoryObjectReceiveStream[float]) -> None:
        """Publish each throttle episode of ours (with our rate then, for people reading)."""
        db = self._db
        async with receive:
            async for seconds in receive:
                try:
                    await db.execute(
                        "WITH b AS (UPDATE akool_journal_batches SET throttles=throttles + 1,"
                        f" throttled_at={NOW} WHERE batch_id=$1 RETURNING 1)"
                        " SELECT pg_notify($2, $3)",
                        db.batch_id,
                        _CHANNEL,
                        f"{seconds!r} {db.worker_id}\n{db.batch_id}",
                    )
                    self.published += 1
                except JournalError as exc:
                    log.warning("could not share a throttle: %s", exc)

    async def _listen(self) -> None:
        asyncpg = driver()
        try:
            self._listener = await asyncpg.connect(self._db.url)
            await self._listener.add_listener(_CHANNEL, self._on_notify)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise self._db.failed("cannot listen for throttles", exc) from exc

    def _on_notify(self, conn: object, pid: int, channel: str, payload: str) -> None:
        head, _, batch_id = payload.partition("\n")
        _, _, worker = head.partition(" ")
        if batch_id != self._db.batch_id or worker == self._db.worker_id or self._gate is None:
            return
        self.received += 1
        self._gate.throttled_elsewhere()
