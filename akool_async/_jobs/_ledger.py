"""The journal as a batch sees it: one request's rows, and a no-op when there is no journal.

``open_ledger`` gives a batch its ``Ledger``: the plain ``Ledger`` when ``swap_many`` has no
journal (every write does nothing, no row is ever found, nothing is resumed), or a
``JournalLedger`` over the journal the options name (``_journals.py``). The run, the
submitter and the completion call the same methods either way, so that none of them asks
"is there a journal?".

Rules. A write that fails after a job exists never loses it: ``record`` and
``record_soon`` log the job id at WARNING and hand the ``JournalError`` back for the
outcome. Writes made while the batch is being cancelled (``record_unsent``, a refusal's row,
a job's 'submitted' row) run shielded, so that they land.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import AsyncIterable, Iterable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import anyio

from akool_async._errors import (
    AkoolError,
    JobFailedError,
    JobNotFoundError,
    JobTimeoutError,
    JournalError,
    ValidationError,
)
from akool_async._models import SwapJob

from ._batch_items import BatchOptions, ClaimReader, Item, Reader
from ._download import part_files, sweep_parts
from ._events import Outcome, R
from ._journal import Journal, JournalRecord, JournalState
from ._journals import JournalBackend, open_journal
from ._records import error_columns, request_key, result_json, submit_endpoint

if TYPE_CHECKING:
    from akool_async._ratelimit import RateController

    from ._journal_pg import Claim, PgJournal

__all__ = ["JournalLedger", "Ledger", "open_ledger"]

_logger = logging.getLogger("akool_async")


class Ledger:
    """No journal: nothing is recorded, no row is found, nothing resumes."""

    #: True when requests come from the journal's leases (a shared batch).
    claims = False
    #: True when a final row may be written behind the outcome (``record_soon``), no task.
    behind = True
    #: The journal that remembers media resolutions (only an SQLite one does).
    resolutions: Journal | None = None

    async def reader(
        self, requests: Iterable[R] | AsyncIterable[R], gate: RateController, stack: AsyncExitStack
    ) -> Reader[R] | ClaimReader[R]:
        """The batch's input: read by the batch itself, or leased by a shared journal."""
        return Reader(requests)

    def identify(self, item: Item[Any]) -> None:
        """Check the request (raises ``ValidationError``); give it its key if rows need one."""
        submit_endpoint(item.request)  # the key only identifies journal rows

    def identify_claimed(self, item: Item[Any], claim: Claim) -> None:
        """A leased request's key and occurrence (only a shared journal leases)."""
        raise AssertionError("only a shared journal leases requests")

    async def admit(self, item: Item[Any]) -> JournalRecord | None:
        """The request's row (and its occurrence, on the item), or None: submit it."""
        return None

    async def begin_submit(self, item: Item[Any]) -> None:
        """Durably record the intent to submit, before anything is sent."""

    async def submitted(self, item: Item[Any], job: SwapJob) -> JournalError | None:
        """Record the job a submit created (shielded); the ``JournalError`` if that failed."""
        return None

    async def record(
        self, item: Item[Any], state: JournalState, *args: Any, **fields: Any
    ) -> JournalError | None:
        """Move the item's row to ``state``: ``(result, error)`` or explicit columns.

        Returns:
            None, or the ``JournalError`` of a failed write (logged at WARNING with the job
            id: a job the journal could not record must not go unreported).
        """
        return None

    def record_soon(self, item: Item[Any], outcome: Outcome[Any]) -> None:
        """The final row of a settled job without a download, written behind."""

    async def record_unsubmitted(
        self, item: Item[Any], state: JournalState, error: AkoolError | None
    ) -> None:
        """The row of a request that got no job (``state``: 'unsent' or 'rejected')."""

    async def record_unsent(self, item: Item[Any]) -> None:
        """Record that the request was not sent (shielded: it runs while being cancelled)."""

    async def record_refusal(
        self, item: Item[Any], state: JournalState, error: AkoolError
    ) -> AkoolError:
        """Record a failed submit's answer (shielded); the error for its outcome."""
        return error


class JournalLedger(Ledger):
    """A batch's rows in its journal (SQLite or PostgreSQL)."""

    def __init__(self, journal: JournalBackend) -> None:
        self.journal = journal
        self.claims = journal.claims
        # No write-behind in a shared journal: its final rows are written in a task.
        self.behind = isinstance(journal, Journal)
        self.resolutions = journal if isinstance(journal, Journal) else None
        self._keys: list[tuple[str, str, str]] = []

    async def reader(
        self, requests: Iterable[R] | AsyncIterable[R], gate: RateController, stack: AsyncExitStack
    ) -> Reader[R] | ClaimReader[R]:
        """Read the whole input, join the shared batch with it, share the throttle gate."""
        if not self.claims:
            return Reader(requests)
        journal = cast("PgJournal", self.journal)
        if isinstance(requests, Iterable):
            everything = list(requests)
        else:
            everything = [request async for request in requests]
        self._keys = _shared_keys(everything)
        await journal.load(self._keys)
        journal.attach_gate(gate)
        stack.callback(journal.detach_gate)
        return ClaimReader(journal, everything)

    def identify(self, item: Item[Any]) -> None:
        item.key, item.text = request_key(item.request)

    def identify_claimed(self, item: Item[Any], claim: Claim) -> None:
        item.key, item.text, _ = self._keys[item.index]
        item.occurrence = claim.occurrence

    async def admit(self, item: Item[Any]) -> JournalRecord | None:
        item.occurrence, record = await self.journal.admit(item.key)
        return record

    async def begin_submit(self, item: Item[Any]) -> None:
        try:
            await self.journal.begin_submit(
                item.key, item.occurrence, index=item.index,
                kind=type(item.request).__name__, request=item.text, ref=item.ref,
            )  # fmt: skip
        except BaseException as exc:
            if not isinstance(exc, JournalError):
                await self.record_unsent(item)  # cancelled before anything went out
            raise

    async def submitted(self, item: Item[Any], job: SwapJob) -> JournalError | None:
        with anyio.CancelScope(shield=True):
            return await self.record(
                item, "submitted", job_id=job.id, job_ref=job.job_id, media=str(job.media),
                job_url=job.url,
            )  # fmt: skip
        raise AssertionError("unreachable")  # pragma: no cover - a bare shield cancels nothing

    async def record(
        self, item: Item[Any], state: JournalState, *args: Any, **fields: Any
    ) -> JournalError | None:
        if args:
            result, error = args
            columns = error_columns(error)
            fields.update(
                status=result.status if result is not None else None,
                result=result_json(result),
                error_type=columns.error_type,
                error_message=columns.error_message,
                error_code=columns.error_code,
            )
        try:
            await self.journal.update(item.key, item.occurrence, state, **fields)
        except JournalError as exc:
            job_id = fields.get("job_id") or (item.job.id if item.job is not None else None)
            _logger.warning(
                "input %d: job %s could not be journaled as %s: %s", item.index, job_id, state, exc
            )
            return exc
        return None

    def record_soon(self, item: Item[Any], outcome: Outcome[Any]) -> None:
        """The final row of a settled job without a download, written behind.

        The outcome goes to the caller before the row is durable: a crash in between leaves
        the row 'submitted', which a resume polls again (it never submits it again). A write
        that fails is logged with the job id, as ``record`` does.
        """
        journal = self.journal
        assert isinstance(journal, Journal)
        error = outcome.error
        state: JournalState
        if isinstance(error, JobFailedError):
            state = "failed"
        elif isinstance(error, JobTimeoutError):
            state = "timed_out"
        elif isinstance(error, JobNotFoundError):
            state = "not_found"
        elif error is None:
            state = "succeeded"
        else:
            return  # polling itself failed: the row stays 'submitted' (re-attached on resume)
        result = outcome.result
        columns = error_columns(error)
        job_id = outcome.job.id if outcome.job is not None else None

        def failed(exc: JournalError) -> None:
            _logger.warning(
                "input %d: job %s could not be journaled as %s: %s", item.index, job_id, state, exc
            )

        try:
            journal.update_soon(
                item.key, item.occurrence, state, on_error=failed,
                status=result.status if result is not None else None,
                result=result_json(result), error_type=columns.error_type,
                error_message=columns.error_message, error_code=columns.error_code,
            )  # fmt: skip
        except JournalError as exc:
            failed(exc)

    async def record_unsubmitted(
        self, item: Item[Any], state: JournalState, error: AkoolError | None
    ) -> None:
        columns = error_columns(error)
        await self.journal.record_unsubmitted(
            item.key, item.occurrence, index=item.index, kind=type(item.request).__name__,
            request=item.text, state=state, error_type=columns.error_type,
            error_message=columns.error_message, error_code=columns.error_code,
        )  # fmt: skip

    async def record_unsent(self, item: Item[Any]) -> None:
        """Record that the request was not sent (shielded: it runs while being cancelled).

        If even this fails the row stays 'submitting' and a resume reports it as ambiguous:
        safe, merely pessimistic.
        """
        with anyio.CancelScope(shield=True), contextlib.suppress(JournalError):
            await self.record_unsubmitted(item, "unsent", None)

    async def record_refusal(
        self, item: Item[Any], state: JournalState, error: AkoolError
    ) -> AkoolError:
        if isinstance(error, JournalError):
            return error
        try:
            with anyio.CancelScope(shield=True):  # the answer came: write it down
                await self.record_unsubmitted(item, state, error)
        except JournalError as exc:
            return exc
        return error

    async def sweep_parts(self, directory: Path) -> None:
        """Delete the ``.part`` files of this batch's jobs (a killed run leaves them)."""
        with anyio.CancelScope(shield=True), contextlib.suppress(JournalError):
            parts = await anyio.to_thread.run_sync(part_files, directory)
            if parts:  # usually none: the journal is asked only about the files found
                ours = await self.journal.known_jobs(parts)
                await anyio.to_thread.run_sync(sweep_parts, directory, ours)


async def open_ledger(stack: AsyncExitStack, options: BatchOptions, base_url: str) -> Ledger:
    """The batch's ledger, its journal (if any) entered on ``stack``.

    The caller enters ``stack`` outside the batch's work scope, so that the cleanup writes of
    cancelled tasks still land.
    """
    if options.journal is None:
        return Ledger()
    journal = await stack.enter_async_context(
        open_journal(
            options.journal,
            base_url=base_url,
            batch_id=options.batch_id,
            lease=options.lease,
            worker_id=options.worker_id,
            resubmit_ambiguous=options.resubmit_ambiguous,
        )
    )
    ledger = JournalLedger(journal)
    directory = options.download_dir
    if isinstance(directory, Path):
        stack.push_async_callback(ledger.sweep_parts, directory)
        await ledger.sweep_parts(directory)  # left behind by a killed run
    return ledger


def _shared_keys(requests: list[Any]) -> list[tuple[str, str, str]]:
    """``(key, canonical JSON, kind)`` per request; a request that is not one gets a stand-in."""
    keys = []
    for request in requests:
        try:
            key, text = request_key(request)
        except ValidationError:
            text = f"invalid:{type(request).__name__}"
            key = hashlib.sha256(text.encode()).hexdigest()
        keys.append((key, text, type(request).__name__))
    return keys
