"""The rows a shared batch writes per request, and what it reads back over the whole batch.

The same before/after-send states as the SQLite journal (``_journal.py``): ``submitting`` is
committed before the request goes out, and only by the row's owner while its lease is live
(checked by the database in the same UPDATE), so once another worker may have taken a row
over, its old owner can no longer start a send for it; ``submitted`` with the job id right
after the answer; the outcome last. ``counts`` and ``known_jobs`` read every worker's rows.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from akool_async._errors import JournalError

from ._journal import _UPDATABLE, JournalState
from ._pg_db import NOW, PgDatabase

__all__ = ["RowWriter"]


class RowWriter:
    """This worker's writes to the request rows of one batch (``PgJournal``'s, as in SQLite)."""

    def __init__(self, db: PgDatabase) -> None:
        self._db = db

    async def begin_submit(self, key: str, occurrence: int, *, index: int, ref: str | None) -> None:
        """Durably record that the request is about to be sent, if this worker still owns it.

        Raises:
            JournalError: this worker's lease ran out (another worker may own the request).
        """
        status = await self._db.execute(
            "UPDATE akool_journal_intents i SET state='submitting', attempts=i.attempts + 1,"
            " job_id=NULL, job_ref=NULL, job_url=NULL, status=NULL, result=NULL,"
            " error_type=NULL, error_message=NULL, error_code=NULL, path=NULL, sha256=NULL,"
            f" size=NULL, ref=$5, updated_at={NOW}"
            " WHERE i.batch_id=$1 AND i.key=$2 AND i.occurrence=$3"
            " AND i.owner=$4 AND EXISTS (SELECT 1 FROM akool_journal_workers w"
            f" WHERE w.batch_id=$1 AND w.worker_id=$4 AND w.lease_until > {NOW})",
            self._db.batch_id,
            key,
            occurrence,
            self._db.worker_id,
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
        state: JournalState,
        error_type: str | None,
        error_message: str | None,
        error_code: int | None,
    ) -> None:
        """Record a request refused (or stopped) before anything was sent."""
        await self._db.execute(
            "UPDATE akool_journal_intents SET state=$4, error_type=$5, error_message=$6,"
            f" error_code=$7, updated_at={NOW}"
            " WHERE batch_id=$1 AND key=$2 AND occurrence=$3",
            self._db.batch_id,
            key,
            occurrence,
            state,
            error_type,
            error_message,
            error_code,
        )

    async def update(
        self, key: str, occurrence: int, state: JournalState, fields: Mapping[str, object]
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
        status = await self._db.execute(
            f"UPDATE akool_journal_intents SET {assignments}, updated_at={NOW}"
            " WHERE batch_id=$1 AND key=$2 AND occurrence=$3",
            self._db.batch_id,
            key,
            occurrence,
            *values,
        )
        if status != "UPDATE 1":
            raise JournalError(f"no journal row for {key[:12]}#{occurrence}")

    async def known_jobs(self, job_ids: Collection[str]) -> set[str]:
        """Those of ``job_ids`` that are the job of a row of this batch no live worker holds."""
        rows = await self._db.fetch(
            "SELECT i.job_id FROM akool_journal_intents i WHERE i.batch_id=$1"
            " AND i.job_id = ANY($2::text[]) AND NOT EXISTS (SELECT 1 FROM"
            " akool_journal_workers w WHERE w.batch_id=$1 AND w.worker_id=i.owner"
            f" AND w.lease_until > {NOW})",
            self._db.batch_id,
            list(job_ids),
        )
        return {row["job_id"] for row in rows}

    async def counts(self) -> Mapping[str, int]:
        """Rows per state, over the whole batch (every worker's)."""
        rows = await self._db.fetch(
            "SELECT state, count(*) AS n FROM akool_journal_intents WHERE batch_id=$1"
            " GROUP BY state",
            self._db.batch_id,
        )
        return {row["state"]: row["n"] for row in rows}
