"""The batch progress display: laid out to the width, counts that add up, printed once."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from rich.console import Console

from akool_async import BatchStatistics
from akool_async._progress import BatchProgress, ProgressView

WIDTHS = [80, 120]


def snapshot(**changes: Any) -> BatchStatistics:
    """A statistics snapshot of a 300-swap batch, with ``changes`` applied."""
    fields: dict[str, Any] = {
        "total": 300,
        "read": 300,
        "waiting_input": 0,
        "submitting": 0,
        "pending": 0,
        "downloading": 0,
        "succeeded": 0,
        "failed": 0,
        "errored": 0,
        "ambiguous": 0,
        "timed_out": 0,
        "resumed": 0,
        "submits": 0,
        "credits_before": None,
        "credits_now": None,
        "credits_used": None,
        "requests": {},
        "retries": 0,
        "throttles": 0,
        "elapsed": 0.0,
        "throughput": 0.0,
        "finished": False,
    }
    fields.update(changes)
    return BatchStatistics(**fields)


#: Snapshots of one batch over time, the last one large numbers everywhere.
STAGES = [
    snapshot(read=64, submitting=64),
    snapshot(succeeded=5, submitting=20, pending=275, elapsed=3.0, throttles=3),
    snapshot(succeeded=85, failed=4, errored=2, pending=180, downloading=3, elapsed=62.0),
    snapshot(
        total=100_000,
        succeeded=91_234,
        failed=6,
        ambiguous=1,
        submitting=64,
        pending=1_800,
        downloading=3,
        elapsed=9_000.0,
        retries=17,
        throttles=12_345,
    ),
]


def numbers(text: str, label: str) -> int:
    """The count shown before ``label``."""
    match = re.search(rf"([\d,]+) {label}\b", text)
    assert match is not None, (label, text)
    return int(match.group(1).replace(",", ""))


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("stats", STAGES)
def test_no_line_is_wider_than_the_console(width: int, stats: BatchStatistics) -> None:
    """Every line fits the width, so the terminal never wraps it."""
    view = ProgressView(stats.total or 0)
    view.stats = stats
    widths = [line.cell_len for line in view.lines(width)]
    assert [w for w in widths if w > width] == []


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("stats", STAGES)
def test_counts_and_times_are_never_cut(width: int, stats: BatchStatistics) -> None:
    """The finished count, the total, the clock and the ETA show in full (no ellipsis)."""
    view = ProgressView(stats.total or 0)
    view.stats = stats
    text = "\n".join(line.plain for line in view.lines(width))
    finished = stats.succeeded + stats.failed + stats.errored + stats.ambiguous
    assert "…" not in text
    assert f"{finished:,}/{stats.total:,}" in text
    assert re.search(r"\d+:\d\d:\d\d eta +(\d+:\d\d:\d\d|-:--:--)", text) is not None


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("stats", STAGES)
def test_counts_add_up_to_the_total(width: int, stats: BatchStatistics) -> None:
    """Finished plus in flight plus queued is the total, from one snapshot."""
    view = ProgressView(stats.total or 0)
    view.stats = stats
    text = "\n".join(line.plain for line in view.lines(width))
    labels = ["ok", "failed", "submitting", "processing", "downloading", "queued"]
    shown = {label: numbers(text, label) for label in labels}
    assert sum(shown.values()) == stats.total
    assert shown["failed"] == stats.failed + stats.errored + stats.ambiguous


@pytest.mark.parametrize("width", WIDTHS)
def test_bar_width_is_stable(width: int) -> None:
    """The bar keeps its position and width from the first snapshot to the last."""
    spans = set()
    for stats in STAGES[:3]:
        view = ProgressView(300)
        view.stats = stats
        first = view.lines(width)[0].plain
        bar = re.search(r"━+", first)
        assert bar is not None
        spans.add(bar.span())
    assert len(spans) == 1


def test_running_totals_are_labelled_apart() -> None:
    """Throttles and retries are shown as totals 'so far', not beside the current counts."""
    view = ProgressView(100_000)
    view.stats = STAGES[3]
    text = "\n".join(line.plain for line in view.lines(120))
    assert "so far: 17 retried, 12,345 throttled" in text


def test_eta_follows_the_average_rate() -> None:
    """A steady rate gives an ETA of the remaining work at that rate (not a stale 0:00:01)."""
    view = ProgressView(300)
    view.stats = snapshot(succeeded=100, pending=20, elapsed=600.0)  # 10 swaps a minute
    assert "eta  0:20:00" in view.lines(120)[0].plain


@pytest.mark.parametrize("width", WIDTHS)
def test_printed_once_after_an_interruption(width: int) -> None:
    """Interrupted (Ctrl-C), the display is printed once, in its last state, marked stopped."""
    recorded = Console(record=True, width=width, file=io.StringIO(), force_terminal=False)
    bar = BatchProgress(io.StringIO(), 300, output=recorded)

    def interrupted_run() -> None:
        with bar:
            bar.update(STAGES[1])
            bar.update(STAGES[2])
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted_run()
    text = recorded.export_text()
    assert text.count("/300") == 1
    assert text.startswith("■ swaps ")
    assert " 91/300 " in text
    assert all(len(line) <= width for line in text.splitlines())


def test_a_finished_batch_is_marked_done() -> None:
    """A batch that finished shows a check mark, 100% and no time left."""
    recorded = Console(record=True, width=80, file=io.StringIO(), force_terminal=False)
    with BatchProgress(io.StringIO(), 300, output=recorded) as bar:
        bar.update(snapshot(succeeded=299, failed=1, elapsed=30.0, finished=True))
    first = recorded.export_text().splitlines()[0]
    assert first.startswith("✓ swaps ")
    assert first.endswith("300/300 100%  0:00:30 eta  0:00:00")
