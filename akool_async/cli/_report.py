"""``akool-async report DIR``: (re)build the HTML gallery of a batch, also mid-batch.

Also the report a CLI batch (``batch``, ``demo``) leaves when it ends: ``finish_batch_report``
records the batch's statistics next to its manifest lines, then builds ``DIR/report.html`` with
the SDK's ``write_report_html``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import anyio

from akool_async._report import remember_batch, write_report_html

from ._context import EXIT_OK, EXIT_USAGE, CliError, Context

__all__ = ["cmd_report", "finish_batch_report"]


async def cmd_report(ctx: Context) -> int:
    """``akool-async report DIR [--journal FILE] [--output FILE] [--inputs ...]``."""
    args = ctx.args
    if args.journal is not None and not args.journal.is_file():
        raise CliError(f"no journal at {str(args.journal)!r}", EXIT_USAGE)
    page: Path = await write_report_html(
        args.dir,
        journal=args.journal,
        output=args.output,
        thumbnails=args.thumbnails,
        inputs=args.inputs,
        secrets=ctx.secrets,
    )
    if ctx.json:
        ctx.emit({"report": str(page)})
    else:
        ctx.say(f"open {page}")
    return EXIT_OK


async def finish_batch_report(
    directory: str | os.PathLike[str],
    entries: Sequence[Any],
    result: Any,
    *,
    journal: str | os.PathLike[str] | None = None,
    inputs: Literal["link", "fetch", "none"] = "link",
    secrets: Sequence[str] = (),
) -> Path:
    """At the end of a CLI batch: record its statistics, then build ``DIR/report.html``."""
    directory = Path(directory)
    await anyio.to_thread.run_sync(
        lambda: remember_batch(
            directory,
            entries,
            journal=journal,
            statistics=result.statistics,
            seconds=result.seconds,
        )
    )
    if journal is not None and not await anyio.Path(journal).is_file():
        journal = None  # nothing was journaled (an empty manifest)
    return await write_report_html(
        directory, journal=journal, records=result.records, inputs=inputs, secrets=secrets
    )
