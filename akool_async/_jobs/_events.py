"""The values a batch hands out: outcomes, progress events and statistics snapshots.

Everything here is a frozen attrs class: a batch never shares mutable state with its caller, so
an ``Outcome`` or a ``BatchStatistics`` can be kept, sent to another thread, or compared in a
test. The batch's errors (``BatchDeadlineError``, ``DownloadError``) are in ``_errors``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

import anyio
import attrs

from akool_async._errors import AkoolError, AmbiguousSubmitError, JobFailedError
from akool_async._models import SwapJob, SwapRequest, SwapResult, SwapStatus

__all__ = [
    "BatchCounters",
    "BatchEvent",
    "BatchStatistics",
    "EventKind",
    "Outcome",
]

R = TypeVar("R", bound=SwapRequest)

EventKind = Literal["submitted", "status_changed", "retried", "throttled", "finished"]


@attrs.frozen(kw_only=True)
class Outcome(Generic[R]):
    """What became of one input request of a batch: exactly one per request.

    Attributes:
        request: The request, as given.
        index: Its position in the input (0-based).
        job: The job it created, or None if it was never (provably) submitted.
        result: The job's last known ``SwapResult`` (status SUCCESS when ``ok``).
        error: Why it did not succeed (``JobFailedError``, ``JobTimeoutError``,
            ``AmbiguousSubmitError``, ``InsufficientCreditError``, ``DownloadError``...),
            or None.
        path: The downloaded result file (with ``download_dir``), else None.
        sha256: Hex SHA-256 of the downloaded file, else None.
        location: Where the downloaded file is: its local path, or its object-store URL
            (with an ``s3://...`` ``download_dir``, where ``path`` is None), else None.
        resumed: True when no submit was made for it in this run: its job (or the whole
            outcome) came from the batch journal of an earlier run.
    """

    request: R
    index: int
    job: SwapJob | None = None
    result: SwapResult | None = None
    error: AkoolError | None = None
    path: Path | None = None
    sha256: str | None = None
    resumed: bool = False
    location: str | None = None

    @property
    def ok(self) -> bool:
        """True when the job succeeded (and its file, if asked for, was downloaded)."""
        return self.error is None


@attrs.frozen(kw_only=True)
class BatchEvent:
    """One progress event of a batch, passed to its ``on_event`` hook.

    Attributes:
        kind: ``"submitted"`` (a job was created), ``"status_changed"`` (a job reported a
            new non-terminal status), ``"retried"`` (a submit or download is tried again),
            ``"throttled"`` (the API answered 1005 / 429), ``"finished"`` (the request's
            outcome is ready; it is in ``outcome``).
        index: Position of the request in the input.
        elapsed: Seconds since the batch started.
        job_id: The job's ``_id`` once known.
        status: The job's status, when the event is about one.
        error: The error that caused the event (``retried``, ``throttled``, failed
            ``finished``), or None.
        attempt: For ``retried`` / ``throttled``: which attempt failed (1-based).
        delay: For ``retried`` / ``throttled``: seconds before the next attempt.
        outcome: For ``finished``: the outcome.
    """

    kind: EventKind
    index: int
    elapsed: float
    job_id: str | None = None
    status: SwapStatus | None = None
    error: AkoolError | None = None
    attempt: int | None = None
    delay: float | None = None
    outcome: Outcome[SwapRequest] | None = None


@attrs.frozen(kw_only=True)
class BatchStatistics:
    """A snapshot of one batch (``batch.statistics()``).

    The state counts partition the requests read so far: ``read == waiting_input +
    submitting + pending + downloading + succeeded + failed + errored + ambiguous``.

    Attributes:
        total: Number of input requests when the input has a length, else None.
        read: Requests taken from the input so far.
        waiting_input: Read, not yet submitting (waiting for a submit slot or the journal).
        submitting: Submits in flight.
        pending: Jobs submitted (or re-attached) and not finished.
        downloading: Finished jobs whose file is being downloaded.
        succeeded: Outcomes without error.
        failed: Outcomes with ``JobFailedError`` (the job ended with status 4).
        errored: Other error outcomes, ``ambiguous`` excepted.
        ambiguous: Outcomes with ``AmbiguousSubmitError``.
        timed_out: Of ``errored``, those with ``JobTimeoutError`` or ``BatchDeadlineError``.
        resumed: Outcomes taken over from the journal (no submit in this run).
        submits: Submit requests sent by this batch (retries included).
        credits_before: Account balance when the batch started (``check_credit``), or None.
        credits_now: Latest balance read (at the start, after a 1006, at the end), or None.
        credits_used: ``credits_before - credits_now``: what the account was charged while
            the batch ran (other users of the account included); None until the balance was
            read again (after a 1006, and at the end of the batch).
        requests: HTTP requests per endpoint name made for this batch; ``list_results`` is
            the shared poller's count while the batch ran (other waiters included).
        retries: Submits and downloads tried again.
        throttles: 1005 / 429 answers to this batch's submits.
        elapsed: Seconds since the batch started.
        throughput: Outcomes per second since the batch started.
        finished: Whether every outcome has been produced.
        resolved: Ambiguous submits bound to their job by a webhook carrying their
            reference (``use_webhooks``), instead of being reported ambiguous.
    """

    total: int | None
    read: int
    waiting_input: int
    submitting: int
    pending: int
    downloading: int
    succeeded: int
    failed: int
    errored: int
    ambiguous: int
    timed_out: int
    resumed: int
    submits: int
    credits_before: float | None
    credits_now: float | None
    credits_used: float | None
    requests: Mapping[str, int]
    retries: int
    throttles: int
    elapsed: float
    throughput: float
    finished: bool
    resolved: int = 0

    @property
    def outcomes(self) -> int:
        """Outcomes produced so far."""
        return self.succeeded + self.failed + self.errored + self.ambiguous


@attrs.define
class BatchCounters:
    """The running counts of a batch (mutable, private); ``snapshot`` freezes them."""

    states: Counter[str] = attrs.field(factory=Counter)
    requests: Counter[str] = attrs.field(factory=Counter)
    read: int = 0
    submits: int = 0
    retries: int = 0
    resolved: int = 0
    credits_before: float | None = None
    credits_now: float | None = None
    started_at: float = 0.0
    finished_at: float | None = None
    polls_at_start: int = 0
    client_at_start: tuple[int, int] = (0, 0)
    client_at_end: tuple[int, int] | None = None

    def count(self, outcome: Outcome[Any]) -> None:
        """Count a finished request under its outcome's category."""
        error = outcome.error
        states = self.states
        if error is None:
            states["succeeded"] += 1
        elif isinstance(error, JobFailedError):
            states["failed"] += 1
        elif isinstance(error, AmbiguousSubmitError):
            states["ambiguous"] += 1
        else:
            states["errored"] += 1
            if isinstance(error, TimeoutError):
                states["timed_out"] += 1
        if outcome.resumed:
            states["resumed"] += 1

    def snapshot(
        self,
        *,
        total: int | None,
        polls: int,
        client: tuple[int, int],
        started: bool,
        finished: bool,
    ) -> BatchStatistics:
        """Freeze the counts; ``polls`` and ``client`` (retries, throttles) are the totals now."""

        now = self.finished_at if self.finished_at is not None else anyio.current_time()
        elapsed = max(0.0, now - self.started_at) if started else 0.0
        states = self.states
        requests = dict(self.requests)
        requests["list_results"] = polls - self.polls_at_start
        used = None  # known once the balance was read again after the start
        if self.credits_before is not None and self.credits_now is not None:
            used = self.credits_before - self.credits_now if self.requests["quota"] > 1 else None
        done = states["succeeded"] + states["failed"] + states["errored"] + states["ambiguous"]
        return BatchStatistics(
            total=total,
            read=self.read,
            waiting_input=states["waiting_input"],
            submitting=states["submitting"],
            pending=states["pending"],
            downloading=states["downloading"],
            succeeded=states["succeeded"],
            failed=states["failed"],
            errored=states["errored"],
            ambiguous=states["ambiguous"],
            timed_out=states["timed_out"],
            resumed=states["resumed"],
            submits=self.submits,
            credits_before=self.credits_before,
            credits_now=self.credits_now,
            credits_used=used,
            requests=requests,
            retries=self.retries + client[0] - self.client_at_start[0],
            throttles=client[1] - self.client_at_start[1],
            elapsed=elapsed,
            throughput=done / elapsed if elapsed > 0 else 0.0,
            finished=finished,
            resolved=self.resolved,
        )
