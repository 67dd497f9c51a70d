"""The shared journal's database: its tables, the SQL pieces every part shares, one pool.

``PgDatabase`` is one worker's connection to the journal (``_journal_pg.py`` describes the
design): it opens the asyncpg pool, creates the three tables (under an advisory lock, so that
workers starting together do not race on the DDL), runs the statements the other parts write
(the batch, ``_pg_batch``; leases and claims, ``_pg_claims``; the request rows, ``_pg_rows``;
throttle sharing, ``_pg_throttle``), counts them, and turns a driver error into a
``JournalError`` that holds no password.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from akool_async._errors import JournalError
from akool_async._redact import redact

from ._journals import url_passwords, without_passwords

if TYPE_CHECKING:
    import asyncpg

__all__ = [
    "IN_FLIGHT",
    "NOW",
    "SCHEMA_VERSION",
    "PgDatabase",
    "describe",
    "detail",
    "driver",
]

SCHEMA_VERSION: Final = 1
#: Not final: a row in one of these states still needs a worker.
IN_FLIGHT: Final = ("queued", "submitting", "submitted")
#: The database server's clock, in seconds: leases never depend on the workers' clocks.
NOW: Final = "extract(epoch from clock_timestamp())::float8"
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


def driver() -> Any:
    """The ``asyncpg`` module, imported only when a ``postgresql://`` journal is used."""
    try:
        import asyncpg
    except ImportError:  # pragma: no cover - the test extra installs it
        raise JournalError(
            "a postgresql:// journal needs asyncpg: pip install '.[postgres]' in an akool-async"
            " checkout, or pip install asyncpg"
        ) from None
    return asyncpg


def describe(url: str) -> str:
    """The URL without its passwords, for messages."""
    return redact(without_passwords(url))


def detail(exc: BaseException, url: str) -> str:
    """A driver error's text for a message: no registered secret, none of ``url``'s passwords."""
    text = str(exc)
    for password in url_passwords(url):
        text = text.replace(password, "***")
    return redact(text)


class PgDatabase:
    """One worker's pool on the journal database, and the statements it runs on one batch.

    ``commits`` and ``writes`` count what it wrote (the journal's cost, for benchmarks): a
    statement through ``execute`` is one of each; a part that writes through ``fetch`` (a
    claim's ``UPDATE ... RETURNING``) counts its own rows.
    """

    def __init__(self, url: str, *, batch_id: str, worker_id: str) -> None:
        self.url = url
        self.batch_id = batch_id
        self.worker_id = worker_id
        self.commits = 0
        self.writes = 0
        self._pool: asyncpg.Pool | None = None

    @property
    def opened(self) -> bool:
        """Whether ``open`` made the pool (closing it does not change this)."""
        return self._pool is not None

    @property
    def pool(self) -> asyncpg.Pool:
        """The open pool, for the parts that need one connection and a transaction."""
        assert self._pool is not None
        return self._pool

    async def open(self) -> None:
        """Open the pool and create the tables that are not there yet.

        Raises:
            JournalError: the database is unreachable, or refuses the tables.
        """
        asyncpg = driver()
        try:
            self._pool = await asyncpg.create_pool(
                self.url, min_size=1, max_size=8, command_timeout=60
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as exc:
            raise JournalError(
                f"cannot open the journal database {describe(self.url)!r}: {detail(exc, self.url)}"
            ) from None
        try:
            await self._create_schema()
        except BaseException:
            await self._pool.close()
            raise

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()

    def failed(self, what: str, exc: BaseException) -> JournalError:
        """The error for a failed database operation on this batch (``what`` failed)."""
        return JournalError(
            f"journal {describe(self.url)!r} (batch {self.batch_id!r}) {what}: "
            f"{detail(exc, self.url)}"
        )

    async def execute(self, query: str, *args: Any) -> str:
        """Run one writing statement (its own transaction); its status, e.g. ``UPDATE 1``."""
        asyncpg = driver()
        try:
            status: str = await self.pool.execute(query, *args)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise self.failed("write failed", exc) from exc
        self.commits += 1
        self.writes += 1
        return status

    async def fetch(self, query: str, *args: Any) -> list[Any]:
        """Run one query; its rows."""
        asyncpg = driver()
        try:
            rows: list[Any] = await self.pool.fetch(query, *args)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise self.failed("query failed", exc) from exc
        return rows

    async def _create_schema(self) -> None:
        asyncpg = driver()
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _DDL_LOCK)
                for statement in _SCHEMA:
                    await conn.execute(statement)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise self.failed("cannot create its tables", exc) from exc
