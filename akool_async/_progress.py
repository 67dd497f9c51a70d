"""Rich rendering for the command line: the live batch progress bar and the summary tables.

Imported only by commands that draw (``batch`` and ``demo`` without ``--json``), after the
command line checked that rich is installed. The progress bar is drawn on stderr so that
stdout carries only results; it is fed by the batch's ``on_event`` hook (outcomes as they
happen) and by periodic ``Batch.statistics()`` snapshots (what is in flight).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import IO, Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from ._events import BatchEvent, BatchStatistics
from ._ratelimit import RateLimitStatistics

__all__ = ["BatchProgress", "console", "key_value_table", "print_table", "requests_rows"]


def console(stream: IO[str]) -> Console:
    """A console writing to ``stream`` (colours only on a terminal)."""
    return Console(file=stream, highlight=False, soft_wrap=False)


class BatchProgress:
    """A live progress bar of one batch: ``with BatchProgress(stderr, total) as p:``.

    Call ``event`` from the batch's ``on_event`` hook and ``update`` with statistics
    snapshots; both are cheap (rich redraws on its own timer).
    """

    def __init__(self, stream: IO[str], total: int, *, label: str = "swaps") -> None:
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(
                "[green]{task.fields[ok]} ok[/] [red]{task.fields[failed]} failed[/]"
                " [dim]{task.fields[flight]}[/]"
            ),
            TimeElapsedColumn(),
            _RateAwareRemaining(),
            console=console(stream),
            refresh_per_second=8,
            transient=False,
        )
        self._task: TaskID = self._progress.add_task(
            label, total=total, ok=0, failed=0, flight="", eta=None, start=True
        )
        self._ok = 0
        self._failed = 0

    def __enter__(self) -> BatchProgress:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def event(self, event: BatchEvent) -> None:
        """Count a finished request (other events only show up through ``update``)."""
        if event.kind != "finished" or event.outcome is None:
            return
        if event.outcome.ok:
            self._ok += 1
        else:
            self._failed += 1
        self._progress.update(self._task, advance=1, ok=self._ok, failed=self._failed)

    def update(self, stats: BatchStatistics, limit: RateLimitStatistics | None = None) -> None:
        """Show what is in flight (submitting, waiting for AKOOL, downloading).

        With the client's rate statistics, a rate-bound batch says so, at what rate, and its
        time remaining follows that rate.
        """
        parts = []
        eta = None
        if stats.submitting:
            parts.append(f"{stats.submitting} submitting")
        if stats.pending:
            parts.append(f"{stats.pending} processing")
        if stats.downloading:
            parts.append(f"{stats.downloading} downloading")
        if stats.throttles:
            parts.append(f"{stats.throttles} throttled")
        if limit is not None and limit.rate_bound and limit.rate:
            parts.append(f"rate-bound at {limit.rate:.3g}/s")
            left = (stats.total or 0) - stats.read + stats.submitting
            eta = max(0, left) / limit.rate if stats.total is not None else None
        self._progress.update(self._task, flight=", ".join(parts), eta=eta)


class _RateAwareRemaining(TimeRemainingColumn):
    """rich's time remaining, or, while the batch is rate-bound, what is left to submit at
    the current rate (rich's own estimate trails a rate change by its averaging window)."""

    def render(self, task: Any) -> Any:
        eta = task.fields.get("eta")
        if eta is None or task.finished:
            return super().render(task)
        minutes, seconds = divmod(int(eta), 60)
        hours, minutes = divmod(minutes, 60)
        return Text(f"{hours:d}:{minutes:02d}:{seconds:02d}", style="progress.remaining")


def key_value_table(title: str, rows: Sequence[tuple[str, str]]) -> Table:
    """A two-column table of labelled values."""
    table = Table(title=title, title_justify="left", show_header=False, box=None, padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(justify="right")
    for label, value in rows:
        table.add_row(label, value)
    return table


def print_table(stream: IO[str], *tables: Any) -> None:
    """Print rich renderables (tables) on ``stream``, separated by blank lines."""
    out = console(stream)
    for index, table in enumerate(tables):
        if index:
            out.print()
        out.print(table)


def requests_rows(requests: Mapping[str, int]) -> list[tuple[str, str]]:
    """``(endpoint, count)`` rows, busiest first, then a total."""
    rows = [(name, f"{count:,}") for name, count in sorted(requests.items(), key=lambda i: -i[1])]
    rows.append(("total", f"{sum(requests.values()):,}"))
    return rows
