"""Every Python example in README.md runs as written, and the quick start matches `.ci/run`.

Scripts run in a fresh interpreter in a temporary directory (they bring their own emulator);
an example that defines pytest tests runs under pytest, as a user would run it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests._support import FENCE, run_example

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _blocks(language: str) -> list[str]:
    return [body for lang, body in FENCE.findall(README) if lang == language]


def _heading_before(body: str) -> str:
    before = README[: README.index(body)]
    headings = re.findall(r"^#+ (.+)$", before, re.MULTILINE)
    return re.sub(r"\W+", "-", headings[-1].lower()).strip("-") if headings else "top"


PYTHON_BLOCKS = _blocks("python")


@pytest.mark.parametrize(
    "code",
    PYTHON_BLOCKS,
    ids=[f"{i}-{_heading_before(code)}" for i, code in enumerate(PYTHON_BLOCKS)],
)
def test_readme_example_runs(code: str, tmp_path: Path) -> None:
    """A README example exits 0 in a clean directory with warnings about leaks as errors."""
    run_example(code, tmp_path)


def test_readme_has_python_examples() -> None:
    """The README carries runnable examples for each documented area (not an empty list)."""
    assert len(PYTHON_BLOCKS) >= 5


def test_ci_runs_the_readme_test_command() -> None:
    """`.ci/run` runs exactly the test command the README's quick start gives."""
    commands = [body.strip() for body in _blocks("console")[:2]]
    ci_lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert commands[1] in ci_lines
    assert "akool-async demo" in commands[0]
