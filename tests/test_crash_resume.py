"""Crash and resume: ``akool-async batch`` killed with SIGKILL five times, then resumed.

The emulator runs in a background thread of the test process and outlives every CLI process;
its per-input submit counters are the evidence. The engine is ``benchmarks/_chaos_lib.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from _chaos_lib import CrashFigures, crash_resume

QUICK_INPUTS = 40


@pytest.fixture(scope="module")
def figures(tmp_path_factory: pytest.TempPathFactory) -> CrashFigures:
    """Five SIGKILLs at random points, the resume, and the explicit resubmit."""
    return crash_resume(QUICK_INPUTS, tmp_path_factory.mktemp("crash"), kills=5)


def test_five_kills_at_random_points(figures: CrashFigures) -> None:
    """Each of the five runs was ended by SIGKILL (-9), not by finishing."""
    assert [kill["exit"] for kill in figures.kills] == [-9] * 5


def test_every_input_is_done_once(figures: CrashFigures) -> None:
    """After the resumes every input has exactly one job, except reported-ambiguous ones."""
    assert figures.problems == []
    assert figures.done_once + figures.paid_twice == QUICK_INPUTS
    assert figures.never_paid_ok == 0


def test_ambiguous_are_resubmitted_only_on_request(figures: CrashFigures) -> None:
    """The resume reports ambiguous swaps (exit 1 if any); --resubmit-ambiguous finishes them."""
    expected_final = 1 if figures.ambiguous_reported else 0
    assert (figures.final_exit, figures.resubmit_exit) == (expected_final, 0)
    assert figures.paid_twice <= figures.ambiguous_reported
