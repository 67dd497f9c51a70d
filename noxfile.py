"""Developer and CI sessions: system components, lint, typecheck, tests on 3.11-3.13 with a
coverage gate, docs, bench, demo.

``python -m nox`` runs the default sessions (what `.ci/run` runs). pyenv installs 3.11, 3.12 and
3.13 side by side on our machines but only 3.11 is on PATH; when pyenv is present we add the
newest installed patch release of each to ``PYENV_VERSION``, so one command tests every version.

A Python version that is not installed is skipped (the README's test command passes on a machine
with one Python 3.11+), except in CI: ``.ci/run`` sets ``AKOOL_REQUIRE_ALL_PYTHONS=1`` (and CI
services set ``CI``), and then a missing interpreter fails the run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import nox

PYTHONS = ["3.11", "3.12", "3.13"]

if shutil.which("pyenv"):
    # A pyenv shim running nox sets PYENV_VERSION to its own version only; add the others.
    installed = subprocess.run(
        ["pyenv", "versions", "--bare"], capture_output=True, text=True, check=False
    ).stdout.split()
    active = [v for v in os.environ.get("PYENV_VERSION", "").split(":") if v]
    wanted = [
        max(
            (v for v in installed if re.fullmatch(rf"{re.escape(p)}\.\d+", v)),
            key=lambda v: int(v.rsplit(".", 1)[1]),
            default="",
        )
        for p in PYTHONS
    ]
    if all(wanted):
        os.environ["PYENV_VERSION"] = ":".join(dict.fromkeys([*active, *wanted]))

nox.options.sessions = ["system", "lint", "typecheck", "tests", "coverage_report", "docs"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = bool(
    os.environ.get("AKOOL_REQUIRE_ALL_PYTHONS") or os.environ.get("CI")
)

TEST_DEPS = ["-e", ".[test]"]


@nox.session(python=False)
def system(session: nox.Session) -> None:
    """The system components some suites drive for real (Chromium, a PostgreSQL server).

    ``tools/system-deps.sh`` installs what is missing with apt where it can; where it cannot,
    those tests skip with the reason, except in CI, where a missing component fails the run.
    """
    session.run("bash", "tools/system-deps.sh", external=True)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over everything we ship and test."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the package and the typing tests (tests/typing is checked, not run)."""
    session.install("mypy>=1.10", *TEST_DEPS)
    session.run("mypy", "--strict")


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The whole test suite against the local emulator, warnings as errors, under coverage.

    The end-to-end suites marked ``slow`` (real PostgreSQL, S3, Chromium and uvicorn servers,
    subprocess examples, rate-limited and multi-worker batches) run on the first Python only;
    the other versions run everything else (pass arguments, e.g. ``-- -m slow``, to choose).
    """
    session.install(*TEST_DEPS)
    args = session.posargs
    if not args and session.python != PYTHONS[0]:
        args = ["-m", "not slow"]
    session.run("coverage", "run", "-m", "pytest", *args)


@nox.session
def coverage_report(session: nox.Session) -> None:
    """Combine the per-version coverage data and enforce the branch-coverage gate."""
    session.install("coverage[toml]>=7.4")
    session.run("coverage", "combine")
    session.run("coverage", "report", "--fail-under=85")


@nox.session
def docs(session: nox.Session) -> None:
    """The documentation site (MkDocs Material, API reference from the docstrings), strict."""
    session.install("-e", ".[docs]")
    site = str(session.create_tmp()) + "/site"
    session.run("mkdocs", "build", "--strict", "--site-dir", site, env={"NO_MKDOCS_2_WARNING": "1"})


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks: ratios measured in one run (pass --quick for a short run)."""
    session.install(*TEST_DEPS)
    session.run("python", "benchmarks/run.py", *session.posargs)


@nox.session
def chaos(session: nox.Session) -> None:
    """The reliability suite at full size, printing its figures."""
    session.install(*TEST_DEPS)
    session.run("python", "benchmarks/chaos.py", *session.posargs)


@nox.session
def multiworker(session: nox.Session) -> None:
    """Four workers on one shared 2,000-input batch, two SIGKILLed and restarted (full size)."""
    session.install(*TEST_DEPS)
    session.env["AKOOL_MULTIWORKER_INPUTS"] = "2000"
    session.run("pytest", "tests/test_multiworker.py", "-s", *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    """The main job: `akool-async demo` on the embedded emulator."""
    session.install("-e", ".[cli]")
    session.run("akool-async", "demo")
