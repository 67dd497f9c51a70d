"""The documentation site: every Python example runs, every page is reachable, the API
reference covers the public API, and the README points to the site.

Examples run like the README's (``tests/test_readme.py``): in a fresh interpreter in a
temporary directory, under pytest when they define tests. The site itself is built by
``nox -s docs`` (``mkdocs build --strict``), which CI runs.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import akool_async
import akool_async.testing
from tests._support import FENCE, run_example

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))


def _examples() -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        blocks = [body for lang, body in FENCE.findall(text) if lang == "python"]
        name = page.relative_to(DOCS).with_suffix("").as_posix()
        found.extend((f"{name}-{i}", body) for i, body in enumerate(blocks))
    return found


EXAMPLES = _examples()


@pytest.mark.parametrize("code", [code for _, code in EXAMPLES], ids=[i for i, _ in EXAMPLES])
def test_docs_example_runs(code: str, tmp_path: Path) -> None:
    """A documentation example exits 0 in a clean directory, with leak warnings as errors."""
    run_example(code, tmp_path)


def test_there_are_examples_in_every_guide() -> None:
    """Each guide with code carries at least one runnable example (the list is not empty)."""
    pages_with_examples = {example_id.rsplit("-", 1)[0] for example_id, _ in EXAMPLES}
    expected = {"index", "quickstart", "batches", "webhooks", "blocking", "testing"}
    assert expected - pages_with_examples == set()


def test_every_page_is_in_the_navigation() -> None:
    """Every Markdown page under docs/ is listed in mkdocs.yml's nav (none is orphaned)."""
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    listed = set(re.findall(r":\s*([\w/.-]+\.md)\s*$", config, re.MULTILINE))
    pages = {page.relative_to(DOCS).as_posix() for page in PAGES}
    assert (pages - listed, listed - pages) == (set(), set())


@pytest.mark.parametrize(
    ("module", "exempt"),
    [
        (akool_async, set()),
        (
            akool_async.testing,
            {
                "Clock",
                "DEFAULT_API_KEY",
                "DEFAULT_CLIENT_ID",
                "DEFAULT_CLIENT_SECRET",
                "ENDPOINTS",
                "FAULT_KINDS",
                "WEBHOOK_FAULT_KINDS",
            },
        ),
    ],
)
def test_the_api_reference_covers_the_public_api(module: object, exempt: set[str]) -> None:
    """Every public name has its entry in the API reference (constants are described in text)."""
    reference = "\n".join(page.read_text() for page in (DOCS / "reference").glob("*.md"))
    name = module.__name__  # type: ignore[attr-defined]
    documented = set(re.findall(rf"^::: {re.escape(name)}\.(\w+)$", reference, re.MULTILINE))
    public = set(module.__all__) - exempt  # type: ignore[attr-defined]
    assert public - documented == set()
    for constant in exempt - {"Clock"}:
        assert f"`{constant}`" in reference


def test_readme_points_to_the_docs() -> None:
    """The README, still the landing page, says where the documentation is and how to build it."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "docs/index.md" in readme
    assert "nox -s docs" in readme
