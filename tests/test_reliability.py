"""Chaos batch (quick size): the real client through every emulator fault at once.

The engine is ``benchmarks/_chaos_lib.py``, shared with ``benchmarks/chaos.py`` (full size).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from _chaos_lib import ChaosFigures, run_chaos

#: The chaos batch (the module fixture) takes 80-120 s on an idle 2-core machine, more under
#: load or coverage: the first test, which builds it, gets more than the default 120 s. (A
#: timeout inside the fixture fails the run, and its leftover tasks hang the loop's close.)
pytestmark = [pytest.mark.anyio, pytest.mark.timeout(600)]

QUICK_JOBS = 400


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """The module-scoped figures fixture runs on asyncio too."""
    return "asyncio"


@pytest.fixture(scope="module")
async def figures(tmp_path_factory: pytest.TempPathFactory) -> ChaosFigures:
    """One chaos batch of ``QUICK_JOBS`` jobs, shared by the assertions below."""
    return await run_chaos(QUICK_JOBS, tmp_path_factory.mktemp("chaos"))


async def test_every_job_has_exactly_one_outcome(figures: ChaosFigures) -> None:
    """Each input ends with one outcome, none is lost, and nothing unexpected went wrong."""
    assert (figures.outcomes, figures.lost, figures.problems) == (QUICK_JOBS, 0, [])


async def test_no_job_is_paid_twice(figures: ChaosFigures) -> None:
    """No input has two jobs on the server (ambiguous submits are never retried silently)."""
    assert figures.duplicates == 0


async def test_only_ambiguous_submits_fail(figures: ChaosFigures) -> None:
    """Every input that is not a reported ambiguous submit succeeds."""
    assert (figures.succeeded + figures.ambiguous, figures.failed_other) == (QUICK_JOBS, 0)


async def test_ambiguous_outcomes_match_the_client_counter(figures: ChaosFigures) -> None:
    """The client's ambiguous submits are the ambiguous outcomes plus those bound by webhook."""
    assert figures.ambiguous + figures.resolved == figures.ambiguous_submits


async def test_webhook_references_resolve_ambiguous_submits_with_a_job(
    figures: ChaosFigures,
) -> None:
    """Ambiguous submits whose job called back are all bound to it (only lost callbacks stay)."""
    assert (figures.resolved > 0, figures.ambiguous_with_callback) == (True, 0)


async def test_every_success_is_downloaded_and_verified(figures: ChaosFigures) -> None:
    """Each success has its file on disk with the outcome's SHA-256."""
    assert figures.verified_files == figures.succeeded


async def test_every_fault_kind_was_injected(figures: ChaosFigures) -> None:
    """The run saw each HTTP fault kind, each webhook fault kind, retries and throttling."""
    injected = {kind for kind, count in figures.faults.items() if count > 0}
    webhook = {kind for kind, count in figures.webhook_faults.items() if count > 0}
    assert (injected, webhook) == (
        {"http_500", "http_502", "http_503", "drop_before", "drop_after", "rate_limited", "slow"},
        {"duplicate", "lost", "late"},
    )
    assert (figures.retries > 0, figures.throttled > 0) == (True, True)


async def test_token_expiry_mid_batch_is_refreshed(figures: ChaosFigures) -> None:
    """The token expired mid-batch is fetched again (client id and secret auth)."""
    assert (figures.token_fetches >= 2, figures.token_refreshes >= 1) == (True, True)


async def test_explicit_resubmit_completes_and_pays_twice_only_ambiguous(
    figures: ChaosFigures,
) -> None:
    """Resubmitting the ambiguous ones completes every input; only they may have two jobs."""
    assert figures.after_resubmit_succeeded == QUICK_JOBS
    assert figures.after_resubmit_duplicates <= figures.ambiguous
    assert figures.resubmitted_ambiguous == figures.ambiguous
