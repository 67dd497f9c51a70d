"""``akool-async batch``: a manifest of swaps through ``swap_many``, resumable, with a report.

The whole manifest is validated before anything is sent (exit 2 and one ``error:`` line per
problem, ``FILE:LINE: FIELD: reason``). Then every swap goes through ``client.swap_many`` with
a journal (default ``DIR/.akool-journal.sqlite``), downloads into ``DIR`` and a live progress
bar on stderr. At the end the JSON Lines report (default ``DIR/report.jsonl``, one record per
manifest line, in line order) is written atomically and a summary is printed.

Stopping: Ctrl-C (or SIGTERM) cancels the batch cleanly; jobs already submitted keep running
on AKOOL and the journal remembers them. Running the same command again resumes: finished
swaps are reported from the journal, submitted ones are re-attached (never paid twice), and
only swaps that provably were never submitted are submitted.
"""

from __future__ import annotations

import json
import os
import shlex
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, Final

import anyio
import attrs

from akool_async._client import AsyncClient
from akool_async._errors import AkoolError, JobFailedError
from akool_async._jobs._events import BatchEvent, BatchStatistics, Outcome
from akool_async._jobs._journals import without_passwords
from akool_async._models import SwapRequest, SwapStatus
from akool_async._redact import redact
from akool_async._report import remember_batch

from ._context import EXIT_FAILED, EXIT_OK, EXIT_USAGE, PROG, CliError, Context
from ._manifest import ManifestEntry, read_manifest
from ._report import finish_batch_report
from ._shared import shared_options

__all__ = [
    "BatchRunResult",
    "cmd_batch",
    "outcome_record",
    "run_batch",
    "write_report",
]

_TICK: Final = 0.25
_FAILURES_SHOWN: Final = 10


def outcome_record(
    outcome: Outcome[Any], *, line: int | None, kind: str, ref: str | None = None
) -> dict[str, Any]:
    """One report record: what became of one swap, as a JSON-ready dict.

    ``id`` is the job's record ``_id`` (what ``status``, ``wait`` and ``delete`` take) and
    ``job_id`` AKOOL's own job id, as in every other command's JSON. ``status`` is ``"ok"``,
    ``"failed"`` (the job ended with status 4) or ``"error"`` (anything else: rejected submit,
    timeout, download failure, ambiguous submit...).
    """
    error = outcome.error
    if error is None:
        status = "ok"
    elif isinstance(error, JobFailedError):
        status = "failed"
    else:
        status = "error"
    result = outcome.result
    job, record_id, job_id = outcome.job, None, None
    if job is not None:
        record_id, job_id = job.id, job.job_id
    if result is not None:
        record_id, job_id = record_id or result.id, job_id or result.job_id
    record: dict[str, Any] = {}
    if line is not None:
        record |= {"line": line, "ref": ref}
    record |= {
        "kind": kind,
        "status": status,
        "id": record_id,
        "job_id": job_id,
        "result_url": result.url
        if result is not None and result.status is SwapStatus.SUCCESS
        else None,
        "file": outcome.location or (None if outcome.path is None else str(outcome.path)),
        "sha256": outcome.sha256,
        "error_type": None if error is None else type(error).__name__,
        "error_message": None if error is None else str(error),
        "resumed": outcome.resumed,
    }
    return record


@attrs.frozen(kw_only=True)
class BatchRunResult:
    """What ``run_batch`` produced: every record (in line order) and the batch's counters."""

    records: list[dict[str, Any]]
    statistics: BatchStatistics
    seconds: float

    @property
    def ok(self) -> bool:
        """True when every swap succeeded."""
        return all(record["status"] == "ok" for record in self.records)

    def count(self, status: str) -> int:
        """Records with this ``status``."""
        return sum(1 for record in self.records if record["status"] == status)


async def run_batch(
    ctx: Context,
    client: AsyncClient,
    entries: Sequence[ManifestEntry],
    *,
    out_dir: Path | str | None,
    journal: Path | str | None = None,
    concurrency: int = 64,
    job_timeout: float | None = 3 * 3600.0,
    download_timeout: float | None = 3600.0,
    deadline: float | None = None,
    resubmit_ambiguous: bool = False,
    batch_id: str | None = None,
    worker_id: str | None = None,
    lease: float | None = None,
    progress: bool = True,
    label: str = "swaps",
    on_record: Callable[[dict[str, Any]], None] | None = None,
) -> BatchRunResult:
    """Run ``entries`` through ``client.swap_many``, with a live progress bar if asked.

    Returns once every swap has an outcome; cancellation (Ctrl-C) propagates after the batch
    stopped cleanly.
    """
    requests: list[SwapRequest] = [entry.request for entry in entries]
    bar: Any = None
    if progress:
        from ._progress import BatchProgress

        bar = BatchProgress(ctx.stderr, len(entries), label=label)

    def on_event(event: BatchEvent) -> None:
        if bar is not None:
            bar.event(event)

    started = time.monotonic()
    records: list[dict[str, Any]] = []
    batch = client.swap_many(
        requests,
        concurrency=concurrency,
        journal=journal,
        download_dir=out_dir,
        job_timeout=job_timeout,
        download_timeout=download_timeout,
        deadline=deadline,
        resubmit_ambiguous=resubmit_ambiguous,
        on_event=on_event,
        batch_id=batch_id,
        worker_id=worker_id,
        lease=lease,
    )

    async def tick() -> None:
        while True:
            bar.update(batch.statistics(), client.statistics().rate_limit)
            await anyio.sleep(_TICK)

    display: AbstractContextManager[Any] = bar if bar is not None else nullcontext()
    with display:
        async with batch, anyio.create_task_group() as tg:
            if bar is not None:
                tg.start_soon(tick)
            async for outcome in batch:
                entry = entries[outcome.index]
                record = outcome_record(outcome, line=entry.line, kind=entry.kind, ref=entry.ref)
                records.append(record)
                if on_record is not None:
                    on_record(record)
            tg.cancel_scope.cancel()
        # The final counts; after a Ctrl-C the display keeps the last snapshot taken while the
        # batch ran (once stopped, jobs still running at AKOOL would count as not started).
        if bar is not None:
            bar.update(batch.statistics())
    records.sort(key=lambda record: record["line"])
    return BatchRunResult(
        records=records, statistics=batch.statistics(), seconds=time.monotonic() - started
    )


def write_report(path: Path, records: Sequence[dict[str, Any]]) -> None:
    """Write the JSON Lines report atomically (a temporary file renamed over ``path``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp")
    with temp.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(redact(json.dumps(record, ensure_ascii=False)) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)


def _resume_command(ctx: Context) -> str:
    """The command line that was run (the way to resume), with any API key masked."""
    return ctx.redact(shlex.join([PROG, *ctx.argv]))


def _summary(ctx: Context, result: BatchRunResult, report: Path, out_dir: Path | str) -> None:
    from ._progress import key_value_table, print_table, requests_rows

    stats = result.statistics
    swaps = [
        ("swaps", f"{len(result.records):,}"),
        ("succeeded", f"{result.count('ok'):,}"),
        ("failed (status 4)", f"{result.count('failed'):,}"),
        ("errors", f"{result.count('error'):,}"),
        ("resumed from the journal", f"{stats.resumed:,}"),
        ("credits used", "unknown" if stats.credits_used is None else f"{stats.credits_used:,g}"),
        ("wall time", f"{result.seconds:.1f} s"),
        ("results", str(out_dir)),
        ("report", str(report)),
    ]
    print_table(
        ctx.stdout,
        key_value_table("Batch", swaps),
        key_value_table("Requests by endpoint", requests_rows(stats.requests)),
    )
    failures = [record for record in result.records if record["status"] != "ok"]
    for record in failures[:_FAILURES_SHOWN]:
        ref = f" ref {record['ref']!r}" if record.get("ref") else ""
        ctx.say(
            f"line {record['line']}{ref} ({record['kind']}): {record['status']}: "
            f"{record['error_type']}: {record['error_message']}"
        )
    if len(failures) > _FAILURES_SHOWN:
        ctx.say(f"... and {len(failures) - _FAILURES_SHOWN} more in {report}")
    unjournaled = [
        record for record in failures if record["error_type"] == "JournalError" and record["id"]
    ]
    for record in unjournaled:  # paid for: the report and this line are their only record
        akool = f" (AKOOL job {record['job_id']})" if record["job_id"] else ""
        ctx.say(
            f"line {record['line']}: job {record['id']}{akool} was created but the journal "
            "could not record it (a resume will not know it): keep this job id"
        )
    ambiguous = sum(1 for record in failures if record["error_type"] == "AmbiguousSubmitError")
    if ambiguous:
        ctx.say(
            f"{ambiguous} swap{'s' if ambiguous > 1 else ''} may or may not have been submitted "
            "(the answer was lost: a kill mid-submit, or a connection lost after sending): "
            "check your AKOOL dashboard, or re-run with --resubmit-ambiguous to submit them "
            "again (they may be paid twice)"
        )


async def _gallery(
    ctx: Context,
    out_dir: Path,
    entries: Sequence[ManifestEntry],
    result: BatchRunResult,
    journal: Path | None,
) -> Path | None:
    """Build ``DIR/report.html``; a failure is a warning (the JSON report is what counts)."""
    try:
        return await finish_batch_report(
            out_dir, entries, result, journal=journal, secrets=ctx.secrets
        )
    except (OSError, AkoolError) as exc:
        ctx.note(f"warning: the HTML report could not be written: {exc}")
        return None


async def cmd_batch(ctx: Context) -> int:
    """``akool-async batch MANIFEST --out DIR ...``."""
    args = ctx.args
    if args.status:
        from ._shared import cmd_batch_status

        return await cmd_batch_status(ctx)
    if args.manifest is None or args.out is None:
        raise CliError("batch needs a MANIFEST and --out DIR (or --status)", EXIT_USAGE)
    shared = shared_options(ctx)
    if not ctx.json:
        ctx.require_rich("akool-async batch")
    try:
        entries = await anyio.to_thread.run_sync(
            lambda: read_manifest(args.manifest, format=args.format)
        )
    except OSError as exc:
        raise CliError(
            f"cannot read the manifest {str(args.manifest)!r}: {exc.strerror}", EXIT_USAGE
        ) from None
    out_dir: Path | str = args.out
    # An object-store --out: the journal and the report stay local, next to the manifest.
    local = out_dir if isinstance(out_dir, Path) else args.manifest.with_suffix("")
    journal: Path | str = shared.journal or (
        Path(args.journal)
        if args.journal
        else local / ".akool-journal.sqlite"
        if isinstance(out_dir, Path)
        else Path(f"{local}.journal")
    )
    report: Path = args.report or (
        local / shared.report_name
        if isinstance(out_dir, Path)
        else Path(f"{local}.{shared.report_name}")
    )
    client = ctx.client()  # no credentials: ValidationError (exit 2) before anything is sent
    if isinstance(out_dir, Path):
        await anyio.Path(out_dir).mkdir(parents=True, exist_ok=True)
        local_journal = journal if isinstance(journal, Path) else None  # never a database URL
        await anyio.to_thread.run_sync(
            lambda: remember_batch(out_dir, entries, journal=local_journal)
        )
    finished = 0

    def on_record(record: dict[str, Any]) -> None:
        nonlocal finished
        finished += 1
        if ctx.json:
            ctx.emit(record)

    ctx.interrupt_hint = lambda: (
        f"{finished} of {len(entries)} swaps finished; jobs already submitted keep running on "
        f"AKOOL and are in the journal {without_passwords(str(journal))!r}.\n"
        f"to resume, run the same command again: {_resume_command(ctx)}"
    )
    async with ctx.connect(client):
        result = await run_batch(
            ctx,
            client,
            entries,
            out_dir=out_dir,
            journal=journal,
            concurrency=args.concurrency,
            job_timeout=args.job_timeout,
            download_timeout=args.download_timeout,
            deadline=args.deadline,
            resubmit_ambiguous=args.resubmit_ambiguous,
            batch_id=shared.batch_id,
            worker_id=shared.worker_id,
            lease=args.lease,
            progress=not ctx.json and not ctx.quiet,
            on_record=on_record,
        )
    await anyio.to_thread.run_sync(write_report, report, result.records)
    # (the HTML gallery needs the files at hand: none for results in an object store)
    page = (
        await _gallery(
            ctx, out_dir, entries, result, journal if isinstance(journal, Path) else None
        )
        if isinstance(out_dir, Path)
        else None
    )
    if not ctx.json:
        _summary(ctx, result, report, out_dir)
        if page is not None:
            ctx.say(f"gallery: open {page}")
    return EXIT_OK if result.ok else EXIT_FAILED
