"""The batch progress display: laid out to the width, counts that add up, printed once."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from rich.console import Console

from akool_async import BatchStatistics, RateLimitStatistics
from akool_async.cli._progress import BatchProgress, ProgressView

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


def limiter(rate: float, *, waiting: int = 40) -> RateLimitStatistics:
    """Rate controller statistics pacing at ``rate``, ``waiting`` requests waiting their turn."""
    return RateLimitStatistics(
        rate=rate,
        limit=None,
        phase="limited",
        measured=rate,
        throttle_episodes=3,
        refused=12,
        waiting=waiting,
        waits=1_000,
        wait_seconds=120.0,
    )


#: The stages again, the client rate-bound: slow, fractional, and fast rates.
BOUND = [
    (STAGES[0], limiter(0.333)),
    (STAGES[1], limiter(19.8)),
    (STAGES[2], limiter(4.5)),
    (STAGES[3], limiter(12_345.6)),
]

#: Every stage, unbound and rate-bound.
ALL = [(stats, None) for stats in STAGES] + BOUND


def view_of(stats: BatchStatistics, limit: RateLimitStatistics | None = None) -> ProgressView:
    """A progress view showing ``stats`` (and the client's rate statistics ``limit``)."""
    view = ProgressView(stats.total or 0)
    view.stats = stats
    view.limit = limit
    return view


def numbers(text: str, label: str) -> int:
    """The count shown before ``label``."""
    match = re.search(rf"([\d,]+) {label}\b", text)
    assert match is not None, (label, text)
    return int(match.group(1).replace(",", ""))


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize(("stats", "limit"), ALL)
def test_no_line_is_wider_than_the_console(
    width: int, stats: BatchStatistics, limit: RateLimitStatistics | None
) -> None:
    """Every line fits the width, so the terminal never wraps it."""
    view = view_of(stats, limit)
    widths = [line.cell_len for line in view.lines(width)]
    assert [w for w in widths if w > width] == []


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize(("stats", "limit"), ALL)
def test_counts_and_times_are_never_cut(
    width: int, stats: BatchStatistics, limit: RateLimitStatistics | None
) -> None:
    """The finished count, the total, the clock and the ETA show in full (no ellipsis)."""
    view = view_of(stats, limit)
    text = "\n".join(line.plain for line in view.lines(width))
    finished = stats.succeeded + stats.failed + stats.errored + stats.ambiguous
    assert "…" not in text
    assert f"{finished:,}/{stats.total:,}" in text
    assert re.search(r"\d+:\d\d:\d\d eta +(\d+:\d\d:\d\d|-:--:--)", text) is not None


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize(("stats", "limit"), ALL)
def test_counts_add_up_to_the_total(
    width: int, stats: BatchStatistics, limit: RateLimitStatistics | None
) -> None:
    """Finished plus in flight plus queued is the total, from one snapshot."""
    view = view_of(stats, limit)
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


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize(("stats", "limit"), BOUND)
def test_rate_bound_is_shown_whole(
    width: int, stats: BatchStatistics, limit: RateLimitStatistics
) -> None:
    """A rate-bound batch shows "rate-bound at R/s" on one line, never cut or broken."""
    lines = [line.plain for line in view_of(stats, limit).lines(width)]
    shown = [line for line in lines if "rate-bound at " in line]
    rate = {0.333: "0.333", 19.8: "19.8", 4.5: "4.5", 12_345.6: "12,346"}[limit.rate or 0]
    assert [f"rate-bound at {rate}/s" in line for line in shown] == [True]


@pytest.mark.parametrize("width", WIDTHS)
def test_bar_width_is_stable_when_rate_bound(width: int) -> None:
    """Becoming rate-bound (or not) moves neither the bar nor the counts line."""
    layouts = set()
    for limit in [None, limiter(19.8), limiter(19.8, waiting=0)]:
        lines = view_of(STAGES[2], limit).lines(width)
        bar = re.search(r"━+", lines[0].plain)
        assert bar is not None
        layouts.add((bar.span(), lines[1].plain.split("rate-bound")[0].rstrip()))
    assert len(layouts) == 1


def test_eta_follows_the_rate_while_rate_bound() -> None:
    """Rate-bound, the ETA is what is left to submit at the paced rate, not the average."""
    stats = snapshot(read=200, submitting=20, succeeded=100, pending=80, elapsed=600.0)
    unbound = view_of(stats).lines(120)[0].plain
    bound = view_of(stats, limiter(2.0)).lines(120)[0].plain  # 120 unsent at 2/s
    idle = view_of(stats, limiter(2.0, waiting=0)).lines(120)[0].plain
    assert ("eta  0:20:00" in unbound, "eta  0:01:00" in bound, "eta  0:20:00" in idle) == (
        True,
        True,
        True,
    )


def test_eta_when_everything_is_submitted_while_rate_bound() -> None:
    """Nothing left to submit, the ETA falls back to the average rate (never a stale 0:00:00)."""
    stats = snapshot(succeeded=100, pending=200, elapsed=600.0)
    assert "eta  0:20:00" in view_of(stats, limiter(2.0)).lines(120)[0].plain


def test_a_finished_batch_drops_rate_bound() -> None:
    """Once the batch is done, the final display no longer says it is rate-bound."""
    recorded = Console(record=True, width=80, file=io.StringIO(), force_terminal=False)
    with BatchProgress(io.StringIO(), 300, output=recorded) as bar:
        bar.update(STAGES[2], limiter(4.5))
        bar.update(snapshot(succeeded=300, elapsed=30.0, finished=True))
    assert "rate-bound" not in recorded.export_text()


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
