"""``akool-async batch`` on a shared journal: many workers, one batch, and ``--status``.

``--journal postgresql://... --batch-id NAME`` makes the batch command one worker of a
shared batch (the same command on every worker, on any host). Each worker writes the report
of the swaps it finished to ``DIR/report.<worker>.jsonl`` (all workers may share ``DIR``);
``batch --status --journal URL --batch-id NAME`` shows the whole batch, every worker's
outcomes together, from the journal.
"""

from __future__ import annotations

import re
import time

import attrs

from akool_async._jobs._journals import is_shared_url

from ._context import EXIT_OK, EXIT_USAGE, CliError, Context

__all__ = ["SharedOptions", "cmd_batch_status", "shared_options"]


@attrs.frozen(kw_only=True)
class SharedOptions:
    """What the command line says about sharing the batch (all None for an SQLite journal)."""

    journal: str | None = None
    batch_id: str | None = None
    worker_id: str | None = None
    report_name: str = "report.jsonl"


def _worker_id() -> str:
    from akool_async._jobs._journal_pg import _worker_id as make

    return make()


def shared_options(ctx: Context) -> SharedOptions:
    """Check ``--journal``, ``--batch-id``, ``--worker-id`` and ``--lease`` together.

    Raises:
        CliError: (exit 2) a shared journal without a batch id, or sharing options without one.
    """
    args = ctx.args
    if not is_shared_url(args.journal):
        for flag, value in (
            ("--batch-id", args.batch_id),
            ("--worker-id", args.worker_id),
            ("--lease", args.lease),
        ):
            if value is not None:
                raise CliError(
                    f"{flag} is for a shared batch: it needs --journal postgresql://...",
                    EXIT_USAGE,
                )
        if args.journal is not None and "://" in args.journal:
            raise CliError(
                f"unsupported journal URL {args.journal.split('://', 1)[0]!r}://: use a file "
                "path (SQLite) or postgresql://",
                EXIT_USAGE,
            )
        return SharedOptions()
    if not args.batch_id:
        raise CliError(
            "a postgresql:// journal needs --batch-id NAME (the same on every worker)", EXIT_USAGE
        )
    worker = args.worker_id or _worker_id()
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", worker)
    return SharedOptions(
        journal=args.journal,
        batch_id=args.batch_id,
        worker_id=worker,
        report_name=f"report.{safe}.jsonl",
    )


async def cmd_batch_status(ctx: Context) -> int:
    """``akool-async batch --status --journal postgresql://... --batch-id NAME``."""
    args = ctx.args
    if not is_shared_url(args.journal) or not args.batch_id:
        raise CliError(
            "batch --status needs --journal postgresql://... and --batch-id NAME", EXIT_USAGE
        )
    from akool_async._jobs._journal_pg import read_batch_status

    status = await read_batch_status(args.journal, args.batch_id)
    workers = [
        {
            "worker_id": worker.worker_id,
            "host": worker.host,
            "pid": worker.pid,
            "alive": worker.alive,
            "holding": worker.holding,
            "heartbeat_age": round(status.now - worker.heartbeat_at, 3),
        }
        for worker in status.workers
    ]
    if ctx.json:
        ctx.emit(
            {
                "batch_id": status.batch_id,
                "base_url": status.base_url,
                "digest": status.digest,
                "total": status.total,
                "finished": status.finished,
                "states": dict(sorted(status.states.items())),
                "throttles": status.throttles,
                "workers": workers,
            }
        )
        return EXIT_OK
    ctx.require_rich("akool-async batch --status")
    from rich.table import Table

    from ._progress import key_value_table, print_table

    age = time.time() - status.created_at
    rows = [
        ("swaps", f"{status.total:,}"),
        ("finished", f"{status.finished:,} ({status.finished / max(status.total, 1):.0%})"),
        *((state, f"{count:,}") for state, count in sorted(status.states.items())),
        ("throttles shared", f"{status.throttles:,}"),
        ("workers alive", f"{sum(1 for w in status.workers if w.alive)} of {len(workers)}"),
        ("started", f"{age:,.0f} s ago"),
    ]
    table = Table(title="Workers", title_justify="left", box=None, padding=(0, 2))
    for column in ("worker", "host", "pid", "alive", "holding", "heartbeat"):
        table.add_column(column)
    for worker in workers:
        table.add_row(
            str(worker["worker_id"]),
            str(worker["host"]),
            str(worker["pid"]),
            "yes" if worker["alive"] else "no",
            str(worker["holding"]),
            f"{worker['heartbeat_age']:.1f} s ago",
        )
    print_table(ctx.stdout, key_value_table(f"Batch {status.batch_id}", rows), table)
    return EXIT_OK
