"""The durable batch journal: one SQLite file that lets a crashed batch resume without paying twice.

Each input request of a batch is one row, identified by ``(key, occurrence)``: ``key`` is the
sha256 of the request's canonical wire JSON (``webhookUrl`` left out, since where callbacks go
is delivery, not the job) and ``occurrence`` counts identical requests earlier in the same
input, so running the same input again maps every request onto the same row whatever the order.

A row walks through these states (``JournalState``)::

    (no row) --> submitting --> submitted --> succeeded | failed | not_found | download_failed
                   |   |            \\-----> timed_out   (job id kept: re-attached on resume)
                   |   +--> unsent      (the server provably never acted: resubmitted on resume)
                   |   +--> rejected    (the server answered with a permanent refusal)
                   +------> ambiguous   (the submit may have reached the server)

``submitting`` is committed *before* the request goes out and ``submitted`` (with the job id)
right after the response; a row still ``submitting`` when a journal is opened belonged to a
process that died mid-submit, so it becomes ``ambiguous``. A graceful stop does not leave
such rows behind: a submit not yet sent becomes ``unsent``, one sent gets a grace for its
answer (``_batch.py``). An ``ambiguous`` row bound to its job by a webhook carrying its
``ref`` (``_ambiguity.py``) becomes ``submitted``.

What a resume does with a row: ``unsent`` and ``rejected`` (but for a 1003) are submitted
again; ``submitted``, ``timed_out``, ``not_found`` and a success without a URL are asked
about again (re-attached by job id); ``failed`` (status 4), a 1003 refusal, ``ambiguous``
and a ``succeeded`` row whose file still has its ``size`` and ``sha256`` are replayed.

Durability: WAL mode with ``synchronous=FULL``. WAL alone (``synchronous=NORMAL``) already
survives ``kill -9``, but after a power cut it may lose the last commits; losing a
``submitting`` row whose request did reach AKOOL would make the resume submit (and pay for)
it again. FULL costs one fsync per commit, so writes are group-committed: every write waiting
when the single worker thread becomes free goes into one transaction. A caller resumes only
after its own write is durable.

The file is opened with ``locking_mode=EXCLUSIVE``: a second process (or a second batch in this
one) using the same journal gets ``JournalError`` instead of racing on the rows. The OS drops
the lock when the owning process dies, even by ``kill -9``.
"""

from __future__ import annotations

import logging
import math
import os
import sqlite3
import time
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal, Self

import anyio
import attrs
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from akool_async._errors import JournalError

__all__ = ["Journal", "JournalRecord", "JournalState", "read_journal"]

JournalState = Literal[
    "queued",
    "submitting",
    "submitted",
    "unsent",
    "rejected",
    "ambiguous",
    "succeeded",
    "failed",
    "timed_out",
    "not_found",
    "download_failed",
]

#: ``PRAGMA application_id`` of a journal: "AKJ1".
APPLICATION_ID: Final = 0x414B4A31
#: ``PRAGMA user_version``: the schema version.
SCHEMA_VERSION: Final = 1

_SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS intents (
    key           TEXT    NOT NULL,  -- sha256 hex of the canonical request JSON
    occurrence    INTEGER NOT NULL,  -- 0 for the first identical request in the input, 1...
    idx           INTEGER NOT NULL,  -- position in the input of the run that wrote it last
    kind          TEXT    NOT NULL,  -- request class: PlusSwap, ProSwap, ImageSwap, VideoSwap
    request       TEXT    NOT NULL,  -- the canonical JSON itself, for people and tools
    state         TEXT    NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,  -- submits sent (or possibly sent)
    job_id        TEXT,              -- the record _id
    job_ref       TEXT,              -- AKOOL's processing job_id
    media         TEXT,              -- image | video
    job_url       TEXT,              -- URL returned at submit (V3)
    status        INTEGER,           -- last faceswap_status seen
    result        TEXT,              -- the final listbyids item, as JSON
    error_type    TEXT,              -- exception class name of a failed outcome
    error_message TEXT,
    error_code    INTEGER,
    path          TEXT,              -- downloaded file
    sha256        TEXT,              -- of the downloaded file
    size          INTEGER,           -- of the downloaded file, in bytes
    ref           TEXT,              -- the webhook reference of the last submit (akool_ref)
    updated_at    REAL    NOT NULL,
    PRIMARY KEY (key, occurrence)
) WITHOUT ROWID""",
    # No index on state: it cost ~20 us of CPU per job (three state changes each), and
    # only a scan at open and counts() would use it. Files that have one lose it at open.
    "DROP INDEX IF EXISTS intents_state",
)

_COLUMNS: Final = (
    "key",
    "occurrence",
    "idx",
    "kind",
    "request",
    "state",
    "attempts",
    "job_id",
    "job_ref",
    "media",
    "job_url",
    "status",
    "result",
    "error_type",
    "error_message",
    "error_code",
    "path",
    "sha256",
    "size",
    "ref",
    "updated_at",
)
#: Columns added after schema 1 was released: added to older files when they are opened.
_ADDED: Final = {"size": "INTEGER", "ref": "TEXT"}
#: Columns a caller may set with ``Journal.update``.
_UPDATABLE: Final = frozenset(_COLUMNS) - {"key", "occurrence", "updated_at", "attempts"}


@attrs.frozen(kw_only=True)
class JournalRecord:
    """One row of the journal: what is known about one input request."""

    key: str
    occurrence: int
    index: int
    kind: str
    request: str
    state: JournalState
    attempts: int
    job_id: str | None
    job_ref: str | None
    media: str | None
    job_url: str | None
    status: int | None
    result: str | None
    error_type: str | None
    error_message: str | None
    error_code: int | None
    path: str | None
    sha256: str | None
    size: int | None
    ref: str | None
    updated_at: float

    @classmethod
    def _from_row(cls, row: tuple[Any, ...]) -> JournalRecord:
        values = dict(zip(_COLUMNS, row, strict=True))
        values["index"] = values.pop("idx")
        return cls(**values)


_Work = Callable[[sqlite3.Connection], Any]


class _Op:
    """One unit of work for the writer, and the slot its result comes back in.

    A written-behind op (``Journal.update_soon``) has no event: nobody waits for it; a
    failure goes to its ``on_error`` instead.
    """

    __slots__ = ("done", "error", "on_error", "result", "work")

    def __init__(
        self, work: _Work, *, on_error: Callable[[JournalError], None] | None = None
    ) -> None:
        self.work = work
        self.done: anyio.Event | None = anyio.Event() if on_error is None else None
        self.on_error = on_error
        self.result: Any = None
        self.error: BaseException | None = None

    def finish(self) -> None:
        """Wake the waiter, or report a written-behind op's failure (on the event loop)."""
        if self.done is not None:
            self.done.set()
        elif self.error is not None and self.on_error is not None:
            error = self.error
            if not isinstance(error, JournalError):
                error = JournalError(str(error))
            try:
                self.on_error(error)
            except Exception:  # a reporting hook must not stop the writer
                logging.getLogger("akool_async").exception("a journal on_error hook raised")


def _stored_keys(conn: sqlite3.Connection) -> set[int]:
    """64-bit prefixes of the keys of the rows already in the file (worker thread).

    What ``admit`` needs to know without asking SQLite: whether a request *may* have a row
    (rows written later in this run add theirs). A prefix that matches (a row, or a rare
    collision) means a real lookup; one that does not means no row, for certain. An int per
    key, not a copy of the rows.
    """
    return {_prefix(key) for (key,) in conn.execute("SELECT DISTINCT key FROM intents")}


def _prefix(key: str) -> int:
    try:
        return int(key[:16], 16)
    except ValueError:  # not a hex key (a hand-edited file): any int will do, it is a hint
        return hash(key)


def _digest(key: str) -> bytes | str:
    """The key as 32 bytes (half the memory of its hex text) for the occurrence counts."""
    try:
        return bytes.fromhex(key)
    except ValueError:
        return key


def _connect(path: Path, base_url: str) -> sqlite3.Connection:
    """Open (creating if needed), lock, check and prepare a journal; runs in the worker thread."""
    try:
        conn = sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise JournalError(f"cannot open journal {str(path)!r}: {exc}") from exc
    try:
        _prepare(conn, path, base_url)
    except BaseException:
        conn.close()
        raise
    return conn


def _prepare(conn: sqlite3.Connection, path: Path, base_url: str) -> None:
    where = repr(str(path))
    try:
        conn.execute("PRAGMA locking_mode=EXCLUSIVE")
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if app_id != APPLICATION_ID and (app_id != 0 or tables):
            raise JournalError(f"{where} is an SQLite file but not an akool_async journal")
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode != "wal":
            raise JournalError(f"journal {where} cannot use WAL mode (got {mode!r})")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise JournalError(f"journal {where} is in use by another batch or process") from exc
        raise JournalError(f"journal {where} is unusable: {exc}") from exc
    except sqlite3.DatabaseError as exc:
        raise JournalError(f"journal {where} is not a usable SQLite database: {exc}") from exc
    try:
        if tables:
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise JournalError(f"journal {where} is corrupt: {check}")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version != SCHEMA_VERSION:
                raise JournalError(
                    f"journal {where} has schema {version}, expected {SCHEMA_VERSION}"
                )
        else:
            conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        for statement in _SCHEMA:
            conn.execute(statement)
        have = {row[1] for row in conn.execute("PRAGMA table_info(intents)")}
        for name, kind in _ADDED.items():
            if name not in have:
                conn.execute(f"ALTER TABLE intents ADD COLUMN {name} {kind}")
        recorded = conn.execute("SELECT value FROM meta WHERE name='base_url'").fetchone()
        if recorded is None:
            conn.execute("INSERT INTO meta VALUES ('base_url', ?)", (base_url,))
            conn.execute("INSERT INTO meta VALUES ('created_at', ?)", (repr(time.time()),))
        elif recorded[0] != base_url:
            raise JournalError(
                f"journal {where} belongs to a batch against {recorded[0]!r}, not {base_url!r}"
            )
        # Whoever held this journal before us is gone (we hold the exclusive lock), so a row
        # still 'submitting' is a submit that may or may not have reached AKOOL.
        conn.execute(
            "UPDATE intents SET state='ambiguous', updated_at=? WHERE state='submitting'",
            (time.time(),),
        )
        conn.execute("COMMIT")
    except sqlite3.DatabaseError as exc:
        raise JournalError(f"journal {where} is corrupt or unreadable: {exc}") from exc


class Journal:
    """The durable record of one batch; an async context manager.

    All SQLite work runs on one worker thread (``anyio.to_thread`` with a limiter of 1); a
    writer task feeds it every pending operation as one transaction (group commit).

    Args:
        path: The journal file; created if missing.
        base_url: The API base URL the batch talks to; a journal written against another
            server is refused, since its job ids mean nothing there.

    Raises:
        JournalError: (on enter) the file is not a journal, is corrupt, belongs to another
            server, or is in use by another batch.
    """

    #: The batch reads its own input (a shared journal hands requests out instead).
    claims = False

    def __init__(self, path: str | os.PathLike[str], *, base_url: str) -> None:
        self.path = Path(path)
        self._base_url = base_url.rstrip("/")
        self._conn: sqlite3.Connection | None = None
        self._limiter = anyio.CapacityLimiter(1)
        self._send: MemoryObjectSendStream[_Op] | None = None
        self._receive: MemoryObjectReceiveStream[_Op] | None = None
        self._task_group: TaskGroup | None = None
        self._closed = False
        #: This run's occurrences per key so far (``admit``), and the keys in the file at open.
        self._seen: dict[bytes | str, int] = {}
        self._stored: set[int] = set()
        self.commits = 0
        self.writes = 0

    async def __aenter__(self) -> Self:
        if self._conn is not None or self._closed:
            raise JournalError("a Journal can be entered only once")
        self._conn = conn = await anyio.to_thread.run_sync(
            _connect, self.path, self._base_url, limiter=self._limiter
        )
        try:
            self._stored = await anyio.to_thread.run_sync(_stored_keys, conn, limiter=self._limiter)
        except sqlite3.DatabaseError as exc:
            self._conn = None
            await anyio.to_thread.run_sync(conn.close, limiter=self._limiter)
            raise JournalError(f"journal {str(self.path)!r} is unreadable: {exc}") from exc
        # Unbounded on purpose: callers already wait for their own result, so the queue never
        # holds more than one operation per waiting task.
        self._send, self._receive = anyio.create_memory_object_stream[_Op](math.inf)
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        self._task_group.start_soon(self._writer, self._receive)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        self._closed = True
        assert self._send is not None
        assert self._task_group is not None
        self._send.close()  # the writer finishes what is queued, then stops
        try:
            # The body's own exception is not the writer's business: never wrap it in a group.
            await self._task_group.__aexit__(None, None, None)
        finally:
            conn, self._conn = self._conn, None
            if conn is not None:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(conn.close, limiter=self._limiter)
        return None

    async def _writer(self, receive: MemoryObjectReceiveStream[_Op]) -> None:
        pending: list[_Op] = []
        try:
            async with receive:
                async for first in receive:
                    pending = [first]
                    while True:
                        try:
                            pending.append(receive.receive_nowait())
                        except (anyio.WouldBlock, anyio.EndOfStream):
                            break
                    await anyio.to_thread.run_sync(self._apply, pending, limiter=self._limiter)
                    for op in pending:
                        op.finish()
                    pending = []
        finally:
            # Cancelled (or failed) with work queued: nobody may wait forever for it.
            for op in pending:
                if op.done is None or not op.done.is_set():
                    op.error = op.error or JournalError("the journal was closed")
                    op.finish()
            self._closed = True
            leftovers: list[_Op] = []
            while True:
                try:
                    leftovers.append(receive.receive_nowait())
                except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                    break
            for op in leftovers:
                op.error = JournalError("the journal was closed")
                op.finish()

    def _apply(self, ops: list[_Op]) -> None:
        """Run every operation in one transaction (worker thread).

        If the group fails, each operation is run again in a transaction of its own, so that
        one bad write (a written-behind update of a missing row) fails alone, not its peers.
        """
        conn = self._conn
        assert conn is not None
        try:
            conn.execute("BEGIN IMMEDIATE")
            for op in ops:
                op.result = op.work(conn)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if len(ops) == 1:
                ops[0].error = JournalError(f"journal {str(self.path)!r} write failed: {exc}")
                return
            for op in ops:
                self._apply([op])
            return
        self.commits += 1
        self.writes += len(ops)

    def _queue(self, op: _Op) -> None:
        if self._closed or self._send is None:
            raise JournalError("the journal is closed")
        try:
            self._send.send_nowait(op)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            raise JournalError("the journal is closed") from None

    async def _run(self, work: _Work) -> Any:
        if self._closed or self._send is None:
            raise JournalError("the journal is closed")
        op = _Op(work)
        self._queue(op)
        assert op.done is not None
        await op.done.wait()
        if op.error is not None:
            raise op.error
        return op.result

    async def admit(self, key: str) -> tuple[int, JournalRecord | None]:
        """Count one more occurrence of ``key`` in this run's input and find its row.

        In memory for a request the file has no row for (every request of a first run): only
        a key already in the file at open costs a read.

        Returns:
            ``(occurrence, record)``: record is None when this request was never journaled.
        """
        if self._closed or self._send is None:
            raise JournalError("the journal is closed")
        digest = _digest(key)
        occurrence = self._seen.get(digest, -1) + 1
        self._seen[digest] = occurrence
        if _prefix(key) not in self._stored:
            return occurrence, None

        def work(conn: sqlite3.Connection) -> JournalRecord | None:
            row = conn.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM intents WHERE key=? AND occurrence=?",
                (key, occurrence),
            ).fetchone()
            return JournalRecord._from_row(row) if row else None

        record: JournalRecord | None = await self._run(work)
        return occurrence, record

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
        """Durably record that the request is about to be sent (state ``submitting``)."""
        self._stored.add(_prefix(key))  # admit() must find this row from now on

        def work(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO intents (key, occurrence, idx, kind, request, state, attempts,"
                " ref, updated_at) VALUES (?, ?, ?, ?, ?, 'submitting', 1, ?, ?)"
                " ON CONFLICT (key, occurrence) DO UPDATE SET idx=excluded.idx,"
                " state='submitting', attempts=attempts + 1, job_id=NULL, job_ref=NULL,"
                " job_url=NULL, status=NULL, result=NULL, error_type=NULL,"
                " error_message=NULL, error_code=NULL, path=NULL, sha256=NULL, size=NULL,"
                " ref=excluded.ref, updated_at=excluded.updated_at",
                (key, occurrence, index, kind, request, ref, time.time()),
            )

        await self._run(work)

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
        """Record a request that never got a ``submitting`` row (refused before sending)."""
        self._stored.add(_prefix(key))

        def work(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO intents (key, occurrence, idx, kind, request, state,"
                " error_type, error_message, error_code, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (key, occurrence) DO UPDATE SET idx=excluded.idx,"
                " state=excluded.state, error_type=excluded.error_type,"
                " error_message=excluded.error_message, error_code=excluded.error_code,"
                " updated_at=excluded.updated_at",
                (
                    key,
                    occurrence,
                    index,
                    kind,
                    request,
                    state,
                    error_type,
                    error_message,
                    error_code,
                    time.time(),
                ),
            )

        await self._run(work)

    async def update(
        self, key: str, occurrence: int, state: JournalState, **fields: object
    ) -> None:
        """Move an existing row to ``state`` and set the given columns.

        Raises:
            JournalError: the row does not exist, or a column name is unknown.
        """
        await self._run(_update_work(key, occurrence, state, fields))

    def update_soon(
        self,
        key: str,
        occurrence: int,
        state: JournalState,
        *,
        on_error: Callable[[JournalError], None],
        **fields: object,
    ) -> None:
        """``update``, written behind: queued after every write before it, not waited for.

        It commits with the next group (in order: a later write that is waited for is
        durable only once this one is), so a crash can lose only the newest written-behind
        rows, never reorder them. ``on_error`` is called on the event loop if it fails.

        Raises:
            JournalError: a column name is unknown, or the journal is closed.
        """
        self._queue(_Op(_update_work(key, occurrence, state, fields), on_error=on_error))

    async def known_jobs(self, job_ids: Collection[str]) -> set[str]:
        """Those of ``job_ids`` that are the job of some row."""
        wanted = list(job_ids)

        def work(conn: sqlite3.Connection) -> set[str]:
            found: set[str] = set()
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                marks = ", ".join("?" * len(chunk))
                rows = conn.execute(f"SELECT job_id FROM intents WHERE job_id IN ({marks})", chunk)
                found.update(row[0] for row in rows)
            return found

        result: set[str] = await self._run(work)
        return result

    async def counts(self) -> Mapping[str, int]:
        """Rows per state."""

        def work(conn: sqlite3.Connection) -> dict[str, int]:
            rows = conn.execute("SELECT state, count(*) FROM intents GROUP BY state")
            return dict(rows)

        result: Mapping[str, int] = await self._run(work)
        return result


def _update_work(
    key: str, occurrence: int, state: JournalState, fields: Mapping[str, object]
) -> _Work:
    unknown = set(fields) - _UPDATABLE
    if unknown:
        raise JournalError(f"unknown journal columns: {sorted(unknown)}")
    names = ["state", *fields]
    values = [state, *fields.values()]
    assignments = ", ".join(f"{name}=?" for name in names)

    def work(conn: sqlite3.Connection) -> None:
        cursor = conn.execute(
            f"UPDATE intents SET {assignments}, updated_at=? WHERE key=? AND occurrence=?",
            (*values, time.time(), key, occurrence),
        )
        if cursor.rowcount != 1:
            raise sqlite3.IntegrityError(f"no journal row for {key[:12]}#{occurrence}")

    return work


def read_journal(path: str | os.PathLike[str]) -> list[JournalRecord]:
    """Read every row of a journal that no batch is using (for tools, tests and the CLI).

    Raises:
        JournalError: the file is missing, is not a journal, or is in use.
    """
    if not Path(path).is_file():
        raise JournalError(f"no journal at {str(path)!r}")
    try:
        conn = sqlite3.connect(path, timeout=0)
    except sqlite3.Error as exc:
        raise JournalError(f"cannot open journal {str(path)!r}: {exc}") from exc
    try:
        if conn.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID:
            raise JournalError(f"{str(path)!r} is not an akool_async journal")
        rows = conn.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM intents ORDER BY idx, key, occurrence"
        ).fetchall()
    except sqlite3.DatabaseError as exc:
        raise JournalError(f"cannot read journal {str(path)!r}: {exc}") from exc
    finally:
        conn.close()
    return [JournalRecord._from_row(row) for row in rows]
