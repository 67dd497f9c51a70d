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
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import socket
import uuid
from collections.abc import Collection, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self

import anyio
import attrs
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ._errors import JournalError
from ._journal import _COLUMNS as _RECORD_COLUMNS  # one list of a record's columns
from ._journal import _UPDATABLE, JournalRecord, JournalState
from ._journals import url_passwords, without_passwords
from ._redact import redact

if TYPE_CHECKING:
    import asyncpg

__all__ = [
    "DEFAULT_LEASE",
    "BatchStatus",
    "Claim",
    "PgJournal",
    "WorkerStatus",
    "input_digest",
    "read_batch_status",
]

log = logging.getLogger("akool_async")

#: Seconds a worker's claims stay its own without a heartbeat.
DEFAULT_LEASE: Final = 30.0
SCHEMA_VERSION: Final = 1
_CHANNEL: Final = "akool_journal_throttle"
#: Rows claimed per round trip (a worker asks again when these are handed out).
_CLAIM_BATCH: Final = 16
#: Not final: a row in one of these states still needs a worker.
_IN_FLIGHT: Final = ("queued", "submitting", "submitted")
_CLAIMABLE: Final = ("queued", "unsent", "submitting", "submitted", "timed_out")
#: Constant key of the advisory lock held while creating the tables ("AKJ1").
_DDL_LOCK: Final = 0x414B4A31

_SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS akool_journal_batches (
    batch_id       text PRIMARY KEY,
    schema_version integer NOT NULL,
    base_url       text NOT NULL,
    digest         text NOT NULL,   -- sha256 over the input's request keys, in order
    total          integer NOT NULL,
    created_at     double precision NOT NULL,
    throttled_at   double precision NOT NULL DEFAULT 0,  -- the last shared throttle episode
    throttles      integer NOT NULL DEFAULT 0
)""",
    """CREATE TABLE IF NOT EXISTS akool_journal_workers (
    batch_id     text NOT NULL REFERENCES akool_journal_batches ON DELETE CASCADE,
    worker_id    text NOT NULL,
    host         text NOT NULL,
    pid          integer NOT NULL,
    started_at   double precision NOT NULL,
    heartbeat_at double precision NOT NULL,
    lease_until  double precision NOT NULL,
    claims       integer NOT NULL DEFAULT 0,
    PRIMARY KEY (batch_id, worker_id)
)""",
    """CREATE TABLE IF NOT EXISTS akool_journal_intents (
    batch_id       text NOT NULL REFERENCES akool_journal_batches ON DELETE CASCADE,
    key            text NOT NULL,
    occurrence     integer NOT NULL,
    idx            integer NOT NULL,
    kind           text NOT NULL,
    request        text NOT NULL,
    state          text NOT NULL,
    attempts       integer NOT NULL DEFAULT 0,
    job_id         text,
    job_ref        text,
    media          text,
    job_url        text,
    status         integer,
    result         text,
    error_type     text,
    error_message  text,
    error_code     integer,
    path           text,
    sha256         text,
    size           bigint,
    ref            text,
    updated_at     double precision NOT NULL,
    owner          text,
    previous_owner text,
    claims         integer NOT NULL DEFAULT 0,
    PRIMARY KEY (batch_id, key, occurrence)
)""",
    "CREATE UNIQUE INDEX IF NOT EXISTS akool_journal_intents_idx"
    " ON akool_journal_intents (batch_id, idx)",
    "CREATE INDEX IF NOT EXISTS akool_journal_intents_state"
    " ON akool_journal_intents (batch_id, state, idx)",
)

_SELECT: Final = ", ".join(f"i.{name}" for name in _RECORD_COLUMNS)
_LOAD_COLUMNS: Final = (
    "batch_id",
    "key",
    "occurrence",
    "idx",
    "kind",
    "request",
    "state",
    "updated_at",
)
_NOW: Final = "extract(epoch from clock_timestamp())::float8"


def _record(row: Mapping[str, Any]) -> JournalRecord:
    values = {name: row[name] for name in _RECORD_COLUMNS}
    values["index"] = values.pop("idx")
    return JournalRecord(**values)


def input_digest(keys: Sequence[str]) -> str:
    """The digest that names a batch's input: sha256 over its request keys, in order."""
    digest = hashlib.sha256()
    for key in keys:
        digest.update(key.encode("ascii"))
        digest.update(b"\n")
    return digest.hexdigest()


@attrs.frozen(kw_only=True)
class Claim:
    """One request leased to this worker: its position, occurrence and row."""

    index: int
    occurrence: int
    #: None when the request was never tried (``queued``): submit it.
    record: JournalRecord | None


def _asyncpg() -> Any:
    try:
        import asyncpg
    except ImportError:  # pragma: no cover - the test extra installs it
        raise JournalError(
            "a postgresql:// journal needs asyncpg: pip install '.[postgres]' in an akool-async"
            " checkout, or pip install asyncpg"
        ) from None
    return asyncpg


def _where(url: str) -> str:
    """The URL without its passwords, for messages."""
    return redact(without_passwords(url))


def _detail(exc: BaseException, url: str) -> str:
    """A driver error's text for a message: no registered secret, none of ``url``'s passwords."""
    text = str(exc)
    for password in url_passwords(url):
        text = text.replace(password, "***")
    return redact(text)


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
        self.url = url
        self.batch_id = batch_id
        self.worker_id = worker_id or _worker_id()
        self.lease = float(lease)
        self._base_url = base_url.rstrip("/")
        self._claimable = (*_CLAIMABLE, "ambiguous") if resubmit_ambiguous else _CLAIMABLE
        self._pool: asyncpg.Pool | None = None
        self._listener: asyncpg.Connection | None = None
        self._tg: TaskGroup | None = None
        self._claimed: list[Claim] = []
        self._claim_lock = anyio.Lock()
        self._loaded = False
        self._gate: Any = None
        self._throttles_out: MemoryObjectSendStream[float] | None = None
        self._throttles_in: MemoryObjectReceiveStream[float] | None = None
        self._entered = False
        #: Cancelling it stops the heartbeat (as a hung worker's would stop): tests use it.
        self.heartbeat_scope = anyio.CancelScope()
        #: The poll interval while waiting for others' requests (or their leases) to end.
        self.poll_interval = min(1.0, self.lease / 4)
        self.commits = 0
        self.writes = 0
        self.claim_rounds = 0
        self.claimed = 0
        self.throttles_published = 0
        self.throttles_received = 0

    def __repr__(self) -> str:
        return (
            f"PgJournal({_where(self.url)!r}, batch_id={self.batch_id!r}, "
            f"worker_id={self.worker_id!r})"
        )

    # -- lifetime ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._entered:
            raise JournalError("a PgJournal can be entered only once")
        self._entered = True
        asyncpg = _asyncpg()
        try:
            self._pool = await asyncpg.create_pool(
                self.url, min_size=1, max_size=8, command_timeout=60
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as exc:
            raise JournalError(
                f"cannot open the journal database {_where(self.url)!r}: {_detail(exc, self.url)}"
            ) from None
        try:
            await self._create_schema()
        except BaseException:
            await self._pool.close()
            raise
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
        if self._throttles_out is not None:
            self._throttles_out.close()
        try:
            if self._tg is not None:
                self._tg.cancel_scope.cancel()
                await self._tg.__aexit__(None, None, None)
        finally:
            if self._throttles_in is not None:
                self._throttles_in.close()
            with anyio.CancelScope(shield=True):
                await self._release()
        return None

    async def _release(self) -> None:
        """Stop listening, end the lease (a clean exit), close the pool."""
        try:
            if self._listener is not None:
                with contextlib.suppress(Exception):
                    await self._listener.close()
            if self._loaded and self._pool is not None:
                # A clean exit ends the lease now: what we hold is claimable at once.
                with contextlib.suppress(JournalError):
                    await self._execute(
                        f"UPDATE akool_journal_workers SET lease_until={_NOW}"
                        " WHERE batch_id=$1 AND worker_id=$2",
                        self.batch_id,
                        self.worker_id,
                    )
        finally:
            if self._pool is not None:
                await self._pool.close()

    def _failed(self, what: str, exc: BaseException) -> JournalError:
        return JournalError(
            f"journal {_where(self.url)!r} (batch {self.batch_id!r}) {what}: "
            f"{_detail(exc, self.url)}"
        )

    async def _execute(self, query: str, *args: Any) -> str:
        assert self._pool is not None
        asyncpg = _asyncpg()
        try:
            status: str = await self._pool.execute(query, *args)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise self._failed("write failed", exc) from exc
        self.commits += 1
        self.writes += 1
        return status

    async def _fetch(self, query: str, *args: Any) -> list[Any]:
        assert self._pool is not None
        asyncpg = _asyncpg()
        try:
            rows: list[Any] = await self._pool.fetch(query, *args)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise self._failed("query failed", exc) from exc
        return rows

    async def _create_schema(self) -> None:
        assert self._pool is not None
        asyncpg = _asyncpg()
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _DDL_LOCK)
                for statement in _SCHEMA:
                    await conn.execute(statement)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise self._failed("cannot create its tables", exc) from exc

    # -- the batch --------------------------------------------------------------------------

    async def load(self, keys: Sequence[tuple[str, str, str]]) -> None:
        """Join the batch with this input: create it, or check that it is the same input.

        Args:
            keys: ``(key, canonical JSON, kind)`` of every request, in input order.

        Raises:
            JournalError: the batch exists with another input or against another server.
        """
        assert self._pool is not None
        asyncpg = _asyncpg()
        digest = input_digest([key for key, _, _ in keys])
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                now = await conn.fetchval(f"SELECT {_NOW}")
                created = await conn.fetchval(
                    "INSERT INTO akool_journal_batches (batch_id, schema_version, base_url,"
                    " digest, total, created_at) VALUES ($1, $2, $3, $4, $5, $6)"
                    " ON CONFLICT (batch_id) DO NOTHING RETURNING true",
                    self.batch_id,
                    SCHEMA_VERSION,
                    self._base_url,
                    digest,
                    len(keys),
                    now,
                )
                if created:
                    seen: dict[str, int] = {}
                    rows = []
                    for index, (key, text, kind) in enumerate(keys):
                        occurrence = seen.get(key, 0)
                        seen[key] = occurrence + 1
                        rows.append(
                            (self.batch_id, key, occurrence, index, kind, text, "queued", now)
                        )
                    await conn.copy_records_to_table(
                        "akool_journal_intents",
                        records=rows,
                        columns=_LOAD_COLUMNS,
                    )
                else:
                    row = await conn.fetchrow(
                        "SELECT schema_version, base_url, digest, total"
                        " FROM akool_journal_batches WHERE batch_id=$1",
                        self.batch_id,
                    )
                    self._check_batch(row, digest, len(keys))
                await conn.execute(
                    "INSERT INTO akool_journal_workers (batch_id, worker_id, host, pid,"
                    " started_at, heartbeat_at, lease_until) VALUES ($1, $2, $3, $4, $5, $5, $6)"
                    " ON CONFLICT (batch_id, worker_id) DO UPDATE SET heartbeat_at=$5,"
                    " lease_until=$6",
                    self.batch_id,
                    self.worker_id,
                    socket.gethostname(),
                    os.getpid(),
                    now,
                    now + self.lease,
                )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise self._failed("cannot load the batch", exc) from exc
        self._loaded = True
        assert self._tg is not None
        self._tg.start_soon(self._heartbeat)
        send, receive = anyio.create_memory_object_stream[float](math.inf)
        self._throttles_out, self._throttles_in = send, receive
        self._tg.start_soon(self._publisher, receive)
        await self._listen()

    def _check_batch(self, row: Any, digest: str, total: int) -> None:
        where = f"batch {self.batch_id!r} in {_where(self.url)!r}"
        if row["schema_version"] != SCHEMA_VERSION:
            raise JournalError(
                f"{where} has schema {row['schema_version']}, expected {SCHEMA_VERSION}"
            )
        if row["base_url"] != self._base_url:
            raise JournalError(f"{where} runs against {row['base_url']!r}, not {self._base_url!r}")
        if row["digest"] != digest:
            raise JournalError(
                f"{where} was started with a different input ({row['total']} requests, digest "
                f"{row['digest'][:12]}...); this worker has {total} requests, digest "
                f"{digest[:12]}...: give every worker the same manifest, or another batch id"
            )

    async def _heartbeat(self) -> None:
        """Renew this worker's lease every third of it, for as long as the journal is open."""
        with self.heartbeat_scope:
            await self._renew_forever()

    async def _renew_forever(self) -> None:
        while True:
            await anyio.sleep(self.lease / 3)
            try:
                await self._execute(
                    f"UPDATE akool_journal_workers SET heartbeat_at={_NOW},"
                    f" lease_until={_NOW} + $3 WHERE batch_id=$1 AND worker_id=$2",
                    self.batch_id,
                    self.worker_id,
                    self.lease,
                )
            except JournalError as exc:
                # The next renewal may work; if none does, the database itself refuses our
                # sends once the lease is over (begin_submit checks it).
                log.warning("lease renewal failed: %s", exc)

    # -- claims -----------------------------------------------------------------------------

    async def claim(self) -> Claim | None:
        """The next request for this worker, or None when the batch needs nobody any more.

        Waits (polling every ``poll_interval``) while nothing is claimable but another worker
        still holds requests in flight: if it dies, they come to the survivors.
        """
        async with self._claim_lock:
            while not self._claimed:
                got = await self._claim_some()
                if got:
                    self._claimed = got[::-1]
                    break
                if not await self._others_in_flight():
                    return None
                await anyio.sleep(self.poll_interval)
            return self._claimed.pop()

    async def _claim_some(self) -> list[Claim]:
        """Lease up to ``_CLAIM_BATCH`` rows: fresh ones first, else ones whose owner is gone."""
        self.claim_rounds += 1
        # The common case is an index range scan of 'queued' rows nobody holds.
        claims = await self._claim_where("i.state='queued' AND i.owner IS NULL")
        if claims:
            return claims
        return await self._claim_where(
            "i.state = ANY($3::text[]) AND (i.owner IS NULL OR NOT EXISTS (SELECT 1 FROM"
            " akool_journal_workers w WHERE w.batch_id=$1 AND w.worker_id=i.owner"
            f" AND w.lease_until > {_NOW}))",
            list(self._claimable),
        )

    async def _claim_where(self, condition: str, *extra: object) -> list[Claim]:
        limit = "$3" if not extra else "$4"
        rows = await self._fetch(
            "WITH c AS (SELECT i.key, i.occurrence FROM akool_journal_intents i"
            f" WHERE i.batch_id=$1 AND {condition}"
            f" ORDER BY i.idx LIMIT {limit} FOR UPDATE OF i SKIP LOCKED)"
            " UPDATE akool_journal_intents i SET owner=$2, previous_owner=i.owner,"
            " claims=i.claims + 1,"
            " state=CASE WHEN i.state='submitting' THEN 'ambiguous' ELSE i.state END,"
            " error_type=CASE WHEN i.state='submitting' THEN 'AmbiguousSubmitError'"
            " ELSE i.error_type END,"
            " error_message=CASE WHEN i.state='submitting' THEN 'interrupted while it may have"
            " reached AKOOL (worker ' || coalesce(i.owner, '?') || ' stopped mid-submit)'"
            " ELSE i.error_message END,"
            f" updated_at=CASE WHEN i.state='submitting' THEN {_NOW} ELSE i.updated_at END"
            f" FROM c WHERE i.batch_id=$1 AND i.key=c.key AND i.occurrence=c.occurrence"
            f" RETURNING {_SELECT}",
            self.batch_id,
            self.worker_id,
            *extra,
            _CLAIM_BATCH,
        )
        if rows:
            self.commits += 1
            self.writes += len(rows)
            self.claimed += len(rows)
        claims = [
            Claim(
                index=row["idx"],
                occurrence=row["occurrence"],
                record=None if row["state"] == "queued" else _record(row),
            )
            for row in rows
        ]
        claims.sort(key=lambda claim: claim.index)
        return claims

    async def _others_in_flight(self) -> bool:
        rows = await self._fetch(
            "SELECT 1 FROM akool_journal_intents WHERE batch_id=$1 AND state = ANY($2::text[])"
            " AND owner IS DISTINCT FROM $3 LIMIT 1",
            self.batch_id,
            list(_IN_FLIGHT),
            self.worker_id,
        )
        return bool(rows)

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
        status = await self._execute(
            "UPDATE akool_journal_intents i SET state='submitting', attempts=i.attempts + 1,"
            " job_id=NULL, job_ref=NULL, job_url=NULL, status=NULL, result=NULL,"
            " error_type=NULL, error_message=NULL, error_code=NULL, path=NULL, sha256=NULL,"
            f" size=NULL, ref=$5, updated_at={_NOW}"
            " WHERE i.batch_id=$1 AND i.key=$2 AND i.occurrence=$3"
            " AND i.owner=$4 AND EXISTS (SELECT 1 FROM akool_journal_workers w"
            f" WHERE w.batch_id=$1 AND w.worker_id=$4 AND w.lease_until > {_NOW})",
            self.batch_id,
            key,
            occurrence,
            self.worker_id,
            ref,
        )
        if status != "UPDATE 1":
            raise JournalError(
                f"not submitted: this worker's lease on request {index} ran out "
                "(another worker may have taken it over)"
            )

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
        await self._execute(
            "UPDATE akool_journal_intents SET state=$4, error_type=$5, error_message=$6,"
            f" error_code=$7, updated_at={_NOW}"
            " WHERE batch_id=$1 AND key=$2 AND occurrence=$3",
            self.batch_id,
            key,
            occurrence,
            state,
            error_type,
            error_message,
            error_code,
        )

    async def update(
        self, key: str, occurrence: int, state: JournalState, **fields: object
    ) -> None:
        """Move an existing row to ``state`` and set the given columns.

        Raises:
            JournalError: the row does not exist, or a column name is unknown.
        """
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise JournalError(f"unknown journal columns: {sorted(unknown)}")
        names = ["state", *fields]
        values = [state, *fields.values()]
        assignments = ", ".join(f"{name}=${n}" for n, name in enumerate(names, start=4))
        status = await self._execute(
            f"UPDATE akool_journal_intents SET {assignments}, updated_at={_NOW}"
            " WHERE batch_id=$1 AND key=$2 AND occurrence=$3",
            self.batch_id,
            key,
            occurrence,
            *values,
        )
        if status != "UPDATE 1":
            raise JournalError(f"no journal row for {key[:12]}#{occurrence}")

    async def known_jobs(self, job_ids: Collection[str]) -> set[str]:
        """Those of ``job_ids`` that are the job of a row of this batch no live worker holds.

        (The batch deletes the ``.part`` files of these: in a shared directory, a live
        worker's download in progress is not a leftover.)
        """
        rows = await self._fetch(
            "SELECT i.job_id FROM akool_journal_intents i WHERE i.batch_id=$1"
            " AND i.job_id = ANY($2::text[]) AND NOT EXISTS (SELECT 1 FROM"
            " akool_journal_workers w WHERE w.batch_id=$1 AND w.worker_id=i.owner"
            f" AND w.lease_until > {_NOW})",
            self.batch_id,
            list(job_ids),
        )
        return {row["job_id"] for row in rows}

    async def counts(self) -> Mapping[str, int]:
        """Rows per state, over the whole batch (every worker's)."""
        rows = await self._fetch(
            "SELECT state, count(*) AS n FROM akool_journal_intents WHERE batch_id=$1"
            " GROUP BY state",
            self.batch_id,
        )
        return {row["state"]: row["n"] for row in rows}

    # -- the shared rate limit --------------------------------------------------------------

    def attach_gate(self, rate: Any) -> None:
        """Share throttle episodes with the other workers through ``rate`` (the client's
        ``RateController``): this worker's episodes are published, and each of the others'
        is one for this worker's controller too (``throttled_elsewhere``), so every worker
        backs off multiplicatively from the rate it had, and the workers' rates together
        settle under the account's one limit (AIMD's fairness, across processes).
        """
        self._gate = rate
        rate.episode_listeners.append(self._on_local_throttle)

    def detach_gate(self) -> None:
        rate, self._gate = self._gate, None
        if rate is not None:
            with contextlib.suppress(ValueError):
                rate.episode_listeners.remove(self._on_local_throttle)

    def _on_local_throttle(self) -> None:
        if self._throttles_out is not None:
            with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
                self._throttles_out.send_nowait(self._gate.rate() if self._gate else 0.0)

    async def _publisher(self, receive: MemoryObjectReceiveStream[float]) -> None:
        """Publish each throttle episode of ours (with our rate then, for people reading)."""
        async with receive:
            async for seconds in receive:
                try:
                    await self._execute(
                        "WITH b AS (UPDATE akool_journal_batches SET throttles=throttles + 1,"
                        f" throttled_at={_NOW} WHERE batch_id=$1 RETURNING 1)"
                        " SELECT pg_notify($2, $3)",
                        self.batch_id,
                        _CHANNEL,
                        f"{seconds!r} {self.worker_id}\n{self.batch_id}",
                    )
                    self.throttles_published += 1
                except JournalError as exc:
                    log.warning("could not share a throttle: %s", exc)

    async def _listen(self) -> None:
        asyncpg = _asyncpg()
        try:
            self._listener = await asyncpg.connect(self.url)
            await self._listener.add_listener(_CHANNEL, self._on_notify)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise self._failed("cannot listen for throttles", exc) from exc

    def _on_notify(self, conn: object, pid: int, channel: str, payload: str) -> None:
        head, _, batch_id = payload.partition("\n")
        _, _, worker = head.partition(" ")
        if batch_id != self.batch_id or worker == self.worker_id or self._gate is None:
            return
        self.throttles_received += 1
        self._gate.throttled_elsewhere()


# -- reading a batch (the CLI's --status) -----------------------------------------------------


@attrs.frozen(kw_only=True)
class WorkerStatus:
    """One worker of a shared batch as the journal sees it."""

    worker_id: str
    host: str
    pid: int
    alive: bool
    started_at: float
    heartbeat_at: float
    holding: int


@attrs.frozen(kw_only=True)
class BatchStatus:
    """A shared batch's progress: every worker's outcomes together."""

    batch_id: str
    base_url: str
    digest: str
    total: int
    created_at: float
    states: Mapping[str, int]
    workers: tuple[WorkerStatus, ...]
    throttles: int
    now: float

    @property
    def finished(self) -> int:
        """Requests with an outcome (everything but queued, submitting and submitted)."""
        return self.total - sum(self.states.get(state, 0) for state in _IN_FLIGHT)


async def read_batch_status(url: str, batch_id: str) -> BatchStatus:
    """The progress of batch ``batch_id`` in the journal at ``url`` (read-only).

    Raises:
        JournalError: the database is unreachable or has no such batch.
    """
    asyncpg = _asyncpg()
    try:
        conn = await asyncpg.connect(url)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as exc:
        raise JournalError(
            f"cannot open the journal database {_where(url)!r}: {_detail(exc, url)}"
        ) from None
    try:
        now = await conn.fetchval(f"SELECT {_NOW}")
        batch = await conn.fetchrow(
            "SELECT * FROM akool_journal_batches WHERE batch_id=$1", batch_id
        )
        if batch is None:
            raise JournalError(f"no batch {batch_id!r} in {_where(url)!r}")
        states = await conn.fetch(
            "SELECT state, count(*) AS n FROM akool_journal_intents WHERE batch_id=$1"
            " GROUP BY state",
            batch_id,
        )
        workers = await conn.fetch(
            "SELECT w.*, (SELECT count(*) FROM akool_journal_intents i WHERE"
            " i.batch_id=w.batch_id AND i.owner=w.worker_id AND i.state = ANY($2::text[]))"
            " AS holding FROM akool_journal_workers w WHERE batch_id=$1 ORDER BY started_at",
            batch_id,
            list(_IN_FLIGHT),
        )
    except asyncpg.UndefinedTableError:
        raise JournalError(f"no batch {batch_id!r} in {_where(url)!r}") from None
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise JournalError(f"cannot read the journal {_where(url)!r}: {_detail(exc, url)}") from exc
    finally:
        await conn.close()
    return BatchStatus(
        batch_id=batch_id,
        base_url=batch["base_url"],
        digest=batch["digest"],
        total=batch["total"],
        created_at=batch["created_at"],
        states={row["state"]: row["n"] for row in states},
        workers=tuple(
            WorkerStatus(
                worker_id=row["worker_id"],
                host=row["host"],
                pid=row["pid"],
                alive=row["lease_until"] > now,
                started_at=row["started_at"],
                heartbeat_at=row["heartbeat_at"],
                holding=row["holding"],
            )
            for row in workers
        ),
        throttles=batch["throttles"],
        now=now,
    )
