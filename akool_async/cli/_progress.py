"""Rich rendering for the command line: the live batch progress bar and the summary tables.

Imported only by commands that draw (``batch`` and ``demo`` without ``--json``), after the
command line checked that rich is installed. The progress display is drawn on stderr so that
stdout carries only results; it is fed by periodic ``Batch.statistics()`` snapshots (with the
client's rate controller statistics), so that every count on it comes from the same moment and
they add up.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import IO, Any, Final

from rich.console import Console, ConsoleOptions, RenderResult
from rich.live import Live
from rich.table import Table
from rich.text import Text

from akool_async._jobs._events import BatchEvent, BatchStatistics
from akool_async._ratelimit import RateLimitStatistics

__all__ = [
    "BatchProgress",
    "ProgressView",
    "console",
    "key_value_table",
    "print_table",
    "requests_rows",
]

_SPINNER: Final = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
_BAR_MIN: Final = 10
_BAR_MAX: Final = 50
_CLOCK: Final = 8  # H:MM:SS up to 99 hours, right-aligned


def console(stream: IO[str]) -> Console:
    """A console writing to ``stream`` (colours only on a terminal)."""
    return Console(file=stream, highlight=False, soft_wrap=False)


def _rate(rate: float) -> str:
    """A request rate in three significant figures, or whole with separators from 100/s."""
    return f"{rate:,.0f}" if rate >= 99.95 else f"{rate:.3g}"


def _clock(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "-:--:--".rjust(_CLOCK)
    whole = int(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}".rjust(_CLOCK)


class ProgressView:
    """What the progress display shows, laid out to fit the console's width.

    Every count comes from one ``BatchStatistics`` snapshot, so they always add up:
    ``ok + failed + submitting + processing + downloading + queued == total``. Numbers are
    padded to the width of the total and the bar's width depends only on the console width and
    the total, so nothing moves while the batch runs. Line 1 is the bar, the finished count,
    the elapsed time and an ETA from the average rate so far; the other lines are the counts,
    broken between items (never inside one) so that no line wraps. Running totals
    (retries, throttling) are labelled "so far" to keep them apart from the current counts.

    While the client is rate-bound (requests wait for their turn at the rate controller) the
    counts end with "rate-bound at R/s", and the ETA is what is left to submit at that rate:
    the average so far trails a rate change, and a rate-bound batch goes no faster than it.
    """

    def __init__(self, total: int, *, label: str = "swaps") -> None:
        self.total = total
        self.label = label
        self.stats: BatchStatistics | None = None
        self.limit: RateLimitStatistics | None = None
        self.done = False
        self.interrupted = False

    # -- the numbers --------------------------------------------------------------------------

    def _counts(self) -> dict[str, int]:
        stats = self.stats
        if stats is None:
            return {"ok": 0, "failed": 0, "submitting": 0, "processing": 0, "downloading": 0}
        return {
            "ok": stats.succeeded,
            "failed": stats.failed + stats.errored + stats.ambiguous,
            "submitting": stats.submitting,
            "processing": stats.pending,
            "downloading": stats.downloading,
        }

    def _bound_rate(self) -> float | None:
        """The rate requests are paced at, while the client is rate-bound."""
        limit = self.limit
        if limit is None or not limit.rate_bound or not limit.rate:
            return None
        return limit.rate

    def _eta(self, finished: int) -> float | None:
        stats = self.stats
        if stats is None:
            return None
        rate = self._bound_rate()
        unsent = (self.total if stats.total is None else stats.total) - stats.read
        unsent += stats.submitting
        if rate is not None and unsent > 0:
            return unsent / rate
        if finished <= 0 or stats.elapsed <= 0:
            return None
        return (self.total - finished) / (finished / stats.elapsed)

    # -- the layout ---------------------------------------------------------------------------

    def lines(self, width: int, *, frame: int = 0) -> list[Text]:
        """The display as lines of at most ``width`` cells."""
        counts = self._counts()
        finished = counts["ok"] + counts["failed"]
        in_flight = counts["submitting"] + counts["processing"] + counts["downloading"]
        queued = max(0, self.total - finished - in_flight)
        digits = len(f"{self.total:,}")

        def number(value: int) -> str:
            return f"{value:,}".rjust(digits)

        spinner = _SPINNER[frame % len(_SPINNER)]
        mark = ("■" if self.interrupted else "✓") if self.done else spinner
        elapsed = 0.0 if self.stats is None else self.stats.elapsed
        eta = 0.0 if self.done and not self.interrupted else self._eta(finished)
        share = f"{100 * finished // max(1, self.total):>3d}%"
        head = Text.assemble((mark, "cyan"), " ", (self.label, "bold"), " ")
        tail = Text(
            f" {number(finished)}/{self.total:,} {share} {_clock(elapsed)} eta {_clock(eta)}"
        )
        room = width - head.cell_len - tail.cell_len
        lines: list[Text] = []
        if room >= _BAR_MIN:
            bar = min(_BAR_MAX, room)
            filled = bar * finished // max(1, self.total)
            line = head + Text("━" * filled, "green") + Text("━" * (bar - filled), "grey30")
            lines.append(line + tail)
        else:  # too narrow for a bar: the numbers alone
            lines.append(head + Text(tail.plain.lstrip()))
        items = [
            Text.assemble((number(counts["ok"]), "green"), " ok"),
            Text.assemble((number(counts["failed"]), "red"), " failed"),
            Text(f"{number(counts['submitting'])} submitting"),
            Text(f"{number(counts['processing'])} processing"),
            Text(f"{number(counts['downloading'])} downloading"),
            Text(f"{number(queued)} queued"),
        ]
        stats = self.stats
        if stats is not None and (stats.retries or stats.throttles):
            items.append(
                Text(f"so far: {stats.retries:,} retried, {stats.throttles:,} throttled", "dim")
            )
        rate = None if self.done else self._bound_rate()
        if rate is not None:
            items.append(Text(f"rate-bound at {_rate(rate)}/s", "yellow"))
        line = Text(" ")
        for item in items:
            if line.cell_len > 1 and line.cell_len + 2 + item.cell_len > width:
                lines.append(line)
                line = Text(" ")
            line = line + (Text("  ") if line.cell_len > 1 else Text("")) + item
        lines.append(line)
        for text in lines:
            text.truncate(width)  # only reached on absurdly narrow consoles
        return lines

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        frame = int(time.monotonic() * 10)
        lines = self.lines(options.max_width, frame=frame)
        yield Text("\n").join(lines)


class BatchProgress:
    """A live progress display of one batch: ``with BatchProgress(stderr, total) as p:``.

    Call ``update`` with statistics snapshots (every quarter second, and once at the end);
    ``event`` is kept for the batch's ``on_event`` hook and costs nothing. The display is drawn
    on ``stream`` (stderr: stdout carries only results) and printed once, in its final state,
    when the block ends, however it ends (Ctrl-C included).
    """

    def __init__(
        self,
        stream: IO[str],
        total: int,
        *,
        label: str = "swaps",
        output: Console | None = None,
    ) -> None:
        self.view = ProgressView(total, label=label)
        self._live = Live(
            self.view,
            console=output if output is not None else console(stream),
            refresh_per_second=8,
            transient=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )

    def __enter__(self) -> BatchProgress:
        self._live.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.view.done = True
        self.view.interrupted = exc_type is not None or (
            self.view.stats is not None and not self.view.stats.finished
        )
        self._live.stop()
        if not self._live.console.is_terminal:
            self._live.console.line()  # rich ends the final render with one only on terminals

    def event(self, event: BatchEvent) -> None:
        """Accept a batch event (the display is drawn from ``update``'s snapshots)."""

    def update(self, stats: BatchStatistics, limit: RateLimitStatistics | None = None) -> None:
        """Show this snapshot of the batch.

        With the client's rate statistics (``client.statistics().rate_limit``), a rate-bound
        batch says so, at what rate, and its time remaining follows that rate.
        """
        self.view.stats = stats
        self.view.limit = limit


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
