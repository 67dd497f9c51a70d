"""What a user installs: the wheel's files and metadata, the version, and the test command.

The wheel is built with hatchling's PEP 517 hook in a child process (no network, no isolated
build environment), into a temporary folder.
"""

from __future__ import annotations

import email
import os
import subprocess
import sys
import types
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import akool_async

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[zipfile.ZipFile]:
    """The project's wheel, freshly built."""
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from hatchling.build import build_wheel; print(build_wheel(sys.argv[1]))",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    with zipfile.ZipFile(out / done.stdout.split()[-1]) as archive:
        yield archive


def dist_info(archive: zipfile.ZipFile, name: str) -> str:
    [path] = [
        n
        for n in archive.namelist()
        if n.split("/")[0].endswith(".dist-info") and n.endswith(f"/{name}")
    ]
    return archive.read(path).decode("utf-8")


def test_wheel_ships_license_types_and_manifest_docs(wheel: zipfile.ZipFile) -> None:
    """The wheel has the MIT LICENSE, py.typed and the manifest guide that batch --help cites."""
    names = set(wheel.namelist())
    licenses = [n for n in names if n.endswith("/licenses/LICENSE")]
    assert "akool_async/py.typed" in names
    assert "akool_async/docs/manifest.md" in names
    assert len(licenses) == 1
    assert wheel.read(licenses[0]).decode().startswith("MIT License")
    assert wheel.read("akool_async/docs/manifest.md") == (ROOT / "docs/manifest.md").read_bytes()


def test_wheel_entry_points(wheel: zipfile.ZipFile) -> None:
    """The console script and the pytest plugin are registered."""
    entry_points = dist_info(wheel, "entry_points.txt")
    assert "akool-async = akool_async.cli:main" in entry_points
    assert "akool_async = akool_async.testing.pytest_plugin" in entry_points


def test_wheel_metadata(wheel: zipfile.ZipFile) -> None:
    """The metadata names the license, the project URLs, Python 3.11+ and the extras."""
    metadata = email.message_from_string(dist_info(wheel, "METADATA"))
    urls = metadata.get_all("Project-URL") or []
    assert metadata["License-Expression"] == "MIT"
    assert metadata["Requires-Python"] == ">=3.11"
    assert metadata["Version"] == akool_async.__version__
    assert any(url.endswith("https://docs.akool.com/ai-tools-suite/faceswap") for url in urls)
    assert {"cli", "webhooks", "all", "docs"} <= set(metadata.get_all("Provides-Extra") or [])


def test_version_comes_from_the_package_metadata() -> None:
    """``akool_async.__version__`` is the installed distribution's version."""
    from importlib.metadata import version

    assert akool_async.__version__ == version("akool-async")


# -- the test command -------------------------------------------------------------------------


def load_noxfile(monkeypatch: pytest.MonkeyPatch, **env: str) -> Any:
    """Execute noxfile.py against a stand-in ``nox`` module; return its ``nox.options``."""
    for name in ("AKOOL_REQUIRE_ALL_PYTHONS", "CI"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PATH", os.defpath)  # no pyenv: the noxfile leaves PYENV_VERSION alone
    monkeypatch.setenv("PYENV_VERSION", os.environ.get("PYENV_VERSION", ""))  # restored after
    fake = types.ModuleType("nox")
    fake.options = types.SimpleNamespace()  # type: ignore[attr-defined]
    fake.Session = object  # type: ignore[attr-defined]

    def session(*args: Any, **kwargs: Any) -> Any:
        return args[0] if args and callable(args[0]) else (lambda func: func)

    fake.session = session  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "nox", fake)
    code = compile((ROOT / "noxfile.py").read_text(), "noxfile.py", "exec")
    exec(code, {"__name__": "noxfile"})
    return fake.options  # type: ignore[attr-defined]


def test_nox_skips_missing_pythons_on_a_developer_machine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Outside CI a missing interpreter is skipped, so one Python 3.11+ is enough."""
    assert load_noxfile(monkeypatch).error_on_missing_interpreters is False


@pytest.mark.parametrize("env", [{"AKOOL_REQUIRE_ALL_PYTHONS": "1"}, {"CI": "true"}])
def test_nox_requires_every_python_in_ci(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    """In CI (the variable .ci/run sets, or CI=true) a missing interpreter fails the run."""
    assert load_noxfile(monkeypatch, **env).error_on_missing_interpreters is True


def test_ci_requires_every_python() -> None:
    """`.ci/run` sets the variable that makes a missing interpreter an error."""
    lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert "export AKOOL_REQUIRE_ALL_PYTHONS=1" in lines


def test_default_sessions_build_the_docs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default nox sessions (what CI runs) include the strict docs build."""
    assert "docs" in load_noxfile(monkeypatch).sessions
