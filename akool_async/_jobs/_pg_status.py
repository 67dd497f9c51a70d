"""Reading a shared batch from outside it (the CLI's ``batch --status``): ``read_batch_status``.

One read-only connection, no worker row: the batch's states over every worker's rows, each
worker with whether its lease is live (on the database server's clock) and how many requests
in flight it holds, and the throttle episodes shared so far.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from akool_async._errors import JournalError

from ._pg_db import IN_FLIGHT, NOW, describe, detail, driver

__all__ = ["BatchStatus", "WorkerStatus", "read_batch_status"]


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
        return self.total - sum(self.states.get(state, 0) for state in IN_FLIGHT)


async def read_batch_status(url: str, batch_id: str) -> BatchStatus:
    """The progress of batch ``batch_id`` in the journal at ``url`` (read-only).

    Raises:
        JournalError: the database is unreachable or has no such batch.
    """
    asyncpg = driver()
    try:
        conn = await asyncpg.connect(url)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as exc:
        raise JournalError(
            f"cannot open the journal database {describe(url)!r}: {detail(exc, url)}"
        ) from None
    try:
        now = await conn.fetchval(f"SELECT {NOW}")
        batch = await conn.fetchrow(
            "SELECT * FROM akool_journal_batches WHERE batch_id=$1", batch_id
        )
        if batch is None:
            raise JournalError(f"no batch {batch_id!r} in {describe(url)!r}")
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
            list(IN_FLIGHT),
        )
    except asyncpg.UndefinedTableError:
        raise JournalError(f"no batch {batch_id!r} in {describe(url)!r}") from None
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise JournalError(
            f"cannot read the journal {describe(url)!r}: {detail(exc, url)}"
        ) from exc
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
