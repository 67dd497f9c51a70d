"""``akool-async report DIR``: (re)build the HTML gallery of a batch, also mid-batch."""

from __future__ import annotations

from pathlib import Path

from ._cli_context import EXIT_OK, EXIT_USAGE, CliError, Context
from ._report import write_report_html

__all__ = ["cmd_report"]


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
