"""The shared batch journal: one PostgreSQL database, any number of workers on one named batch.

Needs ``asyncpg`` (``pip install 'akool-async[postgres]'``), imported only when a
``postgresql://`` journal is opened.

Tables (created on first use, under an advisory lock so that workers starting together do not
race on the DDL)::

    akool_journal_batches  one row per batch_id: base URL, input digest and size, throttles
    akool_journal_workers  one row per worker process: its lease (renewed by a heartbeat)
    akool_journal_intents  one row per input request, the SQLite journal's columns plus
                           batch_id, owner (the worker holding it) and previous_owner

The batch. Every worker reads the same input (a manifest) and loads it: the first worker to
insert the batch row writes every request as a ``queued`` row in the same transaction; the
others block on that insert until it commits, then compare the input's digest (sha256 over
the request keys in order) with the stored one and refuse a different input with
``JournalError``.

Claims. A worker takes requests with ``SELECT ... FOR UPDATE SKIP LOCKED`` (so concurrent
claims never wait for each other or take the same row), in input order, a few at a time, and
sets itself as their ``owner``. A row can be claimed when it is not final and has no owner, or
its owner's lease has run out (the owner died or lost the database)::

    queued, unsent          -> submit it (nothing was sent, or provably nothing acted)
    submitted, timed_out    -> re-attach to its job: poll it and finish it
    submitting              -> ambiguous: the dead owner's send may have reached AKOOL

The same before/after-send states as SQLite: ``submitting`` is committed before the request
goes out, and only by the owner while its lease is live (checked by the database in the same
UPDATE), so once another worker may have taken a row over, its old owner can no longer start
a send for it; ``submitted`` with the job id right after the answer. Leases are times on the
database server's clock, so the workers' clocks never need to agree.

Finishing. A worker stops asking for work when nothing is claimable and no other worker holds
a request in flight (queued-and-claimed, submitting or submitted): as long as one does, it
could still die, and its requests would need somebody to take them over. On a clean exit a
worker ends its lease at once, so what it held is claimable without waiting.

Throttles. The account's rate limit is one limit, so one worker's throttle is everybody's.
When a 1005/429 begins a throttle episode in a worker's rate controller (``_ratelimit.py``),
the journal publishes it (``NOTIFY akool_journal_throttle``, counted on the batch row), and
every other worker's controller takes it as an episode of its own
(``RateController.throttled_elsewhere``): each backs off multiplicatively from its own rate
and climbs back, so the workers' rates together settle under the limit (AIMD's fairness),
instead of each worker discovering the limit alone.

The parts. ``PgJournal`` is what a batch holds (``_journals.JournalBackend``); it is made of
one ``PgDatabase`` (``_pg_db.py``: the pool, the tables, the SQL pieces all parts share) and
collaborators on it, one per concern: ``PgBatch`` joins the batch (``_pg_batch.py``),
``Lease`` and ``ClaimDesk`` hold and hand out requests (``_pg_claims.py``), ``RowWriter``
writes their rows (``_pg_rows.py``), ``ThrottleShare`` shares throttles (``_pg_throttle.py``).
``read_batch_status`` reads a batch from outside (``_pg_status.py``).
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import uuid
from collections.abc import Collection, Mapping, Sequence
from types import TracebackType
from typing import Any, Final, Self

import anyio
from anyio.abc import TaskGroup

from akool_async._errors import JournalError

from ._journal import JournalRecord, JournalState
from ._pg_batch import PgBatch, input_digest
from ._pg_claims import CLAIMABLE, Claim, ClaimDesk, Lease
from ._pg_db import PgDatabase, describe
from ._pg_rows import RowWriter
from ._pg_status import BatchStatus, WorkerStatus, read_batch_status
from ._pg_throttle import ThrottleShare

__all__ = [
    "DEFAULT_LEASE",
    "BatchStatus",
    "Claim",
    "PgJournal",
    "WorkerStatus",
    "input_digest",
    "read_batch_status",
]

#: Seconds a worker's claims stay its own without a heartbeat.
DEFAULT_LEASE: Final = 30.0


def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class PgJournal:
    """The shared record of one named batch in PostgreSQL; an async context manager.

    Args:
        url: ``postgresql://user:password@host:port/database`` (asyncpg's DSN).
        base_url: The API base URL; a batch written against another server is refused.
        batch_id: The batch's name: every worker of one batch uses the same one.
        lease: Seconds this worker's claims survive without a heartbeat (renewed every
            third of it); after a crash its requests return to the others this much later.
        worker_id: This worker's name in the journal (default ``host:pid:random``).
        resubmit_ambiguous: Claim ``ambiguous`` rows too, to submit them again.

    Raises:
        JournalError: (on enter) the database is unreachable or not a journal of this schema,
            or (on ``load``) the batch belongs to another server or another input.
    """

    claims = True

    def __init__(
        self,
        url: str,
        *,
        base_url: str,
        batch_id: str,
        lease: float = DEFAULT_LEASE,
        worker_id: str | None = None,
        resubmit_ambiguous: bool = False,
    ) -> None:
        if not (isinstance(lease, int | float) and math.isfinite(lease) and lease > 0):
            raise JournalError(f"the lease must be a positive number of seconds, got {lease!r}")
        lease = float(lease)
        self._db = PgDatabase(url, batch_id=batch_id, worker_id=worker_id or _worker_id())
        self._batch = PgBatch(self._db, base_url=base_url, lease=lease)
        self._lease = Lease(self._db, lease)
        self._desk = ClaimDesk(
            self._db,
            claimable=(*CLAIMABLE, "ambiguous") if resubmit_ambiguous else CLAIMABLE,
            poll_interval=min(1.0, lease / 4),
        )
        self._rows = RowWriter(self._db)
        self._throttles = ThrottleShare(self._db)
        self._tg: TaskGroup | None = None
        self._loaded = False
        self._entered = False

    def __repr__(self) -> str:
        return (
            f"PgJournal({describe(self.url)!r}, batch_id={self.batch_id!r}, "
            f"worker_id={self.worker_id!r})"
        )

    # -- what it is, and what it did (for tests and benchmarks) -----------------------------

    @property
    def url(self) -> str:
        return self._db.url

    @property
    def batch_id(self) -> str:
        return self._db.batch_id

    @property
    def worker_id(self) -> str:
        return self._db.worker_id

    @property
    def lease(self) -> float:
        return self._lease.seconds

    @property
    def heartbeat_scope(self) -> anyio.CancelScope:
        """Cancelling it stops the heartbeat (as a hung worker's would stop): tests use it."""
        return self._lease.heartbeat_scope

    @property
    def poll_interval(self) -> float:
        """The poll interval while waiting for others' requests (or their leases) to end."""
        return self._desk.poll_interval

    @poll_interval.setter
    def poll_interval(self, seconds: float) -> None:
        self._desk.poll_interval = seconds

    @property
    def commits(self) -> int:
        return self._db.commits

    @commits.setter
    def commits(self, value: int) -> None:
        self._db.commits = value

    @property
    def writes(self) -> int:
        return self._db.writes

    @writes.setter
    def writes(self, value: int) -> None:
        self._db.writes = value

    @property
    def claim_rounds(self) -> int:
        return self._desk.claim_rounds

    @property
    def claimed(self) -> int:
        return self._desk.claimed

    @property
    def throttles_published(self) -> int:
        return self._throttles.published

    @property
    def throttles_received(self) -> int:
        return self._throttles.received

    # -- lifetime ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._entered:
            raise JournalError("a PgJournal can be entered only once")
        self._entered = True
        await self._db.open()
        # The heartbeat and the throttle publisher run here once the batch is loaded.
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        self._throttles.stop_publishing()
        try:
            if self._tg is not None:
                self._tg.cancel_scope.cancel()
                await self._tg.__aexit__(None, None, None)
        finally:
            self._throttles.discard()
            with anyio.CancelScope(shield=True):
                await self._release()
        return None

    async def _release(self) -> None:
        """Stop listening, end the lease (a clean exit), close the pool."""
        try:
            await self._throttles.stop_listening()
            if self._loaded and self._db.opened:
                # A clean exit ends the lease now: what we hold is claimable at once.
                with contextlib.suppress(JournalError):
                    await self._lease.end()
        finally:
            await self._db.close()

    # -- the batch --------------------------------------------------------------------------

    async def load(self, keys: Sequence[tuple[str, str, str]]) -> None:
        """Join the batch with this input: create it, or check that it is the same input.

        Args:
            keys: ``(key, canonical JSON, kind)`` of every request, in input order.

        Raises:
            JournalError: the batch exists with another input or against another server.
        """
        await self._batch.join(keys)
        self._loaded = True
        assert self._tg is not None
        self._tg.start_soon(self._lease.heartbeat)
        await self._throttles.start(self._tg)

    # -- claims -----------------------------------------------------------------------------

    async def claim(self) -> Claim | None:
        """The next request for this worker, or None when the batch needs nobody any more.

        Waits (polling every ``poll_interval``) while nothing is claimable but another worker
        still holds requests in flight: if it dies, they come to the survivors.
        """
        return await self._desk.claim()

    async def _claim_some(self) -> list[Claim]:
        """Lease up to a round's rows: fresh ones first, else ones whose owner is gone."""
        return await self._desk.claim_some()

    async def admit(self, key: str) -> tuple[int, JournalRecord | None]:
        """Not used: a shared batch hands requests out with ``claim()``."""
        raise JournalError("a shared journal hands requests out with claim(), not admit()")

    # -- the per-request writes (as in the SQLite journal) ----------------------------------

    async def begin_submit(
        self,
        key: str,
        occurrence: int,
        *,
        index: int,
        kind: str,
        request: str,
        ref: str | None = None,
    ) -> None:
        """Durably record that the request is about to be sent, if this worker still owns it.

        Raises:
            JournalError: this worker's lease ran out (another worker may own the request).
        """
        await self._rows.begin_submit(key, occurrence, index=index, ref=ref)

    async def record_unsubmitted(
        self,
        key: str,
        occurrence: int,
        *,
        index: int,
        kind: str,
        request: str,
        state: JournalState,
        error_type: str | None,
        error_message: str | None,
        error_code: int | None = None,
    ) -> None:
        """Record a request refused (or stopped) before anything was sent."""
        await self._rows.record_unsubmitted(
            key,
            occurrence,
            state=state,
            error_type=error_type,
            error_message=error_message,
            error_code=error_code,
        )

    async def update(
        self, key: str, occurrence: int, state: JournalState, **fields: object
    ) -> None:
        """Move an existing row to ``state`` and set the given columns.

        Raises:
            JournalError: the row does not exist, or a column name is unknown.
        """
        await self._rows.update(key, occurrence, state, fields)

    async def known_jobs(self, job_ids: Collection[str]) -> set[str]:
        """Those of ``job_ids`` that are the job of a row of this batch no live worker holds.

        (The batch deletes the ``.part`` files of these: in a shared directory, a live
        worker's download in progress is not a leftover.)
        """
        return await self._rows.known_jobs(job_ids)

    async def counts(self) -> Mapping[str, int]:
        """Rows per state, over the whole batch (every worker's)."""
        return await self._rows.counts()

    # -- the shared rate limit --------------------------------------------------------------

    def attach_gate(self, rate: Any) -> None:
        """Share throttle episodes with the other workers through ``rate`` (the client's
        ``RateController``): this worker's episodes are published, and each of the others'
        is one for this worker's controller too (``throttled_elsewhere``), so every worker
        backs off multiplicatively from the rate it had, and the workers' rates together
        settle under the account's one limit (AIMD's fairness, across processes).
        """
        self._throttles.attach(rate)

    def detach_gate(self) -> None:
        self._throttles.detach()
