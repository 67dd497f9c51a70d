"""Leases and claims: how the workers of a shared batch divide its requests.

``Lease`` is this worker's hold on what it claimed: a time on the database server's clock in
its ``akool_journal_workers`` row, renewed by a heartbeat every third of it, ended at once on
a clean exit so that what it held is claimable without waiting.

``ClaimDesk`` hands requests to this worker. It takes them with ``SELECT ... FOR UPDATE SKIP
LOCKED`` (so concurrent claims never wait for each other or take the same row), in input
order, a few at a time, and sets this worker as their ``owner``. A row can be claimed when it
is not final and has no owner, or its owner's lease has run out::

    queued, unsent          -> submit it (nothing was sent, or provably nothing acted)
    submitted, timed_out    -> re-attach to its job: poll it and finish it
    submitting              -> ambiguous: the dead owner's send may have reached AKOOL

Nothing claimable and no other worker holding a request in flight means the batch needs this
worker no more; while another one does, the desk waits, since that worker could still die.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

import anyio
import attrs

from akool_async._errors import JournalError

from ._journal import _COLUMNS as _RECORD_COLUMNS  # one list of a record's columns
from ._journal import JournalRecord
from ._pg_db import IN_FLIGHT, NOW, PgDatabase

__all__ = ["CLAIMABLE", "Claim", "ClaimDesk", "Lease"]

log = logging.getLogger("akool_async")

#: Rows claimed per round trip (a worker asks again when these are handed out).
_CLAIM_BATCH: Final = 16
#: The states a row can be claimed in once its owner is gone (or it never had one).
CLAIMABLE: Final = ("queued", "unsent", "submitting", "submitted", "timed_out")

_SELECT: Final = ", ".join(f"i.{name}" for name in _RECORD_COLUMNS)


def _record(row: Mapping[str, Any]) -> JournalRecord:
    values = {name: row[name] for name in _RECORD_COLUMNS}
    values["index"] = values.pop("idx")
    return JournalRecord(**values)


@attrs.frozen(kw_only=True)
class Claim:
    """One request leased to this worker: its position, occurrence and row."""

    index: int
    occurrence: int
    #: None when the request was never tried (``queued``): submit it.
    record: JournalRecord | None


class Lease:
    """This worker's lease on what it claimed: renewed while the journal is open."""

    def __init__(self, db: PgDatabase, seconds: float) -> None:
        self._db = db
        self.seconds = seconds
        #: Cancelling it stops the heartbeat (as a hung worker's would stop): tests use it.
        self.heartbeat_scope = anyio.CancelScope()

    async def heartbeat(self) -> None:
        """Renew this worker's lease every third of it, for as long as the journal is open."""
        with self.heartbeat_scope:
            await self._renew_forever()

    async def _renew_forever(self) -> None:
        while True:
            await anyio.sleep(self.seconds / 3)
            try:
                await self._db.execute(
                    f"UPDATE akool_journal_workers SET heartbeat_at={NOW},"
                    f" lease_until={NOW} + $3 WHERE batch_id=$1 AND worker_id=$2",
                    self._db.batch_id,
                    self._db.worker_id,
                    self.seconds,
                )
            except JournalError as exc:
                # The next renewal may work; if none does, the database itself refuses our
                # sends once the lease is over (begin_submit checks it).
                log.warning("lease renewal failed: %s", exc)

    async def end(self) -> None:
        """End the lease now (a clean exit): what this worker holds is claimable at once.

        Raises:
            JournalError: the database refused.
        """
        await self._db.execute(
            f"UPDATE akool_journal_workers SET lease_until={NOW}"
            " WHERE batch_id=$1 AND worker_id=$2",
            self._db.batch_id,
            self._db.worker_id,
        )


class ClaimDesk:
    """Hands this worker the batch's requests, a few rows leased per round trip.

    Args:
        db: The journal database.
        claimable: The states a row whose owner is gone can be claimed in.
        poll_interval: Seconds between looks while others' requests (or leases) are running.
    """

    def __init__(self, db: PgDatabase, *, claimable: tuple[str, ...], poll_interval: float) -> None:
        self._db = db
        self._claimable = claimable
        self.poll_interval = poll_interval
        self._claimed: list[Claim] = []
        self._lock = anyio.Lock()
        #: Claim round trips made, and rows claimed (for benchmarks).
        self.claim_rounds = 0
        self.claimed = 0

    async def claim(self) -> Claim | None:
        """The next request for this worker, or None when the batch needs nobody any more."""
        async with self._lock:
            while not self._claimed:
                got = await self.claim_some()
                if got:
                    self._claimed = got[::-1]
                    break
                if not await self._others_in_flight():
                    return None
                await anyio.sleep(self.poll_interval)
            return self._claimed.pop()

    async def claim_some(self) -> list[Claim]:
        """Lease up to ``_CLAIM_BATCH`` rows: fresh ones first, else ones whose owner is gone."""
        self.claim_rounds += 1
        # The common case is an index range scan of 'queued' rows nobody holds.
        claims = await self._claim_where("i.state='queued' AND i.owner IS NULL")
        if claims:
            return claims
        return await self._claim_where(
            "i.state = ANY($3::text[]) AND (i.owner IS NULL OR NOT EXISTS (SELECT 1 FROM"
            " akool_journal_workers w WHERE w.batch_id=$1 AND w.worker_id=i.owner"
            f" AND w.lease_until > {NOW}))",
            list(self._claimable),
        )

    async def _claim_where(self, condition: str, *extra: object) -> list[Claim]:
        limit = "$3" if not extra else "$4"
        rows = await self._db.fetch(
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
            f" updated_at=CASE WHEN i.state='submitting' THEN {NOW} ELSE i.updated_at END"
            f" FROM c WHERE i.batch_id=$1 AND i.key=c.key AND i.occurrence=c.occurrence"
            f" RETURNING {_SELECT}",
            self._db.batch_id,
            self._db.worker_id,
            *extra,
            _CLAIM_BATCH,
        )
        if rows:
            self._db.commits += 1
            self._db.writes += len(rows)
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
        rows = await self._db.fetch(
            "SELECT 1 FROM akool_journal_intents WHERE batch_id=$1 AND state = ANY($2::text[])"
            " AND owner IS DISTINCT FROM $3 LIMIT 1",
            self._db.batch_id,
            list(IN_FLIGHT),
            self._db.worker_id,
        )
        return bool(rows)
