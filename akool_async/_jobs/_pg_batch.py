"""Joining a shared batch: its row, its requests written once as ``queued``, this worker's row.

Every worker of a batch reads the same input and calls ``PgBatch.join`` with it. The first
worker to insert the batch row writes every request as a ``queued`` row in the same
transaction; the others block on that insert until it commits, then compare the input's digest
(``input_digest``: sha256 over the request keys in order) and its server with the stored ones,
and refuse a different input with ``JournalError``. Each worker then (re)writes its own row in
``akool_journal_workers``, whose lease ``_pg_claims.Lease`` renews.
"""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Sequence
from typing import Any, Final

from akool_async._errors import JournalError

from ._pg_db import NOW, SCHEMA_VERSION, PgDatabase, describe, driver

__all__ = ["PgBatch", "input_digest"]

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


def input_digest(keys: Sequence[str]) -> str:
    """The digest that names a batch's input: sha256 over its request keys, in order."""
    digest = hashlib.sha256()
    for key in keys:
        digest.update(key.encode("ascii"))
        digest.update(b"\n")
    return digest.hexdigest()


class PgBatch:
    """This worker's membership of one batch: creating the batch, or checking it is the same."""

    def __init__(self, db: PgDatabase, *, base_url: str, lease: float) -> None:
        self._db = db
        self._base_url = base_url.rstrip("/")
        self._lease = lease

    async def join(self, keys: Sequence[tuple[str, str, str]]) -> None:
        """Create the batch with this input, or check that it has this input; register us.

        Args:
            keys: ``(key, canonical JSON, kind)`` of every request, in input order.

        Raises:
            JournalError: the batch exists with another input or against another server.
        """
        db = self._db
        asyncpg = driver()
        digest = input_digest([key for key, _, _ in keys])
        try:
            async with db.pool.acquire() as conn, conn.transaction():
                now = await conn.fetchval(f"SELECT {NOW}")
                created = await conn.fetchval(
                    "INSERT INTO akool_journal_batches (batch_id, schema_version, base_url,"
                    " digest, total, created_at) VALUES ($1, $2, $3, $4, $5, $6)"
                    " ON CONFLICT (batch_id) DO NOTHING RETURNING true",
                    db.batch_id,
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
                            (db.batch_id, key, occurrence, index, kind, text, "queued", now)
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
                        db.batch_id,
                    )
                    self._check(row, digest, len(keys))
                await conn.execute(
                    "INSERT INTO akool_journal_workers (batch_id, worker_id, host, pid,"
                    " started_at, heartbeat_at, lease_until) VALUES ($1, $2, $3, $4, $5, $5, $6)"
                    " ON CONFLICT (batch_id, worker_id) DO UPDATE SET heartbeat_at=$5,"
                    " lease_until=$6",
                    db.batch_id,
                    db.worker_id,
                    socket.gethostname(),
                    os.getpid(),
                    now,
                    now + self._lease,
                )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise db.failed("cannot load the batch", exc) from exc

    def _check(self, row: Any, digest: str, total: int) -> None:
        where = f"batch {self._db.batch_id!r} in {describe(self._db.url)!r}"
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
