"""Shared test configuration: anyio's pytest plugin pinned to asyncio (aiohttp is asyncio-only),
and the fixtures several test files use (a file overrides one by defining its own).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest

from akool_async import AsyncClient, PollConfig
from akool_async.cli import main
from akool_async.testing import DEFAULT_API_KEY, Emulator, EmulatorThread
from tests._support import FAST_RETRY, Cli, Run


@pytest.fixture(autouse=True)
def _no_stored_credentials(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI never reads the developer's own credentials file (``akool-async login``)."""
    path = tmp_path_factory.getbasetemp() / "no-akool-config.toml"
    monkeypatch.setenv("AKOOL_CONFIG", str(path))
    monkeypatch.delenv("AKOOL_PROFILE", raising=False)


@pytest.fixture
def anyio_backend() -> str:
    """Run every ``@pytest.mark.anyio`` test on asyncio."""
    return "asyncio"


@pytest.fixture
async def emu(akool_emulator: Emulator) -> Emulator:
    """The running emulator."""
    return akool_emulator


@pytest.fixture
def client_poll_config() -> PollConfig | None:
    """The ``client`` fixture's polling pacing; None keeps the default (override per file)."""
    return None


@pytest.fixture
async def client(
    emu: Emulator, client_poll_config: PollConfig | None
) -> AsyncIterator[AsyncClient]:
    """An open API-key client of the emulator with tiny retry delays."""
    client = AsyncClient(api_key=emu.api_key, base_url=emu.base_url, retry=FAST_RETRY)
    if client_poll_config is not None:
        client.poll_config = client_poll_config
    async with client:
        yield client


@pytest.fixture
def runner(akool_emulator_thread: EmulatorThread) -> EmulatorThread:
    """The emulator, on its own thread."""
    return akool_emulator_thread


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain aiohttp session."""
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def emulator(
    akool_emulator_thread: EmulatorThread, monkeypatch: pytest.MonkeyPatch
) -> EmulatorThread:
    """The emulator thread, with the AKOOL_* environment pointing the CLI at it."""
    monkeypatch.setenv("AKOOL_BASE_URL", akool_emulator_thread.base_url)
    monkeypatch.setenv("AKOOL_API_KEY", DEFAULT_API_KEY)
    monkeypatch.delenv("AKOOL_CLIENT_ID", raising=False)
    monkeypatch.delenv("AKOOL_CLIENT_SECRET", raising=False)
    return akool_emulator_thread


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    """Run the CLI's ``main(argv)`` in-process and capture its exit code, stdout and stderr."""

    def run(*argv: str) -> Run:
        code = main(list(argv))
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server for the session (Debian's binaries, as the postgres user if root).

    Skipped, with the reason, where the binaries are missing outside CI; in CI (``CI`` set)
    their absence is a failure, since ``.ci/run`` installs them.
    """
    from tests._postgres import PostgresServer, find_bindir

    if find_bindir() is None:
        if os.environ.get("CI"):
            pytest.fail("CI must have PostgreSQL's server binaries (.ci/run installs them)")
        pytest.skip("no PostgreSQL server binaries here (apt-get install postgresql)")
    pytest.importorskip("asyncpg", reason="the shared journal needs asyncpg (the test extra)")
    with PostgresServer() as server:
        yield server.url


#: End-to-end suites that drive real servers, a browser, subprocesses or long batches. They
#: run on every Python when asked for; the default nox run gives them to the first Python only
#: (``-m "not slow"`` on the others), which keeps a full CI run within its time budget.
SLOW_MODULES = frozenset(
    {
        "test_crash_resume",
        "test_docs",
        "test_multiworker",
        "test_journal_pg",
        "test_ratelimit",
        "test_readme",
        "test_reliability",
        "test_report",
        "test_soak",
        "test_storage",
        "test_asgi",
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test of the ``SLOW_MODULES`` as ``slow``."""
    for item in items:
        if item.module is not None and item.module.__name__.rsplit(".", 1)[-1] in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
